"""Fast-forwarding time for tests: delayed tasks and retry backoffs made due without waiting.

Due times live in each queue's delayed set, on the Redis clock. :func:`fast_forward` moves every
due time of the given queues closer by the same amount, so that the earliest is due now (order
and gaps are kept, as if the clock had jumped); the worker's own promote script then moves them
to the stream, as it would have in production.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

from redis.asyncio import Redis

from taskq.keys import QueueKeys


def _source() -> str:
    return (resources.files("taskq.testing") / "fast_forward.lua").read_text()


async def next_due_in_ms(redis: Redis, keys: Sequence[QueueKeys]) -> int | None:
    """How long until the earliest delayed task of ``keys`` is due (0 if one is due now);
    None when none is delayed."""
    pipe = redis.pipeline(transaction=True)
    pipe.time()
    for k in keys:
        pipe.zrange(k.delayed, 0, 0, withscores=True)
    now, *firsts = await pipe.execute()
    now_ms = int(now[0]) * 1000 + int(now[1]) // 1000
    dues = [int(first[0][1]) for first in firsts if first]
    if not dues:
        return None
    return max(0, min(dues) - now_ms)


async def fast_forward(redis: Redis, keys: Sequence[QueueKeys]) -> int:
    """Make the earliest delayed task of ``keys`` due now, moving the others as much; returns
    the ms skipped (0 when nothing is delayed or something is due already)."""
    shift = await next_due_in_ms(redis, keys)
    if not shift:
        return 0
    script = redis.register_script(_source())
    for k in keys:
        await script(keys=[k.delayed], args=[shift])
    return shift
