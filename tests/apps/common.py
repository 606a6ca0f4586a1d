"""Tasks shared by the worker subprocesses (``tests.apps.basic:tq``) and the tests that drive
them. Both sides call :func:`build` with the test's prefix, so task names and options match.

Tasks leave traces under ``<prefix>:t:*`` (deleted with the test's other keys):

- ``started`` / ``finished``: lists of the keys of ``slow``, ``stuck_once`` and ``gated`` runs,
  in order;
- ``runs`` (counter) and ``done`` (set) for ``mark``: runs minus distinct values = duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from taskq import TaskQueue


def trace_key(prefix: str, name: str) -> str:
    return f"{prefix}:t:{name}"


def gate_key(prefix: str) -> str:
    """Set it to let every ``gated`` run finish."""
    return trace_key(prefix, "gate")


def build(prefix: str, url: str | None = None) -> TaskQueue:
    app = TaskQueue(url, prefix=prefix)

    @app.task(name="slow", max_attempts=5)
    async def slow(key: str, seconds: float) -> str:
        """Records its start, sleeps, records its end."""
        await app.redis.rpush(trace_key(prefix, "started"), key)  # type: ignore[misc]
        await asyncio.sleep(seconds)
        await app.redis.rpush(trace_key(prefix, "finished"), key)  # type: ignore[misc]
        return key

    @app.task(name="joined", max_attempts=5)
    async def joined(keys: list[str]) -> str:
        """A chord's callback: records its start with the members' results, then its end."""
        await app.redis.rpush(trace_key(prefix, "joined"), ",".join(keys))  # type: ignore[misc]
        return "+".join(keys)

    @app.task(name="stuck_once", max_attempts=5)
    async def stuck_once(key: str, seconds: float) -> str:
        """Like ``slow``, but only the first run of the test sleeps (later runs end at once):
        a run that is still going when its worker stops stays running, however slow the
        machine, and its hand-back is seen when another worker finishes it."""
        runs = await app.redis.rpush(trace_key(prefix, "started"), key)  # type: ignore[misc]
        if runs == 1:
            await asyncio.sleep(seconds)
        await app.redis.rpush(trace_key(prefix, "finished"), key)  # type: ignore[misc]
        return key

    @app.task(name="gated", max_attempts=5)
    async def gated(key: str) -> str:
        """Records its start, waits until the test opens the gate (:func:`gate_key`), records
        its end: a run that goes on exactly as long as the test needs, however slow the
        machine."""
        await app.redis.rpush(trace_key(prefix, "started"), key)  # type: ignore[misc]
        for _ in range(30_000):  # 10 minutes at most
            if await app.redis.exists(gate_key(prefix)):
                break
            await asyncio.sleep(0.02)
        await app.redis.rpush(trace_key(prefix, "finished"), key)  # type: ignore[misc]
        return key

    @app.task(name="sync_sleep", max_attempts=5)
    def sync_sleep(key: str, seconds: float) -> str:
        """A sync task: sleeps in one of the worker's threads."""
        time.sleep(seconds)
        return key

    @app.task(name="immortal", max_attempts=5)
    async def immortal(key: str) -> None:
        """Records its start, then swallows every cancel (a bug no shutdown may wait for)."""
        await app.redis.rpush(trace_key(prefix, "started"), key)  # type: ignore[misc]
        for _ in range(10**9):
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    @app.task(name="suicide", max_attempts=2)
    async def suicide(key: str) -> None:
        """Kills the process that runs it (poison)."""
        await app.redis.rpush(trace_key(prefix, "started"), key)  # type: ignore[misc]
        os._exit(3)

    @app.task(name="blocks_loop", max_attempts=5)
    async def blocks_loop(key: str, seconds: float) -> str:
        """An async task that blocks its worker's event loop (``time.sleep`` in an ``async
        def``: the newcomer's mistake): records its start, blocks, returns ``key``."""
        await app.redis.rpush(trace_key(prefix, "started"), key)  # type: ignore[misc]
        time.sleep(seconds)  # noqa: ASYNC251 - the mistake under test
        return key

    @app.task(name="mark", max_attempts=10)
    async def mark(n: int, seconds: float = 0.0) -> int:
        """Sleeps, then counts one run and records ``n`` as done."""
        if seconds:
            await asyncio.sleep(seconds)
        pipe = app.redis.pipeline(transaction=False)
        pipe.incr(trace_key(prefix, "runs"))
        pipe.sadd(trace_key(prefix, "done"), n)
        await pipe.execute()
        return n

    return app
