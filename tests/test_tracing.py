"""OpenTelemetry tracing (taskq.tracing, taskq.worker.tracing): one trace from the web request
that enqueues through every attempt, with the SDK's in-memory exporter; nothing of it when a
TaskQueue is not instrumented."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import msgpack
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from taskq import TaskQueue, Worker, codec
from taskq.codec import FIELD
from taskq.errors import DecodeError
from taskq.fastapi import DurableTasks
from taskq.tracing import instrument, uninstrument
from tests.helpers import eventually

# each test's own provider (never the global one: set once per process, it would leak)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exp = InMemorySpanExporter()
    yield exp
    exp.clear()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    p = TracerProvider()
    p.add_span_processor(SimpleSpanProcessor(exporter))
    yield p
    p.shutdown()


@pytest.fixture
async def traced(tq: TaskQueue, provider: TracerProvider) -> AsyncIterator[TaskQueue]:
    instrument(tq, tracer_provider=provider)
    yield tq
    uninstrument(tq)


def spans(exporter: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind is kind]


async def envelope(tq: TaskQueue, queue: str = "default") -> dict[str, Any]:
    """The last entry of ``queue``'s stream, decoded as it is stored."""
    [(_, fields)] = await tq.redis.xrevrange(tq.keys(queue).stream, count=1)
    body: dict[str, Any] = msgpack.unpackb(fields.get(FIELD) or fields[FIELD.decode()])
    return body


async def test_one_trace_spans_the_request_the_enqueue_and_the_attempt(
        traced: TaskQueue, provider: TracerProvider, exporter: InMemorySpanExporter,
        start_worker: Callable[..., Worker]) -> None:
    tq = traced
    inner = provider.get_tracer("test")
    seen: list[tuple[int, int]] = []

    @tq.task(name="welcome")
    async def welcome(email: str) -> str:
        # the attempt's span is current while the task runs: its own spans nest under it
        with inner.start_as_current_span("send the mail") as span:
            ctx = span.get_span_context()
            seen.append((ctx.trace_id, ctx.span_id))
        return f"sent to {email}"

    web = FastAPI()

    @web.post("/users")
    async def register(email: str, tasks: DurableTasks) -> dict[str, str]:
        tasks.add_task(welcome, email)
        return {"email": email}

    FastAPIInstrumentor.instrument_app(web, tracer_provider=provider)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web),
                                 base_url="http://test") as client:
        r = await client.post("/users", params={"email": "a@b.c"})
    assert r.status_code == 200
    [producer] = spans(exporter, SpanKind.PRODUCER)
    server = [s for s in spans(exporter, SpanKind.SERVER) if s.name.startswith("POST")]
    assert len(server) == 1
    # the enqueue is a child of the request's span, and its context is in the envelope
    assert producer.parent is not None and producer.parent.span_id == server[0].context.span_id
    assert producer.name == "send default"
    body = await envelope(tq)
    assert body["c"]["traceparent"].split("-")[1] == f"{producer.context.trace_id:032x}"

    start_worker(tq, queues=("default",))
    task_id = producer.attributes["messaging.message.id"]  # type: ignore[index]
    assert await tq.handle(str(task_id)).result(timeout=20) == "sent to a@b.c"
    [consumer] = await consumers(exporter, 1)
    trace_id = server[0].context.trace_id
    assert producer.context.trace_id == consumer.context.trace_id == trace_id
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    assert [link.context.span_id for link in consumer.links] == [producer.context.span_id]
    assert consumer.name == "process default"
    attrs = dict(consumer.attributes or {})
    assert attrs["messaging.system"] == "taskq"
    assert attrs["messaging.operation.name"] == "process"
    assert attrs["messaging.destination.name"] == "default"
    assert attrs["messaging.message.id"] == task_id
    assert attrs["taskq.task.name"] == "welcome"
    assert attrs["taskq.task.attempt"] == 1
    assert attrs["taskq.task.outcome"] == "succeeded"
    assert dict(producer.attributes or {})["messaging.operation.type"] == "send"
    # the task's own span: in the same trace, under the attempt's
    [(inner_trace, _)] = seen
    assert inner_trace == trace_id
    [mail] = [s for s in exporter.get_finished_spans() if s.name == "send the mail"]
    assert mail.parent is not None and mail.parent.span_id == consumer.context.span_id


