"""A maintenance duty that keeps failing the same way is logged once, then at most once per
interval with how many failures were not logged, and that count again when it works again."""

from __future__ import annotations

import asyncio
import logging

import pytest

from taskq import TaskQueue, Worker, WorkerConfig
from taskq.errors import RedisOutOfMemory, RedisTimeout
from taskq.worker import maintenance
from taskq.worker.maintenance import RepeatedFailures

OOM = ("RedisOutOfMemory", "Redis is out of memory")


def test_the_first_of_a_kind_is_logged_then_once_per_interval_with_a_count() -> None:
    r = RepeatedFailures(every_s=60)
    assert r.failed(OOM, now=100.0) == 0  # the first: logged
    assert [r.failed(OOM, now=100.0 + i) for i in range(1, 60)] == [None] * 59
    assert r.failed(OOM, now=160.0) == 59  # an interval later: logged, with the count
    assert r.failed(OOM, now=161.0) is None
    # another failure is logged at once; back to the first kind, that one is new again
    assert r.failed(("RedisTimeout", "no reply"), now=162.0) == 0
    assert r.failed(OOM, now=163.0) == 0
    assert r.failed(OOM, now=164.0) is None
    assert r.succeeded() == 1  # the failure not logged, said when it works again
    assert r.succeeded() == 0
    assert r.failed(OOM, now=165.0) == 0  # after a success, a failure is new


async def test_a_failing_duty_is_not_logged_on_every_cycle(
        tq: TaskQueue, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maintenance, "REPEAT_LOG_EVERY_S", 3600.0)  # (the interval: above)
    worker = Worker(tq, WorkerConfig(queues=("default",)))  # not run: only its maintenance
    failures = 150
    calls = 0

    async def promote() -> None:  # full Redis refuses every promote, then has room again
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise RedisOutOfMemory("Redis is out of memory")
        if calls == failures + 2:  # (a later success has nothing more to say)
            worker.maintenance.halt()

    with caplog.at_level(logging.WARNING, logger="taskq.worker.maintenance"):
        await asyncio.wait_for(worker.maintenance._every("promote", 1, promote, jitter=False),
                               timeout=60)
    assert calls == failures + 2
    assert [r.getMessage() for r in caplog.records] == [
        "promote failed: RedisOutOfMemory: Redis is out of memory",
        "promote works again (149 more failures before, not logged)"]


async def test_different_failures_are_each_logged(
        tq: TaskQueue, caplog: pytest.LogCaptureFixture) -> None:
    worker = Worker(tq, WorkerConfig(queues=("default",)))
    errors = [RedisOutOfMemory("full"), RedisTimeout("slow"), RedisOutOfMemory("full")]
    calls = 0

    async def promote() -> None:
        nonlocal calls
        calls += 1
        if calls <= len(errors):
            raise errors[calls - 1]
        worker.maintenance.halt()

    with caplog.at_level(logging.WARNING, logger="taskq.worker.maintenance"):
        await asyncio.wait_for(worker.maintenance._every("promote", 1, promote, jitter=False),
                               timeout=30)
    assert [r.getMessage() for r in caplog.records] == [
        "promote failed: RedisOutOfMemory: full", "promote failed: RedisTimeout: slow",
        "promote failed: RedisOutOfMemory: full"]
