"""Worker lifecycle hooks, declared on the TaskQueue and run by every worker process.

- ``@tq.worker_lifespan``: an async generator (or a function returning an async context
  manager) run once per worker process: its code before ``yield`` runs after the worker
  connected and before it reads a task; the value it yields is the worker's state, reachable
  from tasks as ``ctx.state`` (``ctx.state_as(MyState)`` for a typed view); its code after
  ``yield`` runs once the worker drained (no task of this process runs any more). A failing
  startup stops the process with :class:`~taskq.errors.WorkerStartupError` (exit code 78).
- :class:`TaskHooks` (``tq.add_task_hooks(...)``): ``before(ctx)`` and ``after(ctx, outcome)``
  around each attempt of each task, in the worker's event loop, for tracing and metrics. A hook
  that raises (anything: SystemExit and KeyboardInterrupt too) is logged and ignored (it never
  fails a task, nor ends the worker). Workers pay nothing per task when
  none is added.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from taskq.context import TaskContext

log = logging.getLogger(__name__)

Lifespan = Callable[[], Any]
"""An async generator function yielding the state once, or a function returning an async
context manager."""


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """How one attempt ended: ``status`` is ``succeeded``, ``failed`` (``error`` set; it may
    still be retried), ``cancelled`` or ``expired`` (never started); ``duration_s`` is the
    attempt's run time (0 when it never ran)."""

    status: str
    error: BaseException | None
    duration_s: float


class TaskHooks(Protocol):
    """Called around each attempt (see the module); the same ``ctx`` object is passed to
    ``before`` and ``after``, so a hook may keep per-attempt data keyed by it."""

    def before(self, ctx: TaskContext) -> None: ...
    def after(self, ctx: TaskContext, outcome: TaskOutcome) -> None: ...


def as_context_manager(lifespan: Lifespan) -> contextlib.AbstractAsyncContextManager[Any]:
    """The worker lifespan as an async context manager."""
    if inspect.isasyncgenfunction(lifespan):
        return contextlib.asynccontextmanager(lifespan)()
    made = lifespan()
    if not isinstance(made, contextlib.AbstractAsyncContextManager):
        raise TypeError("a worker lifespan is an async generator function yielding once, or a "
                        "function returning an async context manager")
    return made


def run_before(hooks: tuple[TaskHooks, ...], ctx: TaskContext) -> None:
    for h in hooks:
        try:
            h.before(ctx)
        except BaseException:  # (a hook's SystemExit or KeyboardInterrupt ends nothing)
            log.exception("task hook %r failed before task %s", h, ctx.task_id)


def run_after(hooks: tuple[TaskHooks, ...], ctx: TaskContext, outcome: TaskOutcome) -> None:
    for h in hooks:
        try:
            h.after(ctx, outcome)
        except BaseException:  # (a hook's SystemExit or KeyboardInterrupt ends nothing)
            log.exception("task hook %r failed after task %s", h, ctx.task_id)
