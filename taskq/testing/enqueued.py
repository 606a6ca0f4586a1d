"""What is waiting in the queues, for test assertions: the tasks enqueued, with their arguments.

Read from Redis (or the stand-in) itself, so it shows what a worker would get: the entries
of the queue streams not finished yet, then the delayed tasks (scheduled, or awaiting a retry)
by due time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from redis import Redis as SyncRedis

from taskq import codec, ids
from taskq.clients import connect_sync
from taskq.errors import DecodeError
from taskq.keys import QueueKeys
from taskq.queue import TaskQueue
from taskq.task import Task


@dataclass(frozen=True, slots=True)
class Enqueued:
    """One task waiting to run: ``run_at_ms`` (Redis clock) is set for a delayed one."""

    task_id: str
    queue: str
    task: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    run_at_ms: int | None = None


def enqueued(tq: TaskQueue, task: Task[Any, Any] | str | None = None, *,
             queues: Iterable[str] | None = None) -> list[Enqueued]:
    """The tasks waiting in ``queues`` (default: the queues of ``tq``'s tasks), in order;
    only those of ``task`` (a task or its name) if given. Blocking (usable in sync and async
    tests alike)."""
    name = task if isinstance(task, str) or task is None else task.name
    names = tuple(queues or tq.queues or (tq.default_queue,))
    client = connect_sync(tq.url, socket_timeout_s=tq.socket_timeout_s)
    try:
        found = [e for q in names for e in _waiting(client, tq.keys(q))]
    finally:
        client.close()
    return [e for e in found if name is None or e.task == name]


def _waiting(client: SyncRedis, keys: QueueKeys) -> list[Enqueued]:
    out = []
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(keys.stream))
    for entry_id, fields in entries:
        msg = _decode(fields.get(codec.FIELD))
        if msg is not None:
            task_id = msg.task_id or ids.task_id(keys.queue, _text(entry_id))
            out.append(_of(task_id, keys.queue, msg, None))
    delayed = cast(list[tuple[bytes, float]], client.zrange(keys.delayed, 0, -1, withscores=True))
    payloads = cast(dict[bytes, bytes], client.hgetall(keys.payloads))
    for member, due in delayed:
        msg = _decode(payloads.get(member))
        if msg is not None:
            out.append(_of(_text(member), keys.queue, msg, int(due)))
    return out


def _of(task_id: str, queue: str, msg: codec.Message, run_at_ms: int | None) -> Enqueued:
    return Enqueued(task_id, queue, msg.task, tuple(msg.args), dict(msg.kwargs or {}),
                    msg.attempts, run_at_ms)


def _decode(payload: bytes | None) -> codec.Message | None:
    if payload is None:
        return None
    try:
        return codec.decode(payload)
    except DecodeError:
        return None  # not a taskq message: nothing a test enqueued


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
