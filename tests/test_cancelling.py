"""Ending tasks for sure (taskq.cancelling), without Redis: a task that swallows a cancel (as
redis-py sometimes does) still ends; one that swallows every cancel is reported, not waited for."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from taskq.cancelling import RECANCEL_EVERY_S, bounded, cancel_and_wait


class Swallower:
    """A task body that sleeps and swallows the first ``times`` cancels (counted)."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.cancels = 0

    async def run(self) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancels += 1
                if self.cancels > self.times:
                    raise
                # swallowed, as redis-py's `except BaseException` paths may: the task is left
                # "cancelling" but runs on


async def test_one_cancel_is_not_enough_for_a_task_that_swallows_it() -> None:
    """The premise: a single cancel leaves such a task running."""
    body = Swallower(1)
    task = asyncio.create_task(body.run())
    await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=RECANCEL_EVERY_S * 4)
    assert not done and body.cancels == 1
    task.cancel()
    await asyncio.wait({task}, timeout=1)
    assert task.cancelled()


async def test_a_swallowed_cancel_is_repeated_until_the_task_ends() -> None:
    body = Swallower(2)
    task = asyncio.create_task(body.run())
    await asyncio.sleep(0)
    began = time.monotonic()
    survivors = await cancel_and_wait([task], timeout_s=5)
    assert survivors == set()
    assert task.cancelled() and body.cancels == 3
    assert time.monotonic() - began < 1  # re-cancelled every RECANCEL_EVERY_S, not at the end


async def test_a_task_that_never_ends_is_reported_at_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = Swallower(10**9)
    task = asyncio.create_task(body.run(), name="stubborn")
    await asyncio.sleep(0)
    began = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="taskq.cancelling"):
        survivors = await cancel_and_wait([task], timeout_s=0.3, what="duty")
    took = time.monotonic() - began
    assert survivors == {task} and not task.done()
    assert 0.3 <= took < 2
    assert body.cancels >= 3  # cancelled again and again meanwhile
    assert "duty stubborn still running" in caplog.text
    assert "in run" in caplog.text and "asyncio.sleep(3600)" in caplog.text  # with its stack
    body.times = 0  # (let it go at last)
    task.cancel()
    await asyncio.wait({task}, timeout=1)
    assert task.cancelled()


async def test_done_and_finished_tasks_need_no_wait() -> None:
    async def quick() -> int:
        return 1

    task = asyncio.create_task(quick())
    await task
    began = time.monotonic()
    assert await cancel_and_wait([task], timeout_s=5) == set()
    assert time.monotonic() - began < RECANCEL_EVERY_S
    assert task.result() == 1


async def test_bounded_cuts_a_step_off_for_sure(caplog: pytest.LogCaptureFixture) -> None:
    body = Swallower(1)
    with caplog.at_level(logging.ERROR, logger="taskq.cancelling"):
        assert await bounded(body.run(), timeout_s=0.1, what="the step") is False
    assert "the step did not finish within 0.1 s" in caplog.text
    assert body.cancels == 2  # swallowed once, then cancelled again: it ended

    async def quick() -> int:
        return 1

    assert await bounded(quick(), timeout_s=1, what="quick") is True

    async def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await bounded(fails(), timeout_s=1, what="fails")
