"""Producer side: argument validation, payload and backlog limits, batches, sync enqueue, delays."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from taskq import (
    BacklogFull,
    PayloadTooLarge,
    Task,
    TaskQueue,
    TaskStatus,
    TaskValidationError,
    Worker,
    batching,
)
from taskq.codec import Message
from tests.support import stream_len

FAST = {"block_ms": 100}


def register_send_email(app: TaskQueue) -> object:
    @app.task
    async def send_email(to: str, subject: str, retries: int = 1) -> bool:
        return True

    return send_email


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        ((), {"to": 1, "subject": "hi"}, "to"),
        ((), {"to": "a@b.c", "subject": "hi", "retries": "many"}, "retries"),
        ((), {"to": "a@b.c", "subject": ["not", "a", "string"]}, "subject"),
        ((), {"to": "a@b.c"}, "subject"),  # missing
        (("a@b.c", "hi", 1, 2), {}, "argument"),  # too many
        ((), {"to": "a@b.c", "subject": "hi", "cc": "x"}, "cc"),  # unknown keyword
    ],
)
async def test_wrong_arguments_are_refused_naming_the_field(
    tq: TaskQueue, args: tuple[object, ...], kwargs: dict[str, object], field: str
) -> None:
    send_email = register_send_email(tq)
    with pytest.raises(TaskValidationError) as info:
        await send_email.enqueue(*args, **kwargs)  # type: ignore[attr-defined]
    assert field in str(info.value)
    assert info.value.task == send_email.name  # type: ignore[attr-defined]
    assert await stream_len(tq) == 0


async def test_validation_error_lists_field_locations(tq: TaskQueue) -> None:
    @tq.task
    async def send_email(to: str, subject: str) -> None: ...

    with pytest.raises(TaskValidationError) as info:
        await send_email.enqueue(to=1, subject=2)  # type: ignore[arg-type]
    assert sorted(e["loc"][0] for e in info.value.errors) == ["subject", "to"]


async def test_valid_arguments_are_coerced_and_stored_as_plain_data(tq: TaskQueue) -> None:
    @tq.task
    async def at(when: timedelta, count: int) -> None: ...

    handle = await at.enqueue(timedelta(seconds=90), count=3)
    record = await handle.status()
    assert record.status is TaskStatus.QUEUED
    assert record.kwargs == {"when": "PT1M30S", "count": 3}


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((), {"n": 3, "s": "x", "f": 1.5, "b": True}, {"n": 3, "s": "x", "f": 1.5, "b": True}),
        ((3, "x", 1.5), {}, {"n": 3, "s": "x", "f": 1.5, "b": False}),
        ((), {"n": 3, "s": "x", "f": 1.5}, {"n": 3, "s": "x", "f": 1.5, "b": False}),
        ((), {"n": "3", "s": "x", "f": 2, "b": 1}, {"n": 3, "s": "x", "f": 2.0, "b": True}),
    ],
)
def test_worker_side_validation_of_scalar_parameters(
    tq: TaskQueue, args: tuple[object, ...], kwargs: dict[str, object], expected: dict[str, object]
) -> None:
    """The worker's fast path (values already of their parameter's exact type) gives what
    pydantic gives; any other value still goes through pydantic."""

    @tq.task
    async def scalars(n: int, s: str, f: float, b: bool = False) -> None: ...

    call_args, call_kwargs = scalars.signature.for_call(args, kwargs)
    assert call_args == ()
    assert call_kwargs == expected
    assert {k: type(v) for k, v in call_kwargs.items()} == {k: type(v) for k, v in expected.items()}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": 1.5, "s": "x", "f": 1.0},  # a float with a fraction for an int
        {"n": 1, "s": None, "f": 1.0},
        {"n": 1, "s": "x", "f": 1.0, "extra": 1},
        {"n": 1, "f": 1.0},  # missing
    ],
)
def test_worker_side_validation_refuses_wrong_scalars(
    tq: TaskQueue, kwargs: dict[str, object]
) -> None:
    @tq.task
    async def scalars(n: int, s: str, f: float, b: bool = False) -> None: ...

    with pytest.raises(TaskValidationError):
        scalars.signature.for_call((), kwargs)


# -- limits ----------------------------------------------------------------------------------


async def test_payload_over_the_limit_is_refused(redis_url: str, prefix: str) -> None:
    async with TaskQueue(redis_url, prefix=prefix, max_payload_bytes=1_000) as app:

        @app.task
        async def store(blob: str) -> None: ...

        await store.enqueue("x" * 500)
        with pytest.raises(PayloadTooLarge) as info:
            await store.enqueue("x" * 2_000)
        assert info.value.limit == 1_000 and info.value.size > 2_000
        with pytest.raises(PayloadTooLarge):
            await app.enqueue_many([store.message("x"), store.message("x" * 2_000)])
        with pytest.raises(PayloadTooLarge):
            await store.with_options(delay=10).enqueue("x" * 2_000)
        with pytest.raises(PayloadTooLarge):
            await asyncio.to_thread(store.enqueue_sync, "x" * 2_000)
        assert await stream_len(app) == 1
        assert await app.redis.zcard(app.keys("default").delayed) == 0


async def test_backlog_limit_refuses_and_adds_nothing(redis_url: str, prefix: str) -> None:
    async with TaskQueue(redis_url, prefix=prefix, max_backlog=5) as app:

        @app.task
        async def job(n: int) -> None: ...

        await app.enqueue_many([job.message(i) for i in range(4)])
        with pytest.raises(BacklogFull) as info:
            await app.enqueue_many([job.message(i) for i in range(2)])
        assert (info.value.backlog, info.value.limit, info.value.queue) == (4, 5, "default")
        assert await stream_len(app) == 4
        await job.enqueue(4)
        with pytest.raises(BacklogFull):
            await job.enqueue(5)
        with pytest.raises(BacklogFull):
            await asyncio.to_thread(job.enqueue_sync, 5)
        assert await stream_len(app) == 5
        # the delayed set has its own limit
        await app.enqueue_many([job.message(i) for i in range(5)], delay=60)
        with pytest.raises(BacklogFull):
            await job.with_options(delay=60).enqueue(6)
        assert await app.redis.zcard(app.keys("default").delayed) == 5


async def test_backlog_refusal_of_a_batch_larger_than_a_chunk_adds_nothing(
    redis_url: str, prefix: str
) -> None:
    """enqueue_many sends big batches in chunks; a refusal must still add none of the batch
    (the caller gets no handles, so anything added would run without anyone knowing its id)."""
    async with TaskQueue(redis_url, prefix=prefix, max_backlog=700) as app:

        @app.task
        async def job(n: int) -> None: ...

        with pytest.raises(BacklogFull):
            await app.enqueue_many([job.message(i) for i in range(1_000)])
        assert await stream_len(app) == 0


async def test_backlog_refusal_in_sync_batch_adds_nothing(redis_url: str, prefix: str) -> None:
    async with TaskQueue(redis_url, prefix=prefix, max_backlog=5) as app:

        @app.task
        async def job(n: int) -> None: ...

        with pytest.raises(BacklogFull):
            await asyncio.to_thread(app.enqueue_many_sync, [job.message(i) for i in range(8)])
        assert await stream_len(app) == 0


# -- batches and sync code -------------------------------------------------------------------


def _double_and_negate(tq: TaskQueue) -> tuple[Task[[int], int], Task[[int], int]]:
    """``double`` on queue "default" and ``negate`` on queue "other"."""
    @tq.task
    async def double(n: int) -> int:
        return 2 * n

    @tq.task(queue="other")
    async def negate(n: int) -> int:
        return -n

    return double, negate


async def test_enqueue_many_in_one_call(tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    double, negate = _double_and_negate(tq)

    messages = [double.message(i) for i in range(1_200)] + [negate.message(i) for i in range(10)]
    handles = await tq.enqueue_many(messages)
    assert len(handles) == 1_210 and len({h.id for h in handles}) == 1_210
    assert [h.queue for h in handles[-10:]] == ["other"] * 10
    assert await stream_len(tq) == 1_200 and await stream_len(tq, "other") == 10
    start_worker(tq, queues=("default", "other"), **FAST)
    results = [await h.result(timeout=30) for h in handles]
    assert results == [2 * i for i in range(1_200)] + [-i for i in range(10)]
    elsewhere = await double.with_options(queue="other").enqueue(21)
    assert elsewhere.queue == "other"
    assert await elsewhere.result(timeout=10) == 42


async def test_enqueue_many_returns_handles_in_the_order_given(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    """Messages of several queues, interleaved (and with options, and delayed): each handle
    stands where its message stood, async and sync (the batch is sent grouped by queue)."""
    double, negate = _double_and_negate(tq)

    def mixed(base: int) -> list[Message]:
        return [double.message(base + 1), negate.message(base + 2), double.message(base + 3),
                negate.with_options(key=f"k{base}").message(base + 4),
                double.with_options(key=f"j{base}").message(base + 5), negate.message(base + 6)]

    plain = [m for i, m in enumerate(mixed(0)) if i not in (3, 4)]
    batches = [(await tq.enqueue_many(plain), [1, -2, 3, -6]),
               (await tq.enqueue_many(mixed(10)), [11, -12, 13, -14, 15, -16]),
               (await tq.enqueue_many(plain * 2, delay=0.05), [1, -2, 3, -6] * 2),
               ([tq.handle(h.id) for h in await asyncio.to_thread(tq.enqueue_many_sync,
                                                                  mixed(20))],
                [21, -22, 23, -24, 25, -26])]
    queues = ["default", "other", "default", "other", "default", "other"]
    assert [h.queue for h in batches[1][0]] == queues
    start_worker(tq, queues=("default", "other"), **FAST)
    for handles, expected in batches:
        assert [await h.result(timeout=30) for h in handles] == [2 * e if e > 0 else e
                                                                  for e in expected]


async def test_enqueue_sync(tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    @tq.task
    async def echo(text: str) -> str:
        return text

    def from_sync_code() -> list[str]:
        return [echo.enqueue_sync("plain").id,
                echo.with_options(delay=0.2).enqueue_sync("later").id]

    ids = await asyncio.to_thread(from_sync_code)
    start_worker(tq, **FAST)
    assert [await tq.handle(i).result(timeout=10) for i in ids] == ["plain", "later"]
    with pytest.raises(TaskValidationError):
        echo.enqueue_sync(text=1)  # type: ignore[arg-type]


# -- delays ----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["delay=", "with_options", "timedelta"])
async def test_delayed_task_runs_after_its_due_time(
    tq: TaskQueue, start_worker: Callable[..., Worker], how: str
) -> None:
    ran_at: list[float] = []

    @tq.task
    async def stamp() -> None:
        ran_at.append(time.time())

    start_worker(tq, **FAST)
    delay = 0.8
    before = time.time()
    if how == "delay=":
        handle = await stamp.enqueue(delay=delay)  # type: ignore[call-arg]
    elif how == "with_options":
        handle = await stamp.with_options(delay=delay).enqueue()
    else:
        handle = await stamp.with_options(delay=timedelta(seconds=delay)).enqueue()
    assert handle.run_at_ms is not None
    assert handle.run_at_ms >= before * 1000 + delay * 1000 - 50
    record = await handle.status()
    assert record.status is TaskStatus.QUEUED and record.run_at_ms == handle.run_at_ms
    await asyncio.sleep(delay / 2)
    assert ran_at == []
    record = await handle.wait(timeout=10)
    assert record.status is TaskStatus.SUCCEEDED
    assert len(ran_at) == 1
    # Redis and this process share a clock here; allow a little slack for rounding
    assert ran_at[0] - before >= delay - 0.02
    assert ran_at[0] - before < delay + 2.0


async def test_delay_keyword_is_an_argument_when_the_task_has_one(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    @tq.task
    async def wait_for(delay: float) -> float:
        return delay

    start_worker(tq, **FAST)
    handle = await wait_for.enqueue(delay=5.0)
    assert handle.run_at_ms is None
    assert await handle.result(timeout=10) == 5.0


async def test_due_task_waits_for_a_worker(tq: TaskQueue,
                                           start_worker: Callable[..., Worker]) -> None:
    @tq.task
    async def noop() -> None: ...

    handle = await noop.with_options(delay=0.2).enqueue()
    await asyncio.sleep(0.4)
    # due, but nothing promotes it without a worker: still there, not lost
    assert await tq.redis.zscore(tq.keys("default").delayed, handle.id) is not None
    assert (await handle.status()).status is TaskStatus.QUEUED
    start_worker(tq, **FAST)
    assert (await handle.wait(timeout=10)).status is TaskStatus.SUCCEEDED


# -- the enqueue plan (shared by async and sync; no Redis) -----------------------------------


def _encoded(queues: list[str]) -> list[tuple[str, bytes, Message]]:
    return [(q, b"x", Message("t")) for q in queues]


def test_plan_one_message_far_below_the_limit_is_a_plain_xadd() -> None:
    gauge = batching.BacklogGauge()
    gauge.saw("a", 10, 100.0)
    plan = batching.prepare(_encoded(["a"]), 0, {"a"}, gauge, 1_000, 100.5)
    assert (plan.single, plan.precheck, plan.limit, plan.new_queues) == (True, [], 0, set())
    stale = batching.prepare(_encoded(["a"]), 0, {"a"}, gauge, 1_000, 102.0)
    assert (stale.single, stale.precheck, stale.limit) == (False, [], 1_000)  # checked in Lua


def test_plan_several_calls_check_every_queue_first() -> None:
    plan = batching.prepare(_encoded(["b", "a", "b"]), 0, {"a"}, batching.BacklogGauge(), 1_000,
                            0.0)
    assert (plan.single, plan.precheck, plan.limit, plan.new_queues) == (
        False, ["a", "b"], 0, {"b"})
    delayed = batching.prepare(_encoded(["a"]), 500, {"a"}, batching.BacklogGauge(), 1_000, 0.0)
    assert (delayed.single, delayed.delay_ms, delayed.limit) == (False, 500, 1_000)
    assert delayed.calls[0].task_ids is not None
    unlimited = batching.prepare(_encoded(["a", "b"]), 0, set(), batching.BacklogGauge(), 0, 0.0)
    assert (unlimited.precheck, unlimited.limit) == ([], 0)
