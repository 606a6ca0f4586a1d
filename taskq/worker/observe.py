"""Observers of outcomes: what the task log line, the task metrics and tracing see of each
attempt's end, chosen once when a worker is made (never per task).

:class:`Outcomes <taskq.worker.outcomes.Outcomes>` calls :meth:`Observer.ended` once per
outcome written (succeeded or cancelled handed to the completer, retried, dead-lettered), in
the runner's asyncio task: an observer may read the context of the attempt (its span).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from taskq.codec import Message
from taskq.queue import TaskQueue
from taskq.worker.admission import Ready, Refused
from taskq.worker.ledger import Delivery

log = logging.getLogger(__name__)


class Observer(Protocol):
    def ended(self, task_id: str, msg: Message | None, queue: str, outcome: str, reason: str,
              attempt: int, started_ms: int | None, error_type: str, error: str) -> None:
        """``outcome``: succeeded, cancelled, retried or dead; ``reason``: for dead, the
        dead-letter reason; for retried, ``timeout``, ``retry_requested`` or ``error``;
        empty otherwise. ``msg`` is None for an entry that could not be decoded;
        ``started_ms`` is None when the attempt never ran."""
        ...


class Fanout:
    """Several observers as one."""

    __slots__ = ("observers",)

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.observers = tuple(observers)

    def ended(self, task_id: str, msg: Message | None, queue: str, outcome: str, reason: str,
              attempt: int, started_ms: int | None, error_type: str, error: str) -> None:
        for o in self.observers:
            o.ended(task_id, msg, queue, outcome, reason, attempt, started_ms, error_type, error)


def combined(observers: Sequence[Observer | None]) -> Observer | None:
    """None for no observer (a worker then pays one ``is None`` test per outcome), the one
    itself, or a :class:`Fanout`."""
    present = [o for o in observers if o is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else Fanout(present)


class Attempts(Protocol):
    """Wraps each attempt (:class:`taskq.worker.tracing.AttemptTracing`)."""

    async def run(self, d: Delivery, ready: Ready,
                  run: Callable[[Delivery, Ready], Awaitable[None]]) -> None: ...

    async def refused(self, d: Delivery, refused: Refused, dead: Awaitable[None]) -> None: ...


def tracing_parts(app: TaskQueue, worker_id: str) -> tuple[Attempts | None, list[Observer]]:
    """The attempt wrapper and the span observer of an instrumented TaskQueue
    (:func:`taskq.tracing.instrument`), else nothing; OpenTelemetry is imported only then.
    Instrumented with the global provider while none is set (no SDK configured): nothing
    either, and it says so once."""
    if app.tracing is None:
        return None, []
    if not app.tracing.records():
        log.info("tracing off in worker %s: no OpenTelemetry tracer provider is configured",
                 worker_id)
        return None, []
    from taskq.worker.tracing import AttemptTracing, SpanEvents  # noqa: PLC0415 (optional)

    return AttemptTracing(app.tracing, worker_id), [SpanEvents()]
