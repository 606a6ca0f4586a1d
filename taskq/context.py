"""The context a running task can ask for: who it is, and a way to report progress.

A task gets it by declaring a parameter annotated :class:`TaskContext` (it is injected and is
not part of the task's arguments), or by calling :func:`current_context` while it runs.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

S = TypeVar("S")

ProgressSink = Callable[[str, str, float, str], Awaitable[None]]


@dataclass(slots=True)
class TaskContext:
    """Facts about the running attempt, and progress reporting."""

    task_id: str
    task: str
    queue: str
    attempt: int
    max_attempts: int
    worker_id: str
    _sink: ProgressSink | None = field(default=None, repr=False)
    _cancel_requested: bool = field(default=False, repr=False)
    state: Any = field(default=None, repr=False)
    """What the worker lifespan yielded (``@tq.worker_lifespan``); None without one, and in
    the pool processes of ``cpu_bound`` tasks."""
    scheduled_ms: int | None = None
    """The periodic tick this task was fired for (ms since the epoch); None for a task not
    enqueued by a periodic schedule."""
    scheduled_tz: str | None = field(default=None, repr=False)

    @property
    def scheduled_at(self) -> datetime | None:
        """The periodic tick this task was fired for, an aware datetime in the schedule's
        timezone (``09:00+02:00`` for ``cron="0 9 * * *", timezone="Europe/Berlin"``); the same
        in every retry and replay of that task. None for a task not fired by a schedule."""
        if self.scheduled_ms is None:
            return None
        return datetime.fromtimestamp(self.scheduled_ms / 1000, _zone(self.scheduled_tz))

    def state_as(self, kind: type[S]) -> S:
        """``state``, checked to be a ``kind`` (a typed view for type checkers)."""
        if not isinstance(self.state, kind):
            raise TypeError(f"the worker state is a {type(self.state).__name__}, not a "
                            f"{kind.__name__} (see @tq.worker_lifespan)")
        return self.state

    @property
    def cancelled(self) -> bool:
        """True once cancellation was asked for (sync tasks poll this to stop early)."""
        return self._cancel_requested

    def request_cancel(self) -> None:
        """Set by the worker when the task is cancelled or timed out."""
        self._cancel_requested = True

    async def progress(self, fraction: float, message: str = "") -> None:
        """Report progress (0..1) with a short message; published to watchers (SSE, CLI)."""
        if self._sink is not None:
            await self._sink(self.queue, self.task_id, max(0.0, min(1.0, fraction)), message)


@lru_cache(maxsize=256)
def _zone(name: str | None) -> tzinfo:
    """The timezone named, or UTC (none named, or unknown on this host). Bounded cache: the
    name comes from a message, which may carry any name."""
    if name is None:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


_current: contextvars.ContextVar[TaskContext] = contextvars.ContextVar("taskq_context")


def current_context() -> TaskContext:
    """The context of the task running in this asyncio task or thread."""
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("current_context() called outside a running task") from None


def set_context(ctx: TaskContext) -> contextvars.Token[TaskContext]:
    return _current.set(ctx)
