"""Small Redis reads shared by the operator modules: the Redis clock, queue existence, the
consumer group's position, and decoding stream entries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from taskq import codec, ids
from taskq.admin_values import QueueNotFound
from taskq.codec import Message
from taskq.keys import GROUP, QueueKeys, queues_key

if TYPE_CHECKING:
    from taskq.queue import TaskQueue

PAGE = 500


def text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def to_int(value: Any, default: int | None = 0) -> int | None:
    if value is None or value in (b"", ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def entry_ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


async def redis_now_ms(tq: TaskQueue) -> int:
    sec, usec = await tq.redis.time()
    return int(sec) * 1000 + int(usec) // 1000


async def known_queues(tq: TaskQueue) -> list[str]:
    names = await tq.redis.smembers(queues_key(tq.prefix))  # type: ignore[misc]
    return sorted({text(n) for n in names} | set(tq.queues))


async def require_queue(tq: TaskQueue, name: str) -> QueueKeys:
    """The keys of queue ``name``; raises QueueNotFound for a name never used."""
    if name in tq.queues:
        return tq.keys(name)
    keys = tq.keys(name)
    pipe = tq.redis.pipeline(transaction=False)
    pipe.sismember(queues_key(tq.prefix), name)
    pipe.exists(keys.stream, keys.delayed, keys.dead)
    member, exists = await pipe.execute()
    if not member and not exists:
        raise QueueNotFound(name)
    return keys


@dataclass(frozen=True, slots=True)
class GroupState:
    exists: bool
    consumers: int
    pending: int
    last_delivered: str
    lag: int | None


async def group_state(tq: TaskQueue, keys: QueueKeys) -> GroupState:
    try:
        groups = await tq.redis.xinfo_groups(keys.stream)
    except ResponseError:  # no stream yet
        return GroupState(False, 0, 0, "0-0", None)
    for g in groups:
        if text(g.get("name")) == GROUP:
            lag = g.get("lag")
            return GroupState(
                True, int(g.get("consumers") or 0), int(g.get("pending") or 0),
                text(g.get("last-delivered-id")) or "0-0",
                None if lag is None else int(lag),
            )
    return GroupState(False, 0, 0, "0-0", None)


async def undelivered(
    tq: TaskQueue, keys: QueueKeys, after: str, count: int
) -> list[tuple[str, bytes | None]]:
    """Up to ``count`` stream entries after ``after`` (not yet delivered), oldest first."""
    rows = await tq.redis.xrange(keys.stream, min=f"({after}", max="+", count=count)
    return [(text(eid), fields.get(codec.FIELD)) for eid, fields in rows]


def decode_message(payload: bytes | None) -> Message | None:
    if not payload:
        return None
    try:
        return codec.decode(payload)
    except Exception:
        return None


def message_task_id(queue: str, entry: str, msg: Message | None) -> str:
    return (msg.task_id if msg and msg.task_id else None) or ids.task_id(queue, entry)
