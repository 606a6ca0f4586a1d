"""Retries: attempts counted exactly, growing backoff, Retry(delay), retry rules, timeouts, and
exactly one dead letter carrying the failure."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

import pytest

from taskq import Retry, RetryPolicy, TaskFailed, TaskQueue, TaskStatus, Worker
from tests.helpers import eventually
from tests.support import dead_letters, stream_len

FAST = {"block_ms": 100}


class Boom(Exception):
    pass


async def test_always_failing_task_runs_max_attempts_then_one_dead_letter(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    starts: list[float] = []

    # jitter 0 makes each wait exact (0.5 s, then 1.0 s): "gaps grow" holds unless the
    # first gap's delivery is 0.5 s later than the second's (proportional to the waits)
    @tq.task(max_attempts=3, retry=RetryPolicy(base_s=0.5, cap_s=10.0, jitter=0.0))
    async def always_fails(n: int) -> None:
        starts.append(time.monotonic())
        raise Boom(f"boom {n}")

    start_worker(tq, **FAST)
    handle = await always_fails.enqueue(7)
    record = await handle.wait(timeout=15)
    assert record.status is TaskStatus.DEAD
    assert len(starts) == 3
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[0] >= 0.5 and gaps[1] >= 1.0, gaps
    assert gaps[1] > gaps[0], gaps
    assert record.attempts == 3
    assert record.error_type == "Boom" and "boom 7" in (record.error or "")
    assert record.kwargs == {"n": 7}  # positional-or-keyword arguments travel by name
    with pytest.raises(TaskFailed) as info:
        await handle.result(timeout=1)
    assert info.value.status == "dead"

    await asyncio.sleep(0.5)  # nothing more runs or arrives afterwards
    assert len(starts) == 3
    (letter,) = await dead_letters(tq)
    assert letter["id"] == handle.id
    assert letter["task"] == always_fails.name
    assert letter["reason"] == "max_attempts"
    assert letter["error_type"] == "Boom"
    assert letter["error"] == "boom 7"
    assert letter["attempts"] == "3"
    assert "Traceback" in letter["traceback"] and "always_fails" in letter["traceback"]
    assert 'raise Boom(f"boom {n}")' in letter["traceback"]
    assert await stream_len(tq) == 0
    assert await tq.redis.zcard(tq.keys("default").delayed) == 0


async def test_default_jitter_gaps_respect_their_lower_bounds(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    starts: list[float] = []

    @tq.task(max_attempts=3, backoff=0.1)
    async def flaky() -> None:
        starts.append(time.monotonic())
        raise Boom

    start_worker(tq, **FAST)
    record = await (await flaky.enqueue()).wait(timeout=15)
    assert record.status is TaskStatus.DEAD and len(starts) == 3
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # default jitter 0.5: wait n is in [0.1 * 2**(n-1) / 2, 0.1 * 2**(n-1)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1, gaps
    assert max(gaps) < 2.0, gaps


async def test_failure_then_success_keeps_the_task_id(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    attempts: list[int] = []

    @tq.task(max_attempts=3, backoff=0.05)
    async def second_time_lucky() -> str:
        attempts.append(1)
        if len(attempts) < 2:
            raise Boom("first")
        return "ok"

    start_worker(tq, **FAST)
    handle = await second_time_lucky.enqueue()
    assert await handle.result(timeout=10) == "ok"
    record = await handle.status()
    assert record.status is TaskStatus.SUCCEEDED and record.attempts == 2
    assert await dead_letters(tq) == []


async def test_delayed_task_keeps_its_id_through_retries(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    attempts: list[int] = []

    @tq.task(max_attempts=3, backoff=0.05)
    async def later_flaky() -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise Boom("not yet")
        return len(attempts)

    start_worker(tq, **FAST)
    handle = await later_flaky.with_options(delay=0.1).enqueue()
    assert await handle.result(timeout=10) == 3
    record = await handle.status()
    assert record.id == handle.id and record.attempts == 3
    assert await tq.redis.hlen(tq.keys("default").entries) == 0  # id mapping cleaned up


async def test_retry_request_delay_is_honoured(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    starts: list[float] = []

    # the policy's backoff (30 s) would fail the test: Retry(delay=...) must win
    @tq.task(max_attempts=2, backoff=30)
    async def later() -> int:
        starts.append(time.monotonic())
        if len(starts) == 1:
            raise Retry(delay=0.6)
        return len(starts)

    start_worker(tq, **FAST)
    handle = await later.enqueue()
    assert await handle.result(timeout=10) == 2
    assert 0.6 <= starts[1] - starts[0] < 2.0


async def test_retry_request_without_delay_uses_the_policy(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    starts: list[float] = []

    @tq.task(max_attempts=3, retry=RetryPolicy(base_s=0.3, jitter=0.0), retry_on=[KeyError])
    async def again() -> None:
        starts.append(time.monotonic())
        raise Retry(reason="not yet")  # retried although retry_on does not name it

    start_worker(tq, **FAST)
    record = await (await again.enqueue()).wait(timeout=10)
    assert record.status is TaskStatus.DEAD and len(starts) == 3
    assert starts[1] - starts[0] >= 0.3 and starts[2] - starts[1] >= 0.6
    (letter,) = await dead_letters(tq)
    assert letter["reason"] == "max_attempts" and letter["error_type"] == "Retry"


@pytest.mark.parametrize(
    ("options", "raised", "runs", "reason"),
    [
        ({"retry_on": [ValueError]}, ValueError, 3, "max_attempts"),
        ({"retry_on": [ValueError]}, KeyError, 1, "not_retryable"),
        ({"never_retry_on": [PermissionError]}, PermissionError, 1, "not_retryable"),
        ({"never_retry_on": [PermissionError]}, ConnectionError, 3, "max_attempts"),
        ({"retry_on": [OSError], "never_retry_on": [PermissionError]}, PermissionError, 1,
         "not_retryable"),
        ({"retry_on": [OSError], "never_retry_on": [PermissionError]}, TimeoutError, 3,
         "max_attempts"),
    ],
)
async def test_retry_rules(
    tq: TaskQueue, start_worker: Callable[..., Worker], options: dict[str, object],
    raised: type[Exception], runs: int, reason: str
) -> None:
    count: list[int] = []

    @tq.task(max_attempts=3, backoff=0.01, **options)  # type: ignore[call-overload]
    async def fails() -> None:
        count.append(1)
        raise raised("planned")

    start_worker(tq, **FAST)
    record = await (await fails.enqueue()).wait(timeout=10)
    assert record.status is TaskStatus.DEAD
    assert len(count) == runs
    assert record.attempts == runs
    (letter,) = await dead_letters(tq)
    assert (letter["reason"], letter["error_type"], letter["attempts"]) == (
        reason, raised.__name__, str(runs))


async def test_max_attempts_one_means_no_retry(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    count: list[int] = []

    @tq.task(max_attempts=1)
    async def once() -> None:
        count.append(1)
        raise Boom

    start_worker(tq, **FAST)
    record = await (await once.enqueue()).wait(timeout=10)
    assert record.status is TaskStatus.DEAD and count == [1]
    assert [d["reason"] for d in await dead_letters(tq)] == ["max_attempts"]


# -- timeouts ------------------------------------------------------------------------------


async def test_async_task_over_its_timeout_is_retried_then_dead(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    starts: list[float] = []
    finished: list[int] = []

    @tq.task(timeout=0.2, max_attempts=2, backoff=0.05)
    async def hangs() -> None:
        starts.append(time.monotonic())
        await asyncio.sleep(30)
        finished.append(1)

    start_worker(tq, **FAST)
    began = time.monotonic()
    record = await (await hangs.enqueue()).wait(timeout=10)
    assert record.status is TaskStatus.DEAD
    assert len(starts) == 2 and finished == []
    assert time.monotonic() - began < 5
    assert record.error_type == "TimeoutError"
    (letter,) = await dead_letters(tq)
    assert letter["reason"] == "max_attempts" and letter["error_type"] == "TimeoutError"
    assert "timed out after 0.2 s" in letter["error"]
    assert letter["attempts"] == "2"


async def test_timeout_then_success(tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    starts: list[float] = []

    @tq.task(timeout=0.3, max_attempts=3, backoff=0.05)
    async def slow_first() -> int:
        starts.append(time.monotonic())
        if len(starts) == 1:
            await asyncio.sleep(30)
        return len(starts)

    start_worker(tq, **FAST)
    handle = await slow_first.enqueue()
    assert await handle.result(timeout=10) == 2
    assert 0.3 <= starts[1] - starts[0] < 3


async def test_sync_task_over_its_timeout_fails(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    @tq.task(timeout=0.2, max_attempts=1)
    def blocks() -> None:
        time.sleep(2.0)

    start_worker(tq, **FAST)
    began = time.monotonic()
    record = await (await blocks.enqueue()).wait(timeout=10)
    assert record.status is TaskStatus.DEAD and record.error_type == "TimeoutError"
    assert time.monotonic() - began < 1.5  # the attempt ends at its timeout, not the sleep's end


async def test_failed_status_between_attempts(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    # a backoff far longer than the test: the task stays failed (in the delayed set) however
    # slow the machine, so the status read cannot land after the next attempt's promotion
    @tq.task(max_attempts=2, retry=RetryPolicy(base_s=600.0, jitter=0.0))
    async def fails_once_more() -> None:
        raise Boom("try again")

    start_worker(tq, **FAST)
    handle = await fails_once_more.enqueue()

    async def failed() -> object:
        rec = await handle.status()
        return rec if rec.status is TaskStatus.FAILED else None

    record = await eventually(failed, timeout=15, what="FAILED status")
    assert record.attempts == 1
    assert record.error_type == "Boom" and record.error == "try again"
    assert record.run_at_ms is not None
    now_ms = int(time.time() * 1000)
    assert now_ms + 60_000 < record.run_at_ms <= now_ms + 600_000  # the backoff, not now
    assert await handle.cancel() == "delayed"  # awaiting its retry: removed
    assert (await handle.wait(timeout=10)).status is TaskStatus.CANCELLED
