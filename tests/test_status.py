"""Task status through a task's life, cancellation in every place, and record expiry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from taskq import (
    ResultUnavailable,
    TaskContext,
    TaskFailed,
    TaskNotFound,
    TaskQueue,
    TaskStatus,
    Worker,
)
from taskq.records import bucket_key
from tests.helpers import eventually
from tests.support import dead_letters, end_lean, stream_len

FAST = {"block_ms": 100}


async def status_is(tq: TaskQueue, task_id: str, status: TaskStatus) -> bool:
    return (await tq.status(task_id)).status is status


async def test_queued_running_succeeded(tq: TaskQueue,
                                        start_worker: Callable[..., Worker]) -> None:
    release = asyncio.Event()

    @tq.task
    async def gated(n: int) -> int:
        await release.wait()
        return n * 2

    handle = await gated.enqueue(21)
    record = await handle.status()
    assert record.status is TaskStatus.QUEUED
    assert (record.task, record.kwargs, record.attempts) == (gated.name, {"n": 21}, 0)
    assert record.enqueued_ms is not None

    worker = start_worker(tq, **FAST)
    await eventually(lambda: status_is(tq, handle.id, TaskStatus.RUNNING), timeout=5,
                     what="running")
    record = await handle.status()
    assert record.worker == worker.id and record.deliveries == 1

    release.set()
    record = await handle.wait(timeout=5)
    assert record.status is TaskStatus.SUCCEEDED and record.terminal
    assert record.result == 42 and record.attempts == 1 and not record.result_dropped
    assert record.started_ms is not None and record.finished_ms is not None
    assert record.finished_ms >= record.started_ms
    assert record.to_dict()["status"] == "succeeded"


async def test_failed_then_dead(tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    @tq.task(max_attempts=2, backoff=1.0)
    async def broken() -> None:
        raise RuntimeError("broken")

    start_worker(tq, **FAST)
    handle = await broken.enqueue()
    await eventually(lambda: status_is(tq, handle.id, TaskStatus.FAILED), timeout=5,
                     what="failed, waiting for its retry")
    record = await handle.status()
    assert record.attempts == 1 and record.error == "broken" and record.run_at_ms
    assert not record.terminal
    record = await handle.wait(timeout=10)
    assert record.status is TaskStatus.DEAD and record.attempts == 2
    assert "broken" in (record.error or "")
    with pytest.raises(TaskFailed):
        await handle.result()


async def test_a_result_not_kept_for_lack_of_memory_says_so(tq: TaskQueue) -> None:
    @tq.task
    async def double(n: int) -> int:
        return n * 2

    handle = await double.enqueue(21)
    await end_lean(tq, handle.id)  # as a worker ends it while Redis is out of memory
    record = await handle.wait(timeout=5)
    assert record.status is TaskStatus.SUCCEEDED and record.terminal
    assert record.result_dropped and record.result is None
    assert record.to_dict()["result_dropped"] is True
    # typed (its int return type would fail to validate None) and untyped handles alike
    for h in (handle, tq.handle(handle.id)):
        with pytest.raises(ResultUnavailable, match="succeeded but its result was not kept: "
                                                    "Redis was out of memory") as e:
            await h.result(timeout=5)
        assert e.value.task_id == handle.id

    def from_sync_code() -> None:
        with pytest.raises(ResultUnavailable):
            tq.sync_handle(handle.id).result(timeout=5)
    await asyncio.to_thread(from_sync_code)

    # a lean cancelled record is still a cancel
    cancelled = await double.enqueue(1)
    await end_lean(tq, cancelled.id, TaskStatus.CANCELLED)
    with pytest.raises(TaskFailed, match="cancelled"):
        await cancelled.result(timeout=5)


async def test_unknown_ids(tq: TaskQueue) -> None:
    for task_id in ("default:1700000000000-0", "default:1700000000000-d00ab"):
        with pytest.raises(TaskNotFound):
            await tq.status(task_id)
    with pytest.raises(TaskNotFound):
        await tq.status("not an id")
    assert await tq.cancel("default:1700000000000-0") == "unknown"


# -- cancellation ----------------------------------------------------------------------------


async def test_cancel_a_delayed_task(tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    runs: list[int] = []

    @tq.task
    async def later() -> None:
        runs.append(1)

    handle = await later.with_options(delay=0.5).enqueue()
    assert await handle.cancel() == "delayed"
    record = await handle.status()
    assert record.status is TaskStatus.CANCELLED
    start_worker(tq, **FAST)
    await asyncio.sleep(1.0)  # past its due time
    assert runs == []
    assert await tq.redis.zcard(tq.keys("default").delayed) == 0
    assert await tq.redis.hlen(tq.keys("default").payloads) == 0
    with pytest.raises(TaskFailed):
        await handle.result(timeout=1)
    assert await handle.cancel() == "unknown"


async def test_cancel_a_queued_task_with_no_worker(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    runs: list[int] = []

    @tq.task
    async def queued(n: int) -> None:
        runs.append(n)

    handles = [await queued.enqueue(n) for n in range(3)]
    assert await handles[1].cancel() == "queued"
    assert (await handles[1].status()).status is TaskStatus.CANCELLED
    assert await stream_len(tq) == 2
    start_worker(tq, **FAST)
    for h in (handles[0], handles[2]):
        assert (await h.wait(timeout=5)).status is TaskStatus.SUCCEEDED
    assert sorted(runs) == [0, 2]
    assert (await handles[1].status()).status is TaskStatus.CANCELLED


async def test_cancel_a_running_async_task(tq: TaskQueue,
                                           start_worker: Callable[..., Worker]) -> None:
    started = asyncio.Event()
    cancelled: list[bool] = []

    @tq.task
    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    worker = start_worker(tq, flags_every_ms=100, **FAST)
    handle = await forever.enqueue()
    await asyncio.wait_for(started.wait(), 5)
    assert await handle.cancel() == "running"
    record = await handle.wait(timeout=5)
    assert record.status is TaskStatus.CANCELLED
    assert cancelled == [True]
    assert await dead_letters(tq) == []
    assert await stream_len(tq) == 0
    assert await tq.redis.hlen(tq.keys("default").cancels) == 0  # the request is cleared
    with pytest.raises(TaskFailed) as info:
        await handle.result()
    assert info.value.status == "cancelled"
    # the worker goes on
    @tq.task
    async def after() -> str:
        return "fine"

    assert await (await after.enqueue()).result(timeout=5) == "fine"
    assert worker.counters.dead == 0


async def test_cancel_a_running_sync_task_discards_its_result(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    seen_cancel: list[bool] = []

    @tq.task
    def polls(ctx: TaskContext) -> str:
        for _ in range(100):
            if ctx.cancelled:
                seen_cancel.append(True)
                break
            time.sleep(0.02)
        return "finished anyway"

    start_worker(tq, flags_every_ms=100, **FAST)
    handle = await polls.enqueue()
    await eventually(lambda: status_is(tq, handle.id, TaskStatus.RUNNING), timeout=5,
                     what="running")
    assert await handle.cancel() == "running"
    record = await handle.wait(timeout=5)
    assert record.status is TaskStatus.CANCELLED and record.result is None
    assert seen_cancel == [True]


async def test_progress_shows_in_status(tq: TaskQueue,
                                        start_worker: Callable[..., Worker]) -> None:
    release = asyncio.Event()

    @tq.task
    async def reports(ctx: TaskContext) -> None:
        await ctx.progress(0.25, "a quarter")
        await release.wait()

    start_worker(tq, **FAST)
    handle = await reports.enqueue()

    async def reported() -> object:
        rec = await handle.status()
        return rec if rec.progress is not None else None

    record = await eventually(reported, timeout=5, what="progress")
    assert record.status is TaskStatus.RUNNING
    assert (record.progress, record.progress_message) == (0.25, "a quarter")
    release.set()
    assert (await handle.wait(timeout=5)).status is TaskStatus.SUCCEEDED


async def test_cancel_a_waiting_retry(tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    runs: list[int] = []

    @tq.task(max_attempts=3, backoff=30)
    async def flaky() -> None:
        runs.append(1)
        raise RuntimeError("again")

    start_worker(tq, **FAST)
    handle = await flaky.enqueue()
    await eventually(lambda: status_is(tq, handle.id, TaskStatus.FAILED), timeout=5,
                     what="failed")
    assert await handle.cancel() == "delayed"
    record = await handle.status()
    assert record.status is TaskStatus.CANCELLED
    assert runs == [1]


# -- expiry ----------------------------------------------------------------------------------


@pytest.fixture
async def short_lived(redis_url: str, prefix: str) -> AsyncIterator[TaskQueue]:
    app = TaskQueue(redis_url, prefix=prefix, result_ttl=1.0)
    yield app
    await app.aclose()


async def test_records_expire(short_lived: TaskQueue,
                              start_worker: Callable[..., Worker]) -> None:
    app = short_lived

    @app.task
    async def quick() -> int:
        return 1

    @app.task(result_ttl=30)
    async def kept() -> int:
        return 2

    start_worker(app, **FAST)
    handle = await quick.enqueue()
    assert await handle.result(timeout=5) == 1
    bucket = bucket_key(app.keys("default"), handle.id)
    ttl = await app.redis.pttl(bucket)
    assert 0 < ttl <= 1_100  # the TTL, plus at most a tenth of slack
    await eventually(lambda: _gone(app, bucket), timeout=5, what="record expired")
    with pytest.raises(TaskNotFound):
        await handle.status()

    handle = await kept.enqueue()
    assert await handle.result(timeout=5) == 2
    bucket = bucket_key(app.keys("default"), handle.id)
    assert 1_100 < await app.redis.pttl(bucket) <= 33_000


async def _gone(app: TaskQueue, key: str) -> bool:
    return not await app.redis.exists(key)
