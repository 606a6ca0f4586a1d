"""Run-at (an absolute, timezone-aware time) and expiry (ends ``expired``, never run)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from taskq import TaskQueue, Worker, admin
from taskq.records import TaskStatus


async def test_run_at_runs_at_that_time_not_before(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    started: list[int] = []

    @tq.task(name="job")
    async def job() -> None:
        sec, usec = await tq.redis.time()
        started.append(int(sec) * 1000 + int(usec) // 1000)

    start_worker(tq, block_ms=100)
    at = datetime.now(UTC) + timedelta(seconds=1.5)
    h = await job.with_options(at=at).enqueue()
    at_ms = int(at.timestamp() * 1000)
    assert h.run_at_ms is not None and abs(h.run_at_ms - at_ms) < 1000  # (clocks may differ)
    assert (await tq.status(h.id)).status is TaskStatus.QUEUED
    await h.wait(timeout=15)
    assert started and started[0] >= h.run_at_ms  # on the Redis clock


async def test_run_at_in_the_past_runs_now_and_naive_times_are_refused(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    @tq.task(name="job")
    async def job() -> int:
        return 1

    with pytest.raises(ValueError, match="timezone-aware"):
        job.with_options(at=datetime.now() + timedelta(seconds=5))
    with pytest.raises(ValueError, match="timezone-aware"):
        job.with_options(expires=datetime.now() + timedelta(seconds=5))
    with pytest.raises(ValueError, match="not both"):
        job.with_options(at=datetime.now(UTC), delay=1)
    start_worker(tq, block_ms=100)
    h = await job.with_options(at=datetime.now(UTC) - timedelta(hours=1)).enqueue()
    assert await h.result(timeout=10) == 1


async def test_a_task_not_started_before_its_expiry_ends_expired(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    ran: list[int] = []

    @tq.task(name="job")
    async def job(n: int) -> None:
        ran.append(n)

    stale = await job.with_options(expires=timedelta(milliseconds=200), key="u").enqueue(1)
    stale_at = await job.with_options(
        expires=datetime.now(UTC) + timedelta(milliseconds=200)).enqueue(2)
    fresh = await job.with_options(expires=timedelta(minutes=5)).enqueue(3)
    plain = await job.enqueue(4)
    await asyncio.sleep(0.4)  # (the premise: both expiries have passed before any worker runs)
    t0 = time.monotonic()
    start_worker(tq, block_ms=100)
    for h in (stale, stale_at):
        record = await h.wait(timeout=10)
        assert record.status is TaskStatus.EXPIRED
        assert "expired" in (record.error or "")
    assert (await fresh.wait(timeout=10)).status is TaskStatus.SUCCEEDED
    assert (await plain.wait(timeout=10)).status is TaskStatus.SUCCEEDED
    assert sorted(ran) == [3, 4]
    assert time.monotonic() - t0 < 10
    info = await admin.queue_info(tq, "default")
    assert info.expired_total == 2 and info.completed_total == 2
    assert not await tq.redis.exists(tq.keys("default").unique("job:u"))  # released
    listed = await admin.list_tasks(tq, "default", status="expired")
    assert {t.id for t in listed} == {stale.id, stale_at.id}


async def test_a_delayed_task_whose_expiry_passes_first_expires(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    @tq.task(name="job")
    async def job() -> None: ...

    start_worker(tq, block_ms=100)
    h = await job.with_options(delay=0.5, expires=timedelta(milliseconds=100)).enqueue()
    assert (await h.wait(timeout=10)).status is TaskStatus.EXPIRED
