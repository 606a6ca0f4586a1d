"""Small Redis reads shared by the operator modules: the Redis clock and queue existence."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq.errors import QueueNotFound
from taskq.fieldvalues import text
from taskq.keys import QueueKeys, queues_key

if TYPE_CHECKING:
    from taskq.queue import TaskQueue

PAGE = 500




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
