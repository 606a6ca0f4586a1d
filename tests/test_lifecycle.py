"""Worker lifespan (startup/shutdown once per process, state as ``ctx.state``) and task hooks."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from taskq import TaskContext, TaskOutcome, TaskQueue, Worker, WorkerConfig, WorkerStartupError
from taskq.worker.process import EXIT_CONFIG
from tests.apps.common import trace_key
from tests.helpers import WorkerProcess, eventually


@dataclass
class State:
    db: str
    events: list[str]


async def test_lifespan_state_reaches_tasks_and_shutdown_runs_after_the_drain(
    tq: TaskQueue
) -> None:
    events: list[str] = []
    started = asyncio.Event()

    @tq.worker_lifespan
    async def lifespan() -> AsyncIterator[State]:
        events.append("startup")
        yield State("pool", events)
        events.append("shutdown")

    @tq.task(name="use")
    async def use(ctx: TaskContext, n: int) -> str:
        started.set()
        await asyncio.sleep(0.2)
        state = ctx.state_as(State)
        state.events.append(f"task {n}")
        return state.db

    @tq.task(name="sync_use")
    def sync_use(ctx: TaskContext) -> str:
        return ctx.state_as(State).db

    with pytest.raises(ValueError, match="lifespan already"):
        tq.worker_lifespan(lifespan)
    worker = Worker(tq, WorkerConfig(block_ms=100))
    run = asyncio.create_task(worker.run())
    h = await use.enqueue(1)
    s = await sync_use.enqueue()
    assert await h.result(timeout=10) == "pool"
    assert await s.result(timeout=10) == "pool"
    assert events == ["startup", "task 1"]
    started.clear()
    h2 = await use.enqueue(2)
    await asyncio.wait_for(started.wait(), 10)
    worker.stop()
    await asyncio.wait_for(run, 30)
    assert events == ["startup", "task 1", "task 2", "shutdown"]  # shutdown after the drain
    assert (await h2.status()).status == "succeeded"


async def test_a_failing_startup_ends_the_worker_with_a_startup_error(tq: TaskQueue) -> None:
    @tq.worker_lifespan
    async def lifespan() -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    @tq.task(name="never")
    async def never() -> None: ...

    h = await never.enqueue()
    worker = Worker(tq, WorkerConfig(block_ms=100))
    with pytest.raises(WorkerStartupError, match="no database"):
        await asyncio.wait_for(worker.run(), 30)
    assert worker.counters.processed == 0
    assert (await h.status()).status == "queued"  # never read


def test_a_failing_startup_exits_with_the_configuration_code(
    worker_process: Callable[..., WorkerProcess]
) -> None:
    w = worker_process("tests.apps.lifespan_app:tq", env={"TEST_LIFESPAN_FAIL": "1"})
    assert w.wait(60) == EXIT_CONFIG
    out = w.output()
    assert "the worker lifespan failed at startup: RuntimeError: the database is not there" in out


async def test_lifespan_in_a_worker_process_runs_once_each_way(
    worker_process: Callable[..., WorkerProcess], redis_url: str, prefix: str
) -> None:
    w = worker_process("tests.apps.lifespan_app:tq", "--concurrency", "4")
    tq = TaskQueue(redis_url, prefix=prefix)

    @tq.task(name="state_of")
    async def state_of(ctx: TaskContext) -> str: ...

    try:
        handles = [await state_of.enqueue() for _ in range(3)]
        assert [await h.result(timeout=30) for h in handles] == ["connected"] * 3
        w.signal(signal.SIGTERM)
        assert w.wait(60) == 0
        assert await tq.redis.lrange(trace_key(prefix, "lifespan"), 0, -1) == [  # type: ignore[misc]
            f"shutdown {w.pid}".encode()]
    finally:
        await tq.aclose()


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.open: dict[int, str] = {}

    def before(self, ctx: TaskContext) -> None:
        self.open[id(ctx)] = ctx.task_id
        self.calls.append(("before", ctx.task, ""))

    def after(self, ctx: TaskContext, outcome: TaskOutcome) -> None:
        assert self.open.pop(id(ctx)) == ctx.task_id  # the same context as before()
        assert outcome.duration_s >= 0
        self.calls.append(("after", ctx.task, outcome.status
                           + (f":{type(outcome.error).__name__}" if outcome.error else "")))


class Broken:
    def before(self, ctx: TaskContext) -> None:
        raise RuntimeError("hook bug")

    def after(self, ctx: TaskContext, outcome: TaskOutcome) -> None:
        raise RuntimeError("hook bug")


async def test_task_hooks_see_each_attempt_and_its_outcome(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    rec = Recorder()
    tq.add_task_hooks(rec)
    tq.add_task_hooks(Broken())  # a failing hook is logged, never fails a task

    @tq.task(name="ok")
    async def ok() -> int:
        return 1

    @tq.task(name="flaky", max_attempts=2, backoff=0.01)
    async def flaky() -> None:
        raise ValueError("no")

    start_worker(tq, block_ms=100)
    assert await (await ok.enqueue()).result(timeout=10) == 1
    await (await flaky.enqueue()).wait(timeout=10)
    await eventually(lambda: _true(len(rec.calls) == 6), what="six hook calls")
    assert rec.calls == [
        ("before", "ok", ""), ("after", "ok", "succeeded"),
        ("before", "flaky", ""), ("after", "flaky", "failed:ValueError"),
        ("before", "flaky", ""), ("after", "flaky", "failed:ValueError"),
    ]


async def _true(value: bool) -> bool:
    return value
