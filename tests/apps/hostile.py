"""Tasks that attack the worker that runs them: they raise SystemExit, KeyboardInterrupt or
asyncio.CancelledError themselves, or exit their process. ``python -m worker
tests.apps.hostile:tq`` serves them; tests call :func:`build` with the same prefix."""

from __future__ import annotations

import asyncio
import enum
import os
import sys

from taskq import TaskContext, TaskOutcome, TaskQueue
from tests.apps import cpu


class Custom(BaseException):
    """A task's own BaseException subclass."""


class Exiting(enum.Enum):
    """A result whose serialization (pydantic reads an Enum's ``value``) raises SystemExit."""

    ONLY = 1

    @property
    def value(self) -> int:  # type: ignore[override]
        raise SystemExit(78)


class ExitingHooks:
    """Task hooks that raise SystemExit before and KeyboardInterrupt after each attempt of the
    ``hooked`` task (other tasks' attempts are left alone)."""

    def before(self, ctx: TaskContext) -> None:
        if ctx.task == "hooked":
            raise SystemExit(78)

    def after(self, ctx: TaskContext, outcome: TaskOutcome) -> None:
        if ctx.task == "hooked":
            raise KeyboardInterrupt


def build(prefix: str, url: str | None = None) -> TaskQueue:
    app = TaskQueue(url, prefix=prefix)

    @app.task(name="exit_async", max_attempts=1)
    async def exit_async(code: int) -> None:
        raise SystemExit(code)

    @app.task(name="exit_sync", max_attempts=1)
    def exit_sync(code: int) -> None:
        sys.exit(code)

    @app.task(name="interrupt", max_attempts=1)
    async def interrupt() -> None:
        raise KeyboardInterrupt

    @app.task(name="interrupt_sync", max_attempts=1)
    def interrupt_sync() -> None:
        raise KeyboardInterrupt

    @app.task(name="custom_base", max_attempts=2, backoff=0.05, max_backoff=0.1)
    async def custom_base() -> None:
        raise Custom("a custom BaseException")

    @app.task(name="self_cancel", max_attempts=1)
    async def self_cancel() -> None:
        raise asyncio.CancelledError

    @app.task(name="os_exit", max_attempts=1)
    async def os_exit(code: int) -> None:
        os._exit(code)

    @app.task(name="slow_ok", max_attempts=1)
    async def slow_ok(key: str, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return key

    @app.task(name="exit_in_result", max_attempts=1)
    async def exit_in_result() -> object:  # (not Exiting: its schema reads values)
        return Exiting.ONLY

    @app.task(name="hooked", max_attempts=1)
    async def hooked(key: str) -> str:
        return key

    app.add_task_hooks(ExitingHooks())
    app.task(name="exit_cpu", cpu_bound=True, max_attempts=1)(cpu.exit_with)
    return app


tq = build(os.environ.get("TEST_PREFIX", "hostile"))
