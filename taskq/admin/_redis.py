"""Small Redis reads shared by the operator modules: the Redis clock and queue existence."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq import priority
from taskq.errors import QueueNotFound
from taskq.fieldvalues import text
from taskq.keys import QueueKeys, periodic_queues_key, queues_key

if TYPE_CHECKING:
    from taskq.queue import TaskQueue

PAGE = 500


def entry_ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


async def redis_now_ms(tq: TaskQueue) -> int:
    sec, usec = await tq.redis.time()
    return int(sec) * 1000 + int(usec) // 1000


async def known_queues(tq: TaskQueue) -> list[str]:
    """Every queue used (the queues set) or registered, and the queue of every priority lane
    among them: a queue whose tasks all ran at ``high`` or ``low`` is still one queue."""
    names = {text(n) for n in await tq.redis.smembers(queues_key(tq.prefix))}  # type: ignore[misc]
    names |= set(tq.queues)
    return sorted(names | {priority.base(n) for n in names})


def levels_of(name: str) -> tuple[str, ...]:
    """The queue names whose keys say whether ``name`` exists: a queue's every level, or a
    lane itself."""
    return (name,) if priority.is_lane(name) else priority.lanes(name)


async def queue_exists(tq: TaskQueue, name: str) -> bool:
    """Whether queue ``name`` is one: registered, in the queues set (itself or, for a queue,
    one of its lanes), a queue of periodic schedules, paused, or with waiting entries, delayed
    tasks, dead letters, counters or schedules of its own. An empty stream alone does not make
    one: a worker started with a mistyped ``--queues`` creates it."""
    if name in tq.queues or priority.base(name) in tq.queues:
        return True
    levels = levels_of(name)
    pipe = tq.redis.pipeline(transaction=False)
    for level in levels:
        pipe.sismember(queues_key(tq.prefix), level)
    pipe.sismember(periodic_queues_key(tq.prefix), name)
    for level in levels:
        keys = tq.keys(level)
        pipe.exists(keys.delayed, keys.dead, keys.stats, keys.periodic, keys.paused)
        pipe.xlen(keys.stream)
    return any(int(r) for r in await pipe.execute())


async def require_queue(tq: TaskQueue, name: str) -> QueueKeys:
    """The keys of queue ``name``; raises QueueNotFound (with the known names and the closest
    one) for a name that is no queue (see :func:`queue_exists`)."""
    keys = tq.keys(name)  # raises InvalidQueueName for a name that cannot be one
    if not await queue_exists(tq, name):
        raise QueueNotFound(name, await known_queues(tq))
    return keys