async def consumers(exporter: InMemorySpanExporter, n: int) -> list[ReadableSpan]:
    """The attempts' spans, once there are ``n`` (a span ends just after the outcome)."""

    async def ended() -> list[ReadableSpan] | None:
        found = spans(exporter, SpanKind.CONSUMER)
        return found if len(found) == n else None

    found: list[ReadableSpan] = await eventually(ended, timeout=10, what=f"{n} attempt spans")
    return found


async def test_retries_and_dead_letters_are_span_events(
        traced: TaskQueue, exporter: InMemorySpanExporter,
        start_worker: Callable[..., Worker]) -> None:
    tq = traced

    @tq.task(name="flaky", max_attempts=2, backoff=0.01)
    async def flaky() -> None:
        raise ValueError("nope")

    handle = await flaky.enqueue()
    [producer] = spans(exporter, SpanKind.PRODUCER)
    start_worker(tq, queues=("default",))
    record = await tq.wait(handle.id, timeout=20)
    assert record.status.value == "dead"
    attempts = await consumers(exporter, 2)
    first, second = sorted(attempts, key=lambda s: str((s.attributes or {})["taskq.task.attempt"]))
    for span in (first, second):  # both children of the one enqueue
        assert span.context.trace_id == producer.context.trace_id
        assert span.parent is not None and span.parent.span_id == producer.context.span_id
        assert span.status.status_code is trace.StatusCode.ERROR
        exc = next(e for e in span.events if e.name == "exception")
        assert exc.attributes == {"exception.type": "ValueError", "exception.message": "nope"}
    assert first.attributes["taskq.task.outcome"] == "retried"  # type: ignore[index]
    [retry] = [e for e in first.events if e.name == "taskq.retry"]
    assert retry.attributes == {"taskq.retry.reason": "error", "taskq.task.attempt": 1}
    assert second.attributes["taskq.task.outcome"] == "dead"  # type: ignore[index]
    [dead] = [e for e in second.events if e.name == "taskq.dead_letter"]
    assert dead.attributes == {"taskq.dead_letter.reason": "max_attempts",
                               "taskq.task.attempt": 2}


async def test_an_entry_refused_before_it_runs_is_dead_lettered_in_a_span(
        traced: TaskQueue, exporter: InMemorySpanExporter,
        start_worker: Callable[..., Worker]) -> None:
    tq = traced
    handle = await tq.enqueue_one(codec.Message("nobody.knows", queue="default"))
    [producer] = spans(exporter, SpanKind.PRODUCER)
    start_worker(tq, queues=("default",), unknown_grace_s=0)  # unknown: dead at once
    assert (await tq.wait(handle.id, timeout=20)).status.value == "dead"
    [span] = await consumers(exporter, 1)
    assert span.parent is not None and span.parent.span_id == producer.context.span_id
    assert dict(span.attributes or {})["taskq.task.outcome"] == "dead"
    [dead] = [e for e in span.events if e.name == "taskq.dead_letter"]
    assert dict(dead.attributes or {})["taskq.dead_letter.reason"] == "unknown_task"


async def test_batches_sync_and_delayed_enqueues_are_traced(
        traced: TaskQueue, exporter: InMemorySpanExporter) -> None:
    tq = traced

    @tq.task(name="job", queue="jobs")
    def job(n: int) -> int:
        return n

    handles = await tq.enqueue_many([job.message(i) for i in range(3)])
    later = await job.with_options(delay=60).enqueue(9)
    blocking = job.enqueue_sync(7)
    produced = spans(exporter, SpanKind.PRODUCER)
    ids = {h.id for h in handles} | {later.id, blocking.id}
    assert {s.attributes["messaging.message.id"] for s in produced} == ids  # type: ignore[index]
    assert {s.name for s in produced} == {"send jobs"}
    assert len({s.context.trace_id for s in produced}) == 5  # each enqueue a root of its own
    tq.close_sync()


