"""Priorities: lanes of a queue read highest first, kept through retries; queue order."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from taskq import TaskQueue, TaskStatus, Worker, WorkerConfig, admin, priority
from taskq.keys import QueueKeys
from taskq.testing import Harness
from taskq.worker import readorder
from taskq.worker.ledger import Ledger
from tests.helpers import eventually


def test_lanes_share_the_queue_hash_tag_and_pause_flag() -> None:
    q, hi = QueueKeys("p", "emails"), QueueKeys("p", "emails!high")
    assert hi.tag == q.tag == "{p:emails}"
    assert hi.stream == "{p:emails}:high:stream" and q.stream == "{p:emails}:stream"
    assert hi.delayed != q.delayed and hi.records(3) != q.records(3)
    assert hi.paused == q.paused
    assert hi.limit("rate", "t") == q.limit("rate", "t")
    assert priority.split("a!b!low") == ("a!b", "low")
    assert priority.split("odd!name") == ("odd!name", "normal")
    assert priority.lanes("emails") == ("emails!high", "emails", "emails!low")
    with pytest.raises(ValueError, match="priority"):
        priority.lane("emails", "urgent")  # type: ignore[arg-type]


def test_read_order_strict_weighted_and_ranks() -> None:
    queues = ["b", "a!low", "a", "a!high", "b!high"]
    assert readorder.plan(queues, ["a", "b"], "strict") == ["a!high", "a", "a!low", "b!high",
                                                              "b"]
    assert readorder.plan(queues, ["a", "b"], None)[0] == "a!high"
    firsts = [readorder.plan(["a", "b"], ["a", "b"], "weighted", random.Random(i))[0]
              for i in range(2000)]
    share = firsts.count("a") / len(firsts)
    assert 0.58 < share < 0.75  # weights 2:1
    assert readorder.ranks(queues, ["a", "b"], None)["a!high"] == 0
    assert readorder.ranks(queues, ["a", "b"], "strict")["b"] == 4
    assert not readorder.sequential(["a"], "strict")
    assert not readorder.sequential(["a", "b"], None)
    assert readorder.sequential(["a", "a!high"], None)


async def test_waiting_deliveries_start_by_rank() -> None:
    ledger = Ledger(WorkerConfig(concurrency=1))
    started: list[str] = []

    async def run(d: object) -> None:
        started.append(d.entry_id)  # type: ignore[attr-defined]

    ledger.runs(run)  # type: ignore[arg-type]
    for i, rank in enumerate([1, 1, 2, 0, 1, 0]):
        ledger.accept("q", f"{i}-0", b"", 1, rank)
    assert [d.entry_id for d in ledger.waiting] == ["3-0", "5-0", "1-0", "4-0", "2-0"]
    await asyncio.sleep(0)


async def test_priority_routes_to_a_lane_and_status_cancel_follow(tq: TaskQueue) -> None:
    @tq.task(queue="jobs")
    async def job(n: int) -> int:
        return n

    urgent = tq.task(queue="jobs", priority="high", name="urgent")(lambda: None)
    h = await job.with_options(priority="high").enqueue(1)
    assert h.id.startswith("jobs!high:")
    assert (await h.status()).status is TaskStatus.QUEUED
    assert await h.cancel() == "queued"
    h2 = await urgent.enqueue()
    assert h2.id.startswith("jobs!high:")
    low = await tq.enqueue_many([job.with_options(priority="low").message(2)], delay=30)
    assert low[0].id.startswith("jobs!low:")
    assert (await low[0].status()).status is TaskStatus.QUEUED
    h3 = await job.enqueue(3)
    assert h3.id.startswith("jobs:")
    members = await tq.redis.smembers(f"{tq.prefix}:queues")  # type: ignore[misc]
    assert {b"jobs", b"jobs!high", b"jobs!low"} <= set(members)


async def test_high_priority_overtakes_a_backlog(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    order: list[str] = []

    @tq.task(queue="mix")
    async def work(tag: str) -> None:
        order.append(tag)
        await asyncio.sleep(0.005)

    await (await work.with_options(priority="high").enqueue("warm")).cancel()  # lane known
    await tq.enqueue_many([work.message(f"low{i}") for i in range(2000)])
    w = start_worker(tq, queues=("mix",), concurrency=4, prefetch=4, batch=8, block_ms=100)
    await eventually(lambda: _true(len(order) >= 50), timeout=30, what="backlog started")
    assert "mix!high" in w.keys
    at_enqueue = len(order)
    h = await work.with_options(priority="high").enqueue("high")
    await h.result(timeout=30)
    assert len(order) < 2000, "premise: the backlog was still there"
    overtaken = order.index("high") - at_enqueue
    # started before it: what the worker held when it was enqueued (capacity 8) and at most
    # one read batch (8) read meanwhile; never the backlog
    assert 0 <= overtaken <= 16, overtaken


async def test_a_lane_first_used_after_the_worker_started_is_read(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    """The worker finds a new lane while it runs and reads it (the reader looks up its queues
    before every read; a merge once froze them at start, so such a lane was never read)."""
    ran: list[str] = []

    @tq.task(queue="late")
    async def work(tag: str) -> None:
        ran.append(tag)

    w = start_worker(tq, queues=("late",), block_ms=100, flags_every_ms=100)
    assert await (await work.enqueue("normal")).result(timeout=20) is None
    assert "late!high" not in w.keys  # premise: the lane did not exist when it started
    h = await work.with_options(priority="high").enqueue("high")
    await h.result(timeout=20)
    assert ran == ["normal", "high"] and "late!high" in w.keys


async def test_lanes_found_at_start_are_read_first(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    order: list[str] = []

    @tq.task(queue="mix")
    async def work(tag: str) -> None:
        order.append(tag)

    await tq.enqueue_many([work.with_options(priority="low").message(f"low{i}")
                           for i in range(50)])
    await tq.enqueue_many([work.message(f"mid{i}") for i in range(50)])
    await tq.enqueue_many([work.with_options(priority="high").message(f"hi{i}")
                           for i in range(50)])
    start_worker(tq, queues=("mix",), concurrency=1, batch=10, prefetch=0, block_ms=100)
    await eventually(lambda: _true(len(order) == 150), timeout=30, what="all ran")
    assert [t[:2] for t in order] == ["hi"] * 50 + ["mi"] * 50 + ["lo"] * 50


async def test_a_retried_high_task_stays_high(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    tries: list[str] = []

    @tq.task(queue="r", backoff=0.01, max_backoff=0.01)
    async def flaky() -> str:
        tries.append("x")
        if len(tries) < 2:
            raise RuntimeError("first try fails")
        return "ok"

    h = await flaky.with_options(priority="high").enqueue()
    start_worker(tq, queues=("r",), block_ms=100, promote_every_ms=20)
    assert await h.result(timeout=20) == "ok"
    rec = await h.status()
    assert rec.attempts == 2 and rec.queue == "r!high"


async def test_strict_queue_order(tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    order: list[str] = []

    @tq.task(queue="first")
    async def a(i: int) -> None:
        order.append("a")

    @tq.task(queue="second")
    async def b(i: int) -> None:
        order.append("b")

    await tq.enqueue_many([b.message(i) for i in range(40)])
    await tq.enqueue_many([a.message(i) for i in range(40)])
    start_worker(tq, queues=("first", "second"), queue_order="strict", concurrency=1,
                 prefetch=0, batch=5, block_ms=100)
    await eventually(lambda: _true(len(order) == 80), timeout=30, what="all ran")
    assert order == ["a"] * 40 + ["b"] * 40


async def _true(value: bool) -> bool:
    return value


memory_app = TaskQueue("redis://127.0.0.1:1/0", prefix="prio")  # rebound by the harness
memory_ran: list[str] = []


@memory_app.task(queue="m")
async def note(tag: str) -> str:
    memory_ran.append(tag)
    return tag


@memory_app.task(queue="m", rate_limit="2/m", concurrency_limit=1)
async def scarce(tag: str) -> str:
    memory_ran.append(tag)
    return tag


@pytest.fixture
def taskq_app() -> TaskQueue:
    memory_ran.clear()
    return memory_app


async def test_drain_runs_lanes_highest_first_and_limited_tasks(taskq_memory: Harness) -> None:
    await memory_app.enqueue_many([note.message("mid"),
                                   note.with_options(priority="low").message("low"),
                                   note.with_options(priority="high").message("high")])
    result = await taskq_memory.drain()
    assert memory_ran == ["high", "mid", "low"]
    assert result.succeeded == 3
    memory_ran.clear()
    handles = [await scarce.enqueue(str(i)) for i in range(3)]
    await taskq_memory.drain()  # waits are fast-forwarded like delays
    assert sorted(memory_ran) == ["0", "1", "2"]
    for h in handles:
        assert (await h.status()).attempts == 1


async def test_operator_view_of_lanes_and_replay_back_into_the_lane(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    @tq.task(queue="ops", max_attempts=1)
    async def fails(n: int) -> None:
        raise RuntimeError("no")

    await tq.enqueue_many([fails.message(i) for i in range(3)])
    await tq.enqueue_many([fails.with_options(priority="high").message(9)])
    info = await admin.queue_info(tq, "ops")
    assert info.priority_waiting == {"high": 1, "normal": 3, "low": 0}
    names = [q.name for q in await admin.list_queues(tq)]
    assert "ops" in names and "ops!high" in names
    (high,) = await admin.list_tasks(tq, "ops!high", status="queued")
    assert high.queue == "ops!high"
    start_worker(tq, queues=("ops",), **{"block_ms": 100})
    record = await tq.wait(high.id, timeout=20)
    assert record.status is TaskStatus.DEAD
    letters = await admin.dead_letters(tq, "ops!high")
    assert [d.task_id for d in letters] == [high.id]
    assert await admin.replay_dead(tq, "ops!high") == 1
    await eventually(lambda: _dead_again(tq, high.id), timeout=20, what="replayed, died again")


async def _dead_again(tq: TaskQueue, task_id: str) -> bool:
    return len(await admin.dead_letters(tq, "ops!high")) == 1 and (
        await tq.status(task_id)).status is TaskStatus.DEAD


async def test_a_worker_of_one_lane_reads_only_it(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    ran: list[str] = []

    @tq.task(queue="only")
    async def job(tag: str) -> None:
        ran.append(tag)

    await job.enqueue("normal")
    h = await job.with_options(priority="high").enqueue("high")
    w = start_worker(tq, queues=("only!high",), block_ms=100)
    await h.result(timeout=20)
    await w.maintenance.discover_lanes()
    assert list(w.keys) == ["only!high"] and ran == ["high"]


@pytest.mark.parametrize("order", ["weighted", "strict"])
async def test_weighted_order_does_not_starve_a_later_queue_under_steady_load(
        tq: TaskQueue, start_worker: Callable[..., Worker], order: str) -> None:
    """A real worker of queues ("hot", "cold") with a backlog on "hot" that outlasts the test:
    with --queue-order weighted every "cold" task runs while "hot" still has thousands queued
    (a read takes "cold" first about a third of the time); in strict order (the contrast that
    shows the test can fail) "cold" waits for "hot" to be empty."""
    ran: list[str] = []

    @tq.task(queue="hot", name="hot_job")
    async def hot_job(n: int) -> None:
        ran.append("hot")
        await asyncio.sleep(0.002)

    @tq.task(queue="cold", name="cold_job")
    async def cold_job(n: int) -> None:
        ran.append("cold")

    backlog = 3000
    await tq.enqueue_many([hot_job.message(i) for i in range(backlog)])
    await tq.enqueue_many([cold_job.message(i) for i in range(20)])
    start_worker(tq, queues=("hot", "cold"), queue_order=order, concurrency=4, prefetch=4,
                 batch=4, block_ms=100)
    if order == "strict":
        await eventually(lambda: _true(ran.count("hot") >= 400), timeout=60,
                         what="400 hot tasks run")
        assert ran.count("cold") == 0  # starved while "hot" has a backlog
        return
    await eventually(lambda: _true(ran.count("cold") == 20), timeout=60,
                     what="every cold task run")
    hot = ran.count("hot")
    assert hot < 1000, f"{hot} hot tasks ran before the 20 cold ones: cold waited"
    assert backlog - hot > 1000  # premise: the high-priority load was steady throughout
