"""Rate and concurrency limits: across workers, waiting without using attempts, slots freed by
every outcome and by a dead worker's lease."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from taskq import TaskQueue, TaskStatus, Worker, admin, codec
from taskq.keys import GROUP
from taskq.limits import Limits, Rate, key_value, parse_rate
from tests.apps import limited
from tests.apps.common import gate_key
from tests.helpers import WorkerProcess, eventually
from tests.support import RunsPerKey, trace, traced

FAST = {"block_ms": 100, "promote_every_ms": 20}


def test_rates_parse() -> None:
    assert parse_rate("100/m") == Rate(100, 60_000)
    assert parse_rate("10/s").interval_ms == 100
    assert parse_rate("30 / 10s") == Rate(30, 10_000)
    assert parse_rate("5/hour") == Rate(5, 3_600_000)
    for bad in ("100", "0/s", "10/fortnight", "x/s", "10/0s"):
        with pytest.raises(ValueError, match="rate_limit"):
            parse_rate(bad)


def test_limits_are_checked_at_registration(tq: TaskQueue) -> None:
    assert Limits.of(None, None, None, None) is None
    one = Limits.of(None, None, None, "account")
    assert one is not None and one.concurrency == 1
    with pytest.raises(ValueError, match="rate_limit_key needs"):
        Limits.of(None, "x", None, None)
    with pytest.raises(ValueError, match="at least 1"):
        Limits.of(None, None, 0, None)
    with pytest.raises(ValueError, match="not a parameter"):
        @tq.task(rate_limit="1/s", rate_limit_key="nope")
        async def f(customer: str) -> None: ...
    assert key_value("c", {"c": "acme"}) == "acme"
    assert key_value(lambda a: a["n"] % 2, {"n": 3}) == "1"
    assert key_value("c", {"c": "x" * 500}).endswith("~500")


async def test_rate_limit_holds_across_workers_and_uses_no_attempt(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    starts: list[float] = []

    @tq.task(queue="rl", rate_limit="20/s", max_attempts=1)
    async def call_api(n: int) -> int:
        starts.append(time.monotonic())
        return n

    handles = await tq.enqueue_many([call_api.message(i) for i in range(40)])
    workers = [start_worker(tq, queues=("rl",), concurrency=10, **FAST) for _ in range(2)]
    records = [await h.wait(timeout=30) for h in handles]
    assert all(r.status is TaskStatus.SUCCEEDED and r.attempts == 1 for r in records)
    starts.sort()
    span = starts[-1] - starts[0]
    assert span >= 39 / 20 * 0.95, span  # 40 starts spaced 50 ms apart, on Redis's clock
    # no 1-second window holds more than 20, plus the slack (100 ms: 2 starts) and 1 at its edge
    for i, t in enumerate(starts):
        assert sum(1 for u in starts[i:] if u - t < 1.0) <= 23
    assert sum(w.counters.throttled for w in workers) > 0
    info = await admin.queue_info(tq, "rl")
    assert info.throttled_total > 0 and info.retried_total == 0 and info.dead_total == 0


async def test_rate_limit_per_key(tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    starts: dict[str, list[float]] = {"a": [], "b": []}

    @tq.task(queue="rk", rate_limit="10/s", rate_limit_key="customer")
    async def per_customer(customer: str, n: int) -> None:
        starts[customer].append(time.monotonic())

    handles = await tq.enqueue_many([per_customer.message(c, i)
                                     for i in range(10) for c in "ab"])
    start_worker(tq, queues=("rk",), concurrency=10, **FAST)
    for h in handles:
        await h.wait(timeout=30)
    for times in starts.values():
        assert times[-1] - times[0] >= 9 / 10 * 0.95
    # the two keys have their own limits: they ran side by side, not one after the other
    assert abs(starts["a"][0] - starts["b"][0]) < 0.5
    assert max(starts["a"][-1], starts["b"][-1]) - min(starts["a"][0], starts["b"][0]) < 1.8


async def test_concurrency_limit_across_workers(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    running = peak = 0

    @tq.task(queue="cl", concurrency_limit=2)
    async def heavy(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return n

    handles = await tq.enqueue_many([heavy.message(i) for i in range(30)])
    for _ in range(3):
        start_worker(tq, queues=("cl",), concurrency=10, **FAST)
    records = [await h.wait(timeout=60) for h in handles]
    assert all(r.status is TaskStatus.SUCCEEDED and r.attempts == 1 for r in records)
    assert peak == 2  # reached, never passed
    slots = await tq.redis.zcard(tq.keys("cl").limit("run", heavy.name))
    assert slots == 0  # every slot freed with its ack


async def test_concurrency_key_is_one_at_a_time_per_key(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    runs = RunsPerKey()

    @tq.task(queue="ck", concurrency_key="account")
    async def charge(account: str, n: int) -> None:
        await runs.run(account, 0.03)

    handles = await tq.enqueue_many([charge.message(a, i) for i in range(6) for a in "xy"])
    for _ in range(2):
        start_worker(tq, queues=("ck",), concurrency=5, **FAST)
    for h in handles:
        assert (await h.wait(timeout=60)).status is TaskStatus.SUCCEEDED
    assert runs.peaks == {"x": 1, "y": 1}
    assert runs.overlap  # different keys did run at the same time


async def test_slot_freed_by_retry_and_dead(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    @tq.task(queue="cf", concurrency_limit=1, max_attempts=2, backoff=0.01, max_backoff=0.01)
    async def fails(n: int) -> None:
        raise RuntimeError("no")

    @tq.task(queue="cf", concurrency_limit=1, max_attempts=1)
    async def works(n: int) -> int:
        return n

    bad = await fails.enqueue(1)
    start_worker(tq, queues=("cf",), **FAST)
    assert (await bad.wait(timeout=20)).status is TaskStatus.DEAD
    assert await tq.redis.zcard(tq.keys("cf").limit("run", fails.name)) == 0
    good = await works.enqueue(2)
    assert await good.result(timeout=20) == 2


async def test_a_key_function_that_raises_dead_letters_the_task(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    @tq.task(queue="kf", concurrency_limit=1, concurrency_key=lambda a: a["d"]["missing"])
    async def odd(d: dict[str, int]) -> None: ...

    h = await odd.enqueue({})
    start_worker(tq, queues=("kf",), **FAST)
    record = await h.wait(timeout=20)
    assert record.status is TaskStatus.DEAD and "limit_key" in (record.error or "")


async def test_limited_high_priority_lane_shares_the_limit(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    running = peak = 0

    @tq.task(queue="lp", concurrency_limit=1)
    async def single(n: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    handles = await tq.enqueue_many([single.message(i) for i in range(5)] +
                                    [single.with_options(priority="high").message(i)
                                     for i in range(5)])
    start_worker(tq, queues=("lp",), concurrency=10, **FAST)
    for h in handles:
        assert (await h.wait(timeout=30)).status is TaskStatus.SUCCEEDED
    assert peak == 1


async def test_sigkilled_worker_frees_its_slot_within_a_lease(
        redis_url: str, prefix: str, worker_process: Callable[..., WorkerProcess]) -> None:
    app = limited.build(prefix, redis_url)
    try:
        task = app.get_task("one_at_a_time")
        assert task is not None
        lease = ("--lease-ms", "2000")
        first = worker_process("tests.apps.limited:tq", *lease)
        h1 = await task.enqueue("a", 60.0)
        await eventually(lambda: traced(app, "started", 1), timeout=20, what="a started")
        h2 = await task.enqueue("b", 0.0)
        second = worker_process("tests.apps.limited:tq", *lease)
        await eventually(lambda: _throttled(app), timeout=20, what="b waits for a's slot")
        assert await trace(app, "started") == ["a"]  # b waits: a holds the one slot
        first.signal(signal.SIGKILL)
        killed = time.monotonic()
        first.wait(5)
        await app.redis.set(gate_key(prefix), b"1")  # runs from now on end at once
        await eventually(lambda: traced(app, "finished", 2), timeout=30,
                         what="both finished by the second worker")
        assert time.monotonic() - killed < 15
        assert (await h1.wait(timeout=5)).status is TaskStatus.SUCCEEDED
        assert (await h2.wait(timeout=5)).status is TaskStatus.SUCCEEDED
        started = await trace(app, "started")
        assert started.count("a") == 2 and started.count("b") == 1
        second.signal(signal.SIGTERM)
        second.wait(30)
    finally:
        await app.aclose()


async def _throttled(app: TaskQueue) -> bool:
    return (await admin.queue_info(app, "default")).throttled_total > 0


async def test_a_long_attempt_keeps_its_slot_past_the_lease(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    spans: dict[int, tuple[float, float]] = {}

    @tq.task(queue="long", concurrency_limit=1)
    async def long(n: int, seconds: float) -> None:
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        spans[n] = (t0, time.monotonic())

    first = await long.enqueue(1, 2.5)  # 2.5 leases of 1 s: its slot must be renewed
    for _ in range(2):
        start_worker(tq, queues=("long",), lease_ms=1000, renew_every_ms=300, **FAST)
    await eventually(lambda: _slot_held(tq, "long", long.name), timeout=20, what="1 runs")
    second = await long.enqueue(2, 0.0)
    await first.wait(timeout=30)
    await second.wait(timeout=30)
    assert spans[2][0] >= spans[1][1]  # never beside it, though its lease passed twice


async def test_shutdown_hand_back_frees_the_slot(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    @tq.task(queue="sd", concurrency_limit=1)
    async def stays(n: int) -> None:
        await asyncio.sleep(60)

    h = await stays.enqueue(1)
    w = start_worker(tq, queues=("sd",), grace_s=0.2, **FAST)
    await eventually(lambda: _slot_held(tq, "sd", stays.name), timeout=20, what="it runs")
    w.stop()
    await eventually(lambda: _stopped(w), timeout=30, what="worker stopped")
    assert await tq.redis.zcard(tq.keys("sd").limit("run", stays.name)) == 0
    assert (await h.status()).status is TaskStatus.QUEUED  # handed back, to run again


async def _slot_held(tq: TaskQueue, queue: str, task: str) -> bool:
    return bool(await tq.redis.zcard(tq.keys(queue).limit("run", task)))


async def _stopped(w: Worker) -> bool:
    return not w.held


# -- the throttle script on its own --------------------------------------------------------


async def _delivered(tq: TaskQueue, consumer: str = "w") -> tuple[str, bytes]:
    keys = tq.keys("default")
    await tq.ensure_groups(["default"])
    resp = await tq.redis.xreadgroup(GROUP, consumer, {keys.stream: ">"}, count=1)
    entry, fields = resp[0][1][0]
    return entry.decode(), fields[codec.FIELD]


async def test_throttle_script_decides_and_waits(tq: TaskQueue) -> None:
    @tq.task
    async def job(n: int) -> None: ...

    keys = tq.keys("default")
    slots, rate = keys.limit("run", "job"), keys.limit("rate", "job")
    handles = [await job.enqueue(i) for i in range(4)]

    async def throttle(entry: str, payload: bytes, task_id: str, **kw: Any) -> Any:
        args = {"rate_key": None, "interval_ms": 0.0, "slots_key": None, "limit": 0,
                "lease_ms": 5_000, "wait_ms": 250, **kw}
        return await tq.scripts.throttle(keys=keys, consumer="w", entry_id=entry,
                                         deliveries=1, task_id=task_id, payload=payload,
                                         **args)

    # concurrency 1: the first holds the slot, the second waits (acked, delayed, unchanged)
    e0, p0 = await _delivered(tq)
    assert (await throttle(e0, p0, handles[0].id, slots_key=slots, limit=1)).start
    e1, p1 = await _delivered(tq)
    waited = await throttle(e1, p1, handles[1].id, slots_key=slots, limit=1)
    assert (waited.start, waited.why) == (False, "concurrency")
    assert await tq.redis.zscore(keys.delayed, handles[1].id) == waited.due_ms
    assert await tq.redis.hget(keys.payloads, handles[1].id) == p1
    assert (await tq.redis.xpending(keys.stream, GROUP))["pending"] == 1  # e0 only
    assert (await handles[1].status()).status is TaskStatus.QUEUED
    # rate 1/s: the next start is booked a second later
    e2, p2 = await _delivered(tq)
    assert (await throttle(e2, p2, handles[2].id, rate_key=rate, interval_ms=1000.0)).start
    e3, p3 = await _delivered(tq)
    booked = await throttle(e3, p3, handles[3].id, rate_key=rate, interval_ms=1000.0)
    assert (booked.start, booked.why) == (False, "rate")
    now_ms = int(time.time() * 1000)
    assert 500 < booked.due_ms - now_ms <= 1_100
    assert await tq.redis.zscore(keys.reservations, handles[3].id) == booked.due_ms
    # an entry the caller does not own changes nothing
    lost = await throttle(e0, p0, handles[0].id, slots_key=slots, limit=1)
    assert lost.start and not lost.lost  # still owned by "w": it holds its slot already
    await tq.redis.xclaim(keys.stream, GROUP, "other", 0, [e0])
    assert (await throttle(e0, p0, handles[0].id, slots_key=slots, limit=1)).lost
    stats = await tq.redis.hgetall(keys.stats)
    assert stats[b"throttled"] == b"2" and stats[b"throttled_rate"] == b"1"


async def test_a_freed_slot_wakes_a_waiting_task_at_once(
        tq: TaskQueue, start_worker: Callable[..., Worker],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A task waiting for a concurrency slot starts when the slot is freed, not at the end of
    its wait (made 30-90 s here): the script that frees the slot is followed by a wake that
    moves the earliest waiter to the stream. Then nothing is left among the waiters."""
    from taskq.worker import limiter  # noqa: PLC0415

    monkeypatch.setattr(limiter, "CONCURRENCY_WAIT_MS", 60_000)
    gate = asyncio.Event()
    started: dict[int, float] = {}

    @tq.task(queue="wk", concurrency_limit=1)
    async def one(n: int) -> int:
        started[n] = time.monotonic()
        if n == 0:
            await gate.wait()
        return n

    first = await one.enqueue(0)
    start_worker(tq, queues=("wk",), concurrency=4, **FAST)
    await eventually(lambda: _true(0 in started), timeout=30, what="the first task running")
    second = await one.enqueue(1)
    keys = tq.keys("wk")
    waiters = keys.waiters(keys.limit("run", one.name))

    async def waiting() -> bool:
        return await tq.redis.zscore(waiters, second.id) is not None

    await eventually(waiting, timeout=30, what="the second task waiting for the slot")
    freed = time.monotonic()
    gate.set()
    assert (await first.wait(timeout=30)).status is TaskStatus.SUCCEEDED
    record = await second.wait(timeout=25)  # its own wait would end 30-90 s later
    assert record.status is TaskStatus.SUCCEEDED and record.attempts == 1
    assert started[1] - freed < 20
    assert await tq.redis.zcard(waiters) == 0


