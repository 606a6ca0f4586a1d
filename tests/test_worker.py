"""The happy path: async, sync (thread) and cpu_bound (process pool) tasks run and return."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from taskq import TaskContext, TaskQueue, TaskStatus, Worker, WorkerConfig, current_context
from tests.apps import cpu
from tests.helpers import eventually


async def test_async_task_result(tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    @tq.task
    async def add(a: int, b: int) -> int:
        return a + b

    start_worker(tq, block_ms=100)
    handle = await add.enqueue(2, b=3)
    assert await handle.result(timeout=10) == 5
    record = await handle.status()
    assert record.status is TaskStatus.SUCCEEDED
    assert record.attempts == 1
    assert record.task == add.name
    assert record.result == 5


async def test_sync_task_runs_in_a_thread(tq: TaskQueue,
                                         start_worker: Callable[..., Worker]) -> None:
    loop_thread = threading.get_ident()

    @tq.task
    def where(word: str) -> dict[str, object]:
        return {"word": word.upper(), "in_loop_thread": threading.get_ident() == loop_thread}

    start_worker(tq, block_ms=100)
    handle = await where.enqueue("hello")
    assert await handle.result(timeout=10) == {"word": "HELLO", "in_loop_thread": False}


async def test_cpu_bound_task_runs_in_a_process(tq: TaskQueue,
                                                start_worker: Callable[..., Worker]) -> None:
    burn = tq.task(cpu_bound=True)(cpu.burn)
    start_worker(tq, processes=1, block_ms=100)
    handles = [await burn.enqueue(n) for n in (10, 1000)]
    results = [await h.result(timeout=60) for h in handles]
    assert [r["total"] for r in results] == [sum(i * i for i in range(n)) for n in (10, 1000)]
    assert all(r["pid"] != os.getpid() for r in results)


async def test_context_is_injected_and_current(tq: TaskQueue,
                                               start_worker: Callable[..., Worker]) -> None:
    @tq.task
    async def who(x: int, ctx: TaskContext) -> list[object]:
        assert current_context() is ctx
        return [x, ctx.task_id, ctx.attempt, ctx.max_attempts]

    start_worker(tq, block_ms=100)
    handle = await who.enqueue(7)
    assert await handle.result(timeout=10) == [7, handle.id, 1, 3]


async def test_results_of_many_tasks(tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    @tq.task
    async def square(x: int) -> int:
        return x * x

    start_worker(tq, concurrency=20, block_ms=100)
    handles = await tq.enqueue_many([square.message(i) for i in range(300)])
    assert len({h.id for h in handles}) == 300
    assert [await h.result(timeout=20) for h in handles] == [i * i for i in range(300)]


async def test_results_round_trip_through_the_return_type(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)

    @tq.task
    async def stamp() -> datetime:
        return when

    @tq.task
    def pair() -> tuple[int, str]:
        return (1, "a")

    start_worker(tq, block_ms=100)
    assert await (await stamp.enqueue()).result(timeout=10) == when
    assert await (await pair.enqueue()).result(timeout=10) == (1, "a")


async def test_cpu_bound_timeout(tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    spin = tq.task(cpu_bound=True, timeout=0.5, max_attempts=1)(cpu.spin)
    start_worker(tq, processes=1, block_ms=100)
    record = await (await spin.enqueue(3.0)).wait(timeout=20)
    assert record.status is TaskStatus.DEAD and record.error_type == "TimeoutError"


async def test_concurrency_limit_holds_with_prefetched_entries(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    """Entries read beyond the run slots wait without a runner and start as slots free up:
    never more than `concurrency` run at once, and every one runs."""
    running = 0
    most = 0

    @tq.task
    async def slow(i: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        return i

    handles = await tq.enqueue_many([slow.message(i) for i in range(60)])
    start_worker(tq, concurrency=3, prefetch=20, block_ms=100)
    results = [await h.result(timeout=30) for h in handles]
    assert results == list(range(60))
    assert most == 3


async def test_finished_entries_waiting_for_their_ack_leave_room_to_read(
        tq: TaskQueue, start_worker: Callable[..., Worker],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """While the group commit's round trip is under way the worker goes on reading and running
    (finished entries do not hold back reads), up to its capacity again: stalled acks still
    stop it."""
    ran: list[int] = []

    @tq.task
    async def quick(i: int) -> int:
        ran.append(i)
        return i

    handles = await tq.enqueue_many([quick.message(i) for i in range(12)])
    acks_open = asyncio.Event()
    complete = tq.scripts.complete

    async def stalled_complete(*args: Any, **kwargs: Any) -> list[str]:
        await acks_open.wait()
        return await complete(*args, **kwargs)

    monkeypatch.setattr(tq.scripts, "complete", stalled_complete)
    worker = start_worker(tq, concurrency=2, prefetch=1, block_ms=100)  # capacity 3

    async def six_ran() -> bool:
        return len(ran) >= 6

    await eventually(six_ran, timeout=10, what="twice the capacity run while no ack is done")
    assert len(ran) == 6 and len(worker.held) == 6
    assert all(d.acking for d in worker.held.values())
    acks_open.set()
    assert [await h.result(timeout=10) for h in handles] == list(range(12))


async def test_transition_hook_sees_each_transition_before_it_is_made(tq: TaskQueue) -> None:
    """The hook the fault suite installs to crash at a transition (Worker(on_transition=...)):
    called after a read and before each ack, retry and dead letter is made."""
    seen: list[tuple[str, int, int]] = []

    def on_transition(name: str) -> None:
        seen.append((name, worker.counters.retried, worker.counters.dead))

    @tq.task(max_attempts=2, backoff=0.01)
    async def fails() -> None:
        raise RuntimeError("always")

    @tq.task
    async def works() -> int:
        return 1

    worker = Worker(tq, WorkerConfig(block_ms=100, promote_every_ms=50),
                    on_transition=on_transition)
    run = asyncio.create_task(worker.run())
    try:
        ok = await works.enqueue()
        assert await ok.result(timeout=10) == 1
        bad = await fails.enqueue()
        record = await bad.wait(timeout=10)
        assert record.status is TaskStatus.DEAD
    finally:
        worker.stop()
        await asyncio.wait_for(run, 30)
    names = [n for n, *_ in seen]
    assert names.count("before_ack") == 1
    # a read (after any number of empty ones) came before each task ran: the two tasks and
    # the retry; each run's outcome came after its read
    order = [n for i, n in enumerate(names) if i == 0 or n != "after_read" or names[i - 1] != n]
    while order and order[-1] == "after_read":
        order.pop()  # empty reads until the worker stopped
    assert order == ["after_read", "before_ack", "after_read", "before_retry", "after_read",
                     "before_dead"], names
    assert [s for s in seen if s[0] in ("before_retry", "before_dead")] == [
        ("before_retry", 0, 0), ("before_dead", 1, 0)]  # each seen before it was counted
    assert worker.counters.retried == 1 and worker.counters.dead == 1
