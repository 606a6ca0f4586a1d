"""Tasks of the HTTP API tests. Worker subprocesses load ``tests.apps.api_tasks:tq`` (prefix
from TEST_PREFIX); tests call :func:`build` with their prefix, so both sides match."""

from __future__ import annotations

import asyncio
import os
import time

from taskq import TaskContext, TaskQueue


def build(prefix: str, url: str | None = None, **options: int) -> TaskQueue:
    app = TaskQueue(url, prefix=prefix, **options)  # type: ignore[arg-type]

    @app.task(name="add")
    async def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="steps", max_attempts=1)
    async def steps(ctx: TaskContext, n: int = 3, seconds: float = 0.05) -> int:
        for i in range(1, n + 1):
            await asyncio.sleep(seconds)
            await ctx.progress(i / n, f"step {i}/{n}")
        return n

    @app.task(name="sleepy", max_attempts=1)
    async def sleepy(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "slept"

    @app.task(name="sync_sleepy", max_attempts=1)
    def sync_sleepy(seconds: float) -> str:
        time.sleep(seconds)
        return "slept"

    @app.task(name="fail", max_attempts=1)
    async def fail(message: str = "boom") -> None:
        raise RuntimeError(message)

    @app.task(name="note", queue="notes")
    async def note(key: str, value: str) -> str:
        await app.redis.rpush(f"{prefix}:t:{key}", value)  # type: ignore[misc]
        return value

    return app


tq = build(os.environ.get("TEST_PREFIX", "taskq-api-tests"))
