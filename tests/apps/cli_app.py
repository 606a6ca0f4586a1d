"""The app of the CLI tests (``taskq enqueue --app tests.apps.cli_app:tq``, worker processes).

``flaky`` fails (max_attempts 1, so it is dead-lettered at once) until the key
``<prefix>:t:fixed`` exists: "a bug fixed by a deploy", after which a replay succeeds.
"""

from __future__ import annotations

import asyncio
import os

from taskq import TaskQueue


def build(prefix: str, url: str | None = None) -> TaskQueue:
    app = TaskQueue(url, prefix=prefix)

    @app.task(name="add", queue="jobs")
    async def add(a: int, b: int) -> int:
        await app.redis.incr(f"{prefix}:t:runs")  # type: ignore[misc]
        return a + b

    @app.task(name="flaky", queue="jobs", max_attempts=1)
    async def flaky(n: int) -> int:
        if not await app.redis.exists(f"{prefix}:t:fixed"):
            raise RuntimeError(f"flaky {n} is broken")
        return n

    @app.task(name="nap", queue="jobs")
    async def nap(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    @app.task(name="ping", queue="canary")
    async def ping(n: int) -> int:
        return n

    return app


tq = build(os.environ.get("TEST_PREFIX", "taskq"))
