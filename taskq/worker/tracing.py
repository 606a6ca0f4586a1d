"""OpenTelemetry tracing of attempts (worker side; see :mod:`taskq.tracing` for the producer).

Imported only by a worker whose TaskQueue was instrumented (:func:`taskq.tracing.instrument`);
otherwise the runner pays one ``is None`` test per delivery and no span is made.

Each attempt is a CONSUMER span ``process <queue>``. Following the OpenTelemetry messaging
conventions for a message processed alone, it is a child of the producer's span whose context
the envelope carries (so the web request, the enqueue and every attempt form one trace) and
links to it; an envelope without one starts a trace of its own. The span is current while the
task runs (its own spans, and the Redis calls it makes, nest under it; a sync task's thread
gets the context too, a cpu_bound task's process does not). Attributes: ``messaging.system``,
``messaging.operation.name``/``.type`` ("process"), ``messaging.destination.name``,
``messaging.message.id`` (the task id), ``messaging.consumer.group.name``,
``messaging.client.id`` (the worker id), ``taskq.task.name``, ``taskq.task.attempt``, and
``taskq.task.outcome`` (succeeded, cancelled, retried, dead; absent when the outcome was
discarded: lease lost, or handed back at shutdown). An entry refused before it runs (unknown
task, invalid arguments, poison) and dead-lettered gets such a span too when it carries a
context. A retry adds the event ``taskq.retry``, a
dead letter ``taskq.dead_letter`` (with its reason), a failed attempt an ``exception`` event
and the status ERROR.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from taskq.codec import Message
from taskq.keys import GROUP
from taskq.tracing import SYSTEM, Tracing
from taskq.worker.admission import Ready, Refused
from taskq.worker.ledger import Delivery

Run = Callable[[Delivery, Ready], Awaitable[None]]


class AttemptTracing:
    """Wraps each attempt of one worker in its span (see the module)."""

    def __init__(self, tracing: Tracing, worker_id: str) -> None:
        self.tracer = tracing.tracer
        self.worker_id = worker_id

    async def run(self, d: Delivery, ready: Ready, run: Run) -> None:
        """Run ``run(d, ready)`` (the attempt and its outcome) in the attempt's span."""
        await self.traced(d, ready.msg, ready.task_id, ready.attempt, run(d, ready))

    async def refused(self, d: Delivery, refused: Refused, dead: Awaitable[None]) -> None:
        """Dead-letter an entry refused before it ran (``dead``) in a span of its own when it
        carries a trace context (an unknown task, invalid arguments, a poison entry)."""
        msg = refused.msg
        if msg is None or not msg.trace:
            await dead
            return
        await self.traced(d, msg, refused.task_id, refused.attempts or msg.attempts + 1, dead)

    async def traced(self, d: Delivery, msg: Message, task_id: str, attempt: int,
                     step: Awaitable[None]) -> None:
        parent = propagate.extract(msg.trace) if msg.trace else None
        producer = trace.get_current_span(parent).get_span_context() if parent else None
        links = [Link(producer)] if producer is not None and producer.is_valid else None
        span = self.tracer.start_span(
            f"process {d.queue}", context=parent, kind=SpanKind.CONSUMER, links=links,
            attributes={
                "messaging.system": SYSTEM,
                "messaging.operation.name": "process",
                "messaging.operation.type": "process",
                "messaging.destination.name": d.queue,
                "messaging.message.id": task_id,
                "messaging.consumer.group.name": GROUP,
                "messaging.client.id": self.worker_id,
                "taskq.task.name": msg.task,
                "taskq.task.attempt": attempt,
            })
        token = context.attach(trace.set_span_in_context(span, parent))
        try:
            await step
        finally:
            context.detach(token)
            span.end()


class SpanEvents:
    """The observer (:mod:`taskq.worker.observe`) that writes each outcome on the attempt's
    span, the current one where the outcome is written (a no-op outside a span)."""

    __slots__ = ()

    def ended(self, task_id: str, msg: Message | None, queue: str, outcome: str, reason: str,
              attempt: int, started_ms: int | None, error_type: str, error: str) -> None:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        span.set_attribute("taskq.task.outcome", outcome)
        if error_type:
            span.add_event("exception", {"exception.type": error_type,
                                         "exception.message": error})
            span.set_status(Status(StatusCode.ERROR, error_type))
        if outcome == "retried":
            span.add_event("taskq.retry", {"taskq.retry.reason": reason,
                                           "taskq.task.attempt": attempt})
        elif outcome == "dead":
            span.add_event("taskq.dead_letter", {"taskq.dead_letter.reason": reason,
                                                 "taskq.task.attempt": attempt})