async def test_a_failed_enqueue_ends_its_span_with_the_error(
        traced: TaskQueue, exporter: InMemorySpanExporter) -> None:
    tq = traced.configured(url="redis://127.0.0.1:1/0")  # nothing listens there

    @traced.task(name="lost")
    async def lost() -> None: ...

    assert tq.tracing is traced.tracing
    with pytest.raises(Exception):  # noqa: B017 (which connection error is not the point)
        await tq.enqueue_many([lost.message()])
    await tq.aclose()
    [span] = spans(exporter, SpanKind.PRODUCER)
    assert span.status.status_code is trace.StatusCode.ERROR
    assert any(e.name == "exception" for e in span.events)


async def test_no_tracer_means_no_context_in_the_envelope_and_no_wrapper(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    @tq.task(name="plain")
    async def plain() -> int:
        return 1

    handle = await plain.enqueue()
    assert "c" not in await envelope(tq)
    w = start_worker(tq, queues=("default",))
    assert w.runner._attempts is None  # decided when the worker was made
    assert await handle.result(timeout=20) == 1


async def test_a_provider_that_records_nothing_leaves_no_context(tq: TaskQueue) -> None:
    instrument(tq, tracer_provider=trace.NoOpTracerProvider())
    assert Worker(tq).runner._attempts is None  # a worker then makes no spans at all

    @tq.task(name="quiet")
    async def quiet() -> None: ...

    await quiet.enqueue()  # (an empty context must not send the enqueue round in circles)
    assert "c" not in await envelope(tq)
    await tq.enqueue_many([quiet.message()])
    assert "c" not in await envelope(tq)


def test_instrumented_with_no_provider_configured_a_worker_does_not_trace() -> None:
    # a fresh process: the global provider is still OpenTelemetry's proxy (nothing set)
    code = ("from taskq import TaskQueue, Worker\n"
            "from taskq.tracing import instrument\n"
            "tq = TaskQueue()\n"
            "instrument(tq)\n"
            "assert Worker(tq).runner._attempts is None\n"
            "from opentelemetry import trace\n"
            "from opentelemetry.sdk.trace import TracerProvider\n"
            "trace.set_tracer_provider(TracerProvider())\n"
            "assert Worker(tq).runner._attempts is not None\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stderr


def test_taskq_does_not_import_opentelemetry_unless_instrumented() -> None:
    # (FastAPI itself imports opentelemetry-api since 0.16x: the web edges are left out here)
    code = ("import sys, taskq, taskq.worker.core, taskq.worker.metrics\n"
            "assert not [m for m in sys.modules if m.startswith('opentelemetry')], "
            "sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
            "import taskq.service.app\n"
            "assert 'taskq.tracing' not in sys.modules\n"
            "assert 'taskq.worker.tracing' not in sys.modules\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stderr


def test_without_the_extra_instrument_says_what_to_install() -> None:
    code = ("import sys\n"
            "sys.modules['opentelemetry'] = None  # as if opentelemetry-api were not installed\n"
            "from taskq import TaskQueue\n"
            "from taskq.tracing import instrument\n"
            "try:\n"
            "    instrument(TaskQueue())\n"
            "except ImportError as exc:\n"
            "    print(exc)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert "pip install 'taskq-streams[otel]'" in run.stdout


def test_the_trace_context_field_round_trips_and_is_checked() -> None:
    ctx = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    traced_msg = codec.decode(codec.encode(codec.Message("t", (1,), trace=ctx)))
    assert traced_msg.trace == ctx and traced_msg.args == (1,)
    plain = codec.encode(codec.Message("t"))
    assert "c" not in msgpack.unpackb(plain) and codec.decode(plain).trace is None
    # an empty context (a span that was not recorded) is not written
    assert "c" not in msgpack.unpackb(codec.encode(codec.Message("t", trace={})))
    base = {"v": 1, "t": "t", "a": [], "k": {}, "n": 0, "e": 0}
    for bad in ([1], "x", {"traceparent": 1}, {"traceparent": None}):
        with pytest.raises(DecodeError, match="trace context"):
            codec.decode(msgpack.packb({**base, "c": bad}))
    # an unknown optional field leaves the fast path for the full check, which ignores it
    assert codec.decode(msgpack.packb({**base, "x": 1})).task == "t"
