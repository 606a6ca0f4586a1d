"""OpenTelemetry tracing of enqueue (producer side): the optional extra ``taskq-streams[otel]``.

:func:`instrument` turns it on for one :class:`~taskq.queue.TaskQueue`; until then (and when
``opentelemetry-api`` is not installed) ``TaskQueue.tracing`` is None and an enqueue pays one
``is None`` test (decided when the TaskQueue is instrumented, not per message), and neither
this module nor OpenTelemetry is imported. With it on, each enqueued message gets a PRODUCER
span ``send <queue>`` (a child of the span current at the enqueue, e.g. the web request's)
whose context travels in the envelope's optional ``c`` field; the worker's CONSUMER span of
each attempt is its child and links to it (:mod:`taskq.worker.tracing`), so one trace runs
from the request to every attempt.

Attributes follow the OpenTelemetry messaging conventions: ``messaging.system`` ("taskq"),
``messaging.operation.name`` / ``.type`` ("send"), ``messaging.destination.name`` (the queue),
``messaging.message.id`` (the task id, once Redis gave it), plus ``taskq.task.name``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from taskq.codec import Message

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
except ImportError:  # the extra is not installed: tracing cannot be turned on
    AVAILABLE = False
else:
    AVAILABLE = True

if TYPE_CHECKING:
    from taskq.handle import TaskHandle
    from taskq.queue import TaskQueue

SYSTEM = "taskq"
"""``messaging.system`` of every span (the conventions' list has no Redis Streams value)."""
INSTRUMENTATION = "taskq"

class Tracing:
    """The tracer a TaskQueue's producer and workers use (made by :func:`instrument`)."""

    def __init__(self, tracer: Tracer, provider: TracerProvider | None = None) -> None:
        self.tracer = tracer
        self.provider = provider  # None: the global one

    def records(self) -> bool:
        """Whether spans may be recorded: a provider was given, or the global one was set
        (by the SDK, ``opentelemetry-instrument``...). Asked once when a worker is made."""
        provider = self.provider or trace.get_tracer_provider()
        return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)

    @staticmethod
    def untraced(messages: Iterable[Message]) -> bool:
        """Whether some message has no trace context yet (``TaskQueue`` asks it first: the
        traced enqueue calls it back with messages that all carry one)."""
        return any(m.trace is None for m in messages)

    async def enqueue_one(self, app: TaskQueue, msg: Message) -> TaskHandle[Any]:
        sends = self.start_sends(app, (msg,))
        try:
            handle = await app.enqueue_one(sends.messages[0])
        except BaseException as exc:
            sends.failed(exc)
            raise
        sends.sent((handle,))
        return handle

    async def enqueue_many(self, app: TaskQueue, messages: Iterable[Message],
                           **options: Any) -> list[TaskHandle[Any]]:
        """``app.enqueue_many(messages, **options)`` with a producer span per message."""
        sends = self.start_sends(app, messages)
        try:
            handles = await app.enqueue_many(sends.messages, **options)
        except BaseException as exc:
            sends.failed(exc)
            raise
        sends.sent(handles)
        return handles

    def enqueue_many_sync(self, app: TaskQueue, messages: Iterable[Message],
                          *args: Any) -> list[TaskHandle[Any]]:
        """``app._enqueue_many_sync(messages, *args)`` with a producer span per message."""
        sends = self.start_sends(app, messages)
        try:
            handles = app._enqueue_many_sync(sends.messages, *args)
        except BaseException as exc:
            sends.failed(exc)
            raise
        sends.sent(handles)
        return handles

    def start_sends(self, app: TaskQueue, messages: Iterable[Message]) -> Sends:
        """A PRODUCER span per message that carries no trace context yet, with its context
        put in a copy of the message (an empty one when the span is not recorded: the
        envelope then has no ``c``, and the message counts as traced)."""
        spans: list[Span | None] = []
        sent: list[Message] = []
        for msg in messages:
            if msg.trace is not None:
                spans.append(None)
                sent.append(msg)
                continue
            queue = msg.queue or app._queue_of(msg.task)
            span = self.tracer.start_span(
                f"send {queue}", kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": SYSTEM,
                    "messaging.operation.name": "send",
                    "messaging.operation.type": "send",
                    "messaging.destination.name": queue,
                    "taskq.task.name": msg.task,
                })
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            spans.append(span)
            sent.append(replace(msg, trace=carrier))
        return Sends(spans, sent)


class Sends:
    """The producer spans of one enqueue call, ended when it returns or fails."""

    __slots__ = ("messages", "spans")

    def __init__(self, spans: list[Span | None], messages: list[Message]) -> None:
        self.spans = spans
        self.messages = messages

    def sent(self, handles: Sequence[TaskHandle[Any]]) -> None:
        for span, handle in zip(self.spans, handles, strict=False):
            if span is not None:
                span.set_attribute("messaging.message.id", handle.id)
                span.end()

    def failed(self, exc: BaseException) -> None:
        for span in self.spans:
            if span is not None:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                span.end()


def instrument(app: TaskQueue, tracer_provider: TracerProvider | None = None) -> None:
    """Trace ``app``'s enqueues, and the attempts of every worker that loads it, with
    ``tracer_provider`` (default: the global one, as configured by the OpenTelemetry SDK or
    ``opentelemetry-instrument``). Call it where the TaskQueue is made, so that the web app
    and the workers both do. Raises ImportError without ``opentelemetry-api``."""
    if not AVAILABLE:
        raise ImportError("taskq tracing needs opentelemetry-api: "
                          "pip install 'taskq-streams[otel]'")
    app.tracing = Tracing(trace.get_tracer(INSTRUMENTATION, tracer_provider=tracer_provider),
                          tracer_provider)


def uninstrument(app: TaskQueue) -> None:
    """Stop tracing ``app`` (workers started afterwards do not trace)."""
    app.tracing = None
