"""Unique tasks: one task per key while it lives, atomic with the enqueue (issue 15)."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import Callable
from datetime import timedelta

import pytest

from taskq import TaskQueue, Worker
from taskq.errors import UniqueKeyReused
from taskq.integrations.durable import DurableTaskList
from taskq.records import TaskStatus
from tests.helpers import WorkerProcess, eventually
from tests.support import WORKER_APP, stream_len, traced


async def test_fifty_concurrent_enqueues_of_one_key_make_one_task(
    redis_url: str, prefix: str
) -> None:
    """50 enqueues of one key from 5 producers (own connections), 10 at once each: one task,
    and every handle names it (49 flagged deduplicated)."""
    producers = [TaskQueue(redis_url, prefix=prefix) for _ in range(5)]
    tasks = []
    for p in producers:
        @p.task(name="charge")
        async def charge(order: int) -> None: ...
        tasks.append(charge)
    try:
        handles = await asyncio.gather(*(
            t.with_options(key="order-42").enqueue(42) for t in tasks for _ in range(10)))
    finally:
        for p in producers:
            await p.aclose()
    assert len(handles) == 50
    assert len({h.id for h in handles}) == 1
    assert sum(not h.deduplicated for h in handles) == 1
    probe = TaskQueue(redis_url, prefix=prefix)
    try:
        assert await stream_len(probe) == 1
    finally:
        await probe.aclose()


async def test_the_key_lives_while_the_task_does_and_is_released_when_it_ends(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    gate = asyncio.Event()

    @tq.task(name="job")
    async def job(n: int) -> int:
        await gate.wait()
        return n

    first = await job.with_options(key="k").enqueue(1)
    again = await job.with_options(key="k").enqueue(2)  # queued: the same task
    assert (again.id, again.deduplicated, first.deduplicated) == (first.id, True, False)
    other = await job.with_options(key="other").enqueue(3)
    assert other.id != first.id
    start_worker(tq, block_ms=100)
    await eventually(lambda: _status_is(tq, first.id, TaskStatus.RUNNING), what="running")
    running = await job.with_options(key="k").enqueue(4)  # running: the same task
    assert running.id == first.id and running.deduplicated
    gate.set()
    assert await first.result(timeout=10) == 1
    # succeeded without unique_for: the key is free, a new task is made
    after = await job.with_options(key="k").enqueue(5)
    assert after.id != first.id and not after.deduplicated
    assert await after.result(timeout=10) == 5
    assert not await tq.redis.exists(tq.keys("default").unique("job:k"))


async def test_unique_for_keeps_the_key_after_success(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    @tq.task(name="job")
    async def job(n: int) -> int:
        return n

    start_worker(tq, block_ms=100)
    first = await job.with_options(key="k", unique_for=timedelta(seconds=30)).enqueue(1)
    assert await first.result(timeout=10) == 1
    again = await job.with_options(key="k", unique_for=30).enqueue(2)
    assert (again.id, again.deduplicated) == (first.id, True)
    ttl = await tq.redis.pttl(tq.keys("default").unique("job:k"))
    assert 0 < ttl <= 30_000


async def test_dead_and_cancelled_tasks_release_their_key(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    @tq.task(name="boom", max_attempts=1)
    async def boom() -> None:
        raise ValueError("no")

    @tq.task(name="later")
    async def later() -> None: ...

    start_worker(tq, block_ms=100)
    h = await boom.with_options(key="b").enqueue()
    await eventually(lambda: _status_is(tq, h.id, TaskStatus.DEAD), what="dead")
    assert not await tq.redis.exists(tq.keys("default").unique("boom:b"))
    assert not (await boom.with_options(key="b").enqueue()).deduplicated

    delayed = await later.with_options(key="c", delay=60).enqueue()
    assert delayed.run_at_ms is not None
    same = await later.with_options(key="c", delay=60).enqueue()
    assert (same.id, same.deduplicated, same.run_at_ms) == (delayed.id, True, delayed.run_at_ms)
    assert await delayed.cancel() == "delayed"
    assert not await tq.redis.exists(tq.keys("default").unique("later:c"))
    assert not (await later.with_options(key="c", delay=60).enqueue()).deduplicated


async def test_enqueue_many_dedupes_within_a_batch_and_keeps_the_order(tq: TaskQueue) -> None:
    @tq.task(name="job")
    async def job(n: int) -> None: ...

    msgs = [job.with_options(key="a").message(1), job.message(2),
            job.with_options(key="a").message(3), job.with_options(key="b").message(4)]
    handles = await tq.enqueue_many(msgs)
    assert [h.deduplicated for h in handles] == [False, False, True, False]
    assert handles[0].id == handles[2].id
    assert len({handles[0].id, handles[1].id, handles[3].id}) == 3
    assert await stream_len(tq) == 3
    (record,) = [await tq.status(handles[1].id)]
    assert record.kwargs == {"n": 2}


async def test_a_key_left_behind_by_a_vanished_task_is_taken_over(tq: TaskQueue) -> None:
    @tq.task(name="job")
    async def job() -> None: ...

    h = await job.with_options(key="k").enqueue()
    # the entry vanishes without any script ending it (an operator's XDEL, a lost payload)
    await tq.redis.xdel(tq.keys("default").stream, h.id.split(":")[-1])
    fresh = await job.with_options(key="k").enqueue()
    assert fresh.id != h.id and not fresh.deduplicated


def test_sync_enqueue_dedupes_too(redis_url: str, prefix: str) -> None:
    tq = TaskQueue(redis_url, prefix=prefix)

    @tq.task(name="job")
    def job(n: int) -> None: ...

    try:
        a = job.with_options(key="s").enqueue_sync(1)
        b = job.with_options(key="s").enqueue_sync(2)
        assert (b.id, b.deduplicated, a.deduplicated) == (a.id, True, False)
    finally:
        tq.close_sync()


async def test_a_fingerprint_that_differs_is_refused(tq: TaskQueue) -> None:
    @tq.task(name="job")
    async def job(n: int) -> None: ...

    def msg(n: int, fp: str) -> object:
        m = job.with_options(key="idem").message(n)
        assert m.options is not None
        return dataclasses.replace(m, options=dataclasses.replace(m.options, fingerprint=fp))

    (first,) = await tq.enqueue_many([msg(1, "aa")])  # type: ignore[list-item]
    (same,) = await tq.enqueue_many([msg(1, "aa")])  # type: ignore[list-item]
    assert same.id == first.id and same.deduplicated
    with pytest.raises(UniqueKeyReused) as reused:  # the whole call refused, atomically
        await tq.enqueue_many([job.message(9), msg(2, "bb")])  # type: ignore[list-item]
    assert (reused.value.key, reused.value.task_id) == ("job:idem", first.id)
    with pytest.raises(UniqueKeyReused) as twice:  # a new key given twice for two requests
        await tq.enqueue_many([msg(1, "aa"), msg(2, "bb")])  # type: ignore[list-item]
    assert twice.value.task_id == "" and "twice" in str(twice.value)
    assert await stream_len(tq) == 1  # neither refused call added anything
    # a code enqueue sends no fingerprint: it dedupes onto the request's task by the key alone
    code = await job.with_options(key="idem").enqueue(3)
    assert (code.id, code.deduplicated) == (first.id, True)
    # and a key a code enqueue took holds none: any request with it answers that task
    held = await job.with_options(key="code").enqueue(4)
    m = job.with_options(key="code").message(5)
    assert m.options is not None
    (asked,) = await tq.enqueue_many(
        [dataclasses.replace(m, options=dataclasses.replace(m.options, fingerprint="cc"))])
    assert (asked.id, asked.deduplicated) == (held.id, True)


async def test_a_python_key_dedupes_whatever_the_arguments(tq: TaskQueue) -> None:
    """Issue 15 (as BullMQ's jobId, rq's job_id): the key alone dedupes; other arguments, another
    delay, a batch giving the key twice, DurableTasks: one task, never UniqueKeyReused."""
    @tq.task(name="job")
    async def job(n: int, tag: str = "") -> None: ...

    first = await job.with_options(key="k").enqueue(1, tag="x")
    handles = [await job.with_options(key="k").enqueue(2),
               await job.with_options(key="k", delay=5).enqueue(1, tag="x"),
               *await tq.enqueue_many([job.with_options(key="k").message(3),
                                       job.with_options(key="k", delay=9).message(4)])]
    tasks = DurableTaskList()
    tasks.add_task(job, 5, key="k")  # type: ignore[call-arg]
    tasks.add_task(job.with_options(key="k"), 6, tag="y")
    handles += await tasks.flush()
    assert [(h.id, h.deduplicated) for h in handles] == [(first.id, True)] * 6
    batch = await tq.enqueue_many([job.with_options(key="b").message(1),
                                   job.with_options(key="b").message(2)])
    assert (batch[1].id, batch[1].deduplicated) == (batch[0].id, True)
    assert await stream_len(tq) == 2
    assert not await tq.redis.exists(tq.keys("default").delayed)
    assert (await first.status()).kwargs == {"n": 1, "tag": "x"}  # the first call stands


def test_bad_keys_are_refused(tq: TaskQueue) -> None:
    @tq.task(name="job")
    async def job() -> None: ...

    for bad in ("", "has space", "x" * 201, "tab\tkey"):
        with pytest.raises(ValueError, match="unique key"):
            job.with_options(key=bad)
    with pytest.raises(ValueError, match="needs a key"):
        job.with_options(unique_for=5)


async def _status_is(tq: TaskQueue, task_id: str, status: TaskStatus) -> bool:
    return (await tq.status(task_id)).status is status


async def test_durable_tasks_take_a_key(tq: TaskQueue) -> None:
    @tq.task(name="job")
    async def job(n: int) -> None: ...

    @tq.task(name="keyed")
    async def keyed(key: str) -> None: ...  # its own parameter named key: an argument

    tasks = DurableTaskList()
    tasks.add_task(job.with_options(key="order-1"), 1)
    tasks.add_task(job, 2, key="order-1")  # type: ignore[call-arg]
    tasks.add_task(keyed, key="order-1")
    a, b, c = await tasks.flush()
    assert (b.id, b.deduplicated, a.deduplicated) == (a.id, True, False)
    assert not c.deduplicated and (await c.status()).kwargs == {"key": "order-1"}


async def test_a_sigkilled_workers_unique_task_keeps_its_key_until_another_finishes_it(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    """The key lives with the task through a worker's death (its entry stays pending), so a
    repeated enqueue meanwhile adds nothing; the worker that reclaims and finishes it frees
    the key."""
    slow = app.registry["slow"]
    lease = ("--lease-ms", "2000")
    first = worker_process(WORKER_APP, *lease)
    h = await slow.with_options(key="k").enqueue("a", 1.5)
    await eventually(lambda: traced(app, "started", 1), timeout=15, what="task started")
    first.signal(signal.SIGKILL)
    first.wait(10)
    again = await slow.with_options(key="k").enqueue("b", 0.0)  # its task is pending: alive
    assert (again.id, again.deduplicated) == (h.id, True)
    worker_process(WORKER_APP, *lease)
    record = await h.wait(timeout=30)
    assert record.status is TaskStatus.SUCCEEDED and record.result == "a"
    assert not await app.redis.exists(app.keys("default").unique("slow:k"))
    assert not (await slow.with_options(key="k").enqueue("c", 0.0)).deduplicated


async def test_unique_keys_with_priorities_and_limits(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    """A key lives in its priority lane (where its task is found); a task holding both a
    concurrency slot and a unique key frees both when it is dead-lettered."""
    @tq.task(name="job", queue="pq")
    async def job(n: int) -> None: ...

    high = await job.with_options(key="k", priority="high").enqueue(1)
    again = await job.with_options(key="k", priority="high").enqueue(2)
    assert (again.id, again.deduplicated) == (high.id, True)
    assert high.id.startswith("pq!high:")

    @tq.task(name="capped", queue="cq", concurrency_limit=1, max_attempts=1)
    async def capped() -> None:
        raise ValueError("no")

    start_worker(tq, queues=("cq",), block_ms=100)
    h = await capped.with_options(key="c").enqueue()
    assert (await h.wait(timeout=15)).status is TaskStatus.DEAD
    assert not await tq.redis.exists(tq.keys("cq").unique("capped:c"))
    h2 = await capped.with_options(key="c").enqueue()  # the slot was freed too: it runs
    assert not h2.deduplicated
    assert (await h2.wait(timeout=15)).status is TaskStatus.DEAD


async def test_a_limited_task_that_succeeds_frees_its_slot_and_its_key(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    @tq.task(name="ok", queue="oq", concurrency_limit=1)
    async def ok(n: int) -> int:
        return n

    start_worker(tq, queues=("oq",), block_ms=100)
    first = await ok.with_options(key="k").enqueue(1)
    plain = await ok.enqueue(2)  # the same batch may hold keyed and plain items
    assert await first.result(timeout=15) == 1 and await plain.result(timeout=15) == 2
    assert not await tq.redis.exists(tq.keys("oq").unique("ok:k"))
    kept = await ok.with_options(key="k", unique_for=60).enqueue(3)
    assert not kept.deduplicated and await kept.result(timeout=15) == 3  # the slot was freed
    assert (await ok.with_options(key="k").enqueue(4)).id == kept.id  # kept after success
