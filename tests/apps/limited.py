"""The app of worker subprocesses for limit tests: ``python -m worker tests.apps.limited:tq``.

``one_at_a_time`` has a concurrency limit of 1: it records its start under
``<prefix>:t:started`` and waits for the gate (``tests.apps.common.gate_key``) or ``seconds``.
"""

from __future__ import annotations

import asyncio
import os

from taskq import TaskQueue
from tests.apps.common import gate_key, trace_key


def build(prefix: str, url: str | None = None) -> TaskQueue:
    app = TaskQueue(url, prefix=prefix)

    @app.task(name="one_at_a_time", concurrency_limit=1, max_attempts=5)
    async def one_at_a_time(key: str, seconds: float) -> str:
        await app.redis.rpush(trace_key(prefix, "started"), key)  # type: ignore[misc]
        for _ in range(int(seconds / 0.02)):
            if await app.redis.exists(gate_key(prefix)):
                break
            await asyncio.sleep(0.02)
        await app.redis.rpush(trace_key(prefix, "finished"), key)  # type: ignore[misc]
        return key

    return app


tq = build(os.environ["TEST_PREFIX"]) if "TEST_PREFIX" in os.environ else None