async def _true(value: bool) -> bool:
    return value


async def test_wake_leaves_a_former_waiter_that_now_waits_for_its_rate(tq: TaskQueue) -> None:
    """A task limited by a rate and a concurrency limit waits for a slot (listed among the
    waiters), comes back, and now waits for its start slot on the rate (in the delayed set, a
    minute away). A slot freed meanwhile must not wake it: back early, it would start at once
    (its start slot is "still ahead") and the rate would be broken."""
    @tq.task
    async def job(n: int) -> None: ...

    keys = tq.keys("default")
    slots, rate = keys.limit("run", "job"), keys.limit("rate", "job")
    a, b, c = [await job.enqueue(i) for i in range(3)]

    async def throttle(entry: str, payload: bytes, task_id: str, **kw: Any) -> Any:
        args = {"rate_key": rate, "interval_ms": 1.0, "slots_key": slots, "limit": 1,
                "lease_ms": 60_000, "wait_ms": 250, **kw}
        return await tq.scripts.throttle(keys=keys, consumer="w", entry_id=entry,
                                         deliveries=1, task_id=task_id, payload=payload,
                                         **args)

    ea, pa = await _delivered(tq)
    assert (await throttle(ea, pa, a.id)).start  # a holds the only slot
    eb, pb = await _delivered(tq)
    await asyncio.sleep(0.01)  # (past a's 1 ms booking)
    waited = await throttle(eb, pb, b.id)
    assert waited.why == "concurrency"
    waiters = keys.waiters(slots)
    assert await tq.redis.zscore(waiters, b.id) is not None
    # c starts under the rate alone with a long interval: the next start is a minute away
    # (once Redis's clock is past b's booking, 1 ms after b's call: else c waits behind it)
    async def past_bookings() -> bool:
        secs, micros = await tq.redis.time()  # type: ignore[misc]
        return secs * 1000 + micros / 1000 > float(await tq.redis.get(rate) or 0)

    await eventually(past_bookings, timeout=10, what="Redis's clock past b's booking")
    ec, pc = await _delivered(tq)
    assert (await throttle(ec, pc, c.id, interval_ms=60_000.0, slots_key=None, limit=0)).start
    # b comes back (its wait over) and must now wait for its start slot on the rate
    await tq.redis.zadd(keys.delayed, {b.id: 0})
    assert (await tq.scripts.promote(keys=keys, count=10))[0] == 1
    eb, pb = await _delivered(tq)
    paced = await throttle(eb, pb, b.id, interval_ms=60_000.0)
    assert paced.why == "rate" and paced.due_ms - int(time.time() * 1000) > 30_000
    # a ends (its slot freed) and its waiters are woken: b is not one any more
    await tq.redis.zrem(slots, a.id)
    assert await tq.scripts.wake(keys=keys, slots_key=slots, count=1) == 0
    assert await tq.redis.zscore(keys.delayed, b.id) == paced.due_ms
    assert await tq.redis.xlen(keys.stream) == 2  # a and c, held
