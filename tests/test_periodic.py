"""Periodic schedules: tick arithmetic (cron in a timezone, DST; fixed periods), the declaration,
and firing in workers of this test's event loop: each tick once, sync, pause and resume."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from taskq import CatchUp, TaskContext, TaskQueue, Worker
from taskq.admin import (
    ScheduleNotFound,
    list_schedules,
    pause_schedule,
    resume_schedule,
    schedule_info,
)
from taskq.periodic import Spec
from taskq.testing import drain
from tests.helpers import eventually

BERLIN = ZoneInfo("Europe/Berlin")


def ms(y: int, mo: int, d: int, h: int, mi: int, tz: ZoneInfo = BERLIN, fold: int = 0) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=tz, fold=fold).timestamp() * 1000)


# -- ticks ---------------------------------------------------------------------------------

def test_every_ticks_are_multiples_of_the_period_since_the_epoch() -> None:
    spec = Spec.of(None, timedelta(seconds=30), "UTC")
    assert spec.ticks(61_000, until_ms=200_000) == [90_000, 120_000, 150_000, 180_000]
    assert spec.ticks(90_000, until_ms=90_000) == []  # strictly after
    assert spec.ticks(0, until_ms=10**9, limit=3) == [30_000, 60_000, 90_000]
    assert spec.text() == "every 30s"


def test_a_daily_0230_fires_once_on_the_spring_forward_day() -> None:
    # Europe/Berlin, 2026-03-29: 02:00 -> 03:00; 02:30 does not exist that day
    spec = Spec(cron="30 2 * * *", timezone="Europe/Berlin")
    ticks = spec.ticks(ms(2026, 3, 28, 0, 0), until_ms=ms(2026, 3, 31, 0, 0))
    assert ticks == [ms(2026, 3, 28, 2, 30), ms(2026, 3, 29, 3, 0), ms(2026, 3, 30, 2, 30)]
    assert ticks[2] - ticks[1] == 23.5 * 3600 * 1000


def test_a_daily_0230_fires_once_on_the_fall_back_day() -> None:
    # 2026-10-25: 03:00 -> 02:00; 02:30 happens twice, the job runs at the first
    spec = Spec(cron="30 2 * * *", timezone="Europe/Berlin")
    ticks = spec.ticks(ms(2026, 10, 24, 12, 0), until_ms=ms(2026, 10, 26, 12, 0))
    assert ticks == [ms(2026, 10, 25, 2, 30), ms(2026, 10, 26, 2, 30)]
    assert ticks[1] - ticks[0] == 25 * 3600 * 1000


def test_a_half_hourly_job_runs_in_both_copies_of_the_repeated_hour() -> None:
    spec = Spec(cron="*/30 * * * *", timezone="Europe/Berlin")
    ticks = spec.ticks(ms(2026, 10, 25, 1, 45), until_ms=ms(2026, 10, 25, 3, 15))
    assert ticks == [ms(2026, 10, 25, 2, 0), ms(2026, 10, 25, 2, 30),
                     ms(2026, 10, 25, 2, 0, fold=1), ms(2026, 10, 25, 2, 30, fold=1),
                     ms(2026, 10, 25, 3, 0)]
    assert all(b - a == 1_800_000 for a, b in itertools.pairwise(ticks))


def test_cron_in_a_timezone_is_wall_clock_time() -> None:
    spec = Spec(cron="0 6 * * *", timezone="Europe/Berlin")
    winter = spec.next_ticks(ms(2026, 1, 10, 12, 0), 1)[0]
    summer = spec.next_ticks(ms(2026, 7, 10, 12, 0), 1)[0]
    assert winter == ms(2026, 1, 11, 5, 0, tz=ZoneInfo("UTC"))
    assert summer == ms(2026, 7, 11, 4, 0, tz=ZoneInfo("UTC"))


@pytest.mark.parametrize(("kwargs", "error"), [
    ({}, "exactly one of"),
    ({"cron": "* * * * *", "every": 5}, "exactly one of"),
    ({"cron": "61 * * * *"}, "invalid cron expression"),
    ({"cron": "0 6 * * *", "timezone": "Mars/Olympus"}, "unknown timezone"),
    ({"every": 0.5}, "at least one second"),
    ({"every": 5, "catch_up": "sometimes"}, "sometimes"),
])
def test_bad_declarations_are_refused_clearly(tq: TaskQueue, kwargs: dict[str, object],
                                              error: str) -> None:
    @tq.task(name="ping")
    async def ping() -> None: ...

    with pytest.raises(ValueError, match=error):
        tq.schedule(ping.message(), **kwargs)  # type: ignore[arg-type]


def test_names_are_unique_and_default_to_the_task(tq: TaskQueue) -> None:
    @tq.task(name="report")
    async def report(kind: str) -> None: ...

    s = tq.schedule(report.message(kind="daily"), cron="0 6 * * *", timezone="Europe/Berlin")
    assert s.name == "report" and s.catch_up is CatchUp.ONCE
    with pytest.raises(ValueError, match="already declared"):
        tq.schedule(report.message(kind="hourly"), cron="0 * * * *")
    tq.schedule(report.message(kind="hourly"), cron="0 * * * *", name="hourly-report")
    assert sorted(tq.schedules) == ["hourly-report", "report"]
    other = TaskQueue(tq.url, prefix=tq.prefix)
    with pytest.raises(ValueError, match="not registered"):
        other.schedule(report.message(kind="x"), every=60)


# -- firing in workers -----------------------------------------------------------------------

def periodic_app(url: str, prefix: str, every_s: float = 1.0) -> TaskQueue:
    app = TaskQueue(url, prefix=prefix)

    @app.task(name="tick")
    async def tick(label: str) -> str:
        return label

    app.schedule(tick.message(label="t"), every=every_s, name="every-second")
    return app


@pytest.fixture
async def papp(redis_url: str, prefix: str) -> AsyncIterator[TaskQueue]:
    """The app of :func:`periodic_app`, closed after the test's workers stopped."""
    app = periodic_app(redis_url, prefix)
    yield app
    await app.aclose()


@pytest.fixture
async def apps(redis_url: str, prefix: str) -> AsyncIterator[Callable[[], TaskQueue]]:
    """New TaskQueues on the test's prefix, closed after the test's workers stopped."""
    made: list[TaskQueue] = []

    def make() -> TaskQueue:
        made.append(TaskQueue(redis_url, prefix=prefix))
        return made[-1]

    yield make
    for app in made:
        await app.aclose()


async def fired_log(app: TaskQueue, queue: str = "default") -> list[dict[str, str]]:
    entries = await app.redis.xrange(app.keys(queue).periodic_log)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


async def test_workers_of_one_loop_fire_each_tick_once(
        papp: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    app = papp
    workers = [start_worker(app, schedules_every_ms=200) for _ in range(3)]

    async def fires() -> list[dict[str, str]] | None:
        log = [e for e in await fired_log(app) if e["w"] == "fired"]
        return log if len(log) >= 4 else None

    log = await eventually(fires, timeout=30, what="4 ticks fired")
    ticks = [int(e["k"]) for e in log]
    assert ticks == sorted(set(ticks))  # each once, in order
    assert all(b - a == 1000 for a, b in itertools.pairwise(ticks))
    tasks = [e["t"] for e in log]
    assert len(set(tasks)) == len(tasks)
    # a worker counts its fire once its script call returned: the log can be ahead of it
    async def counted() -> bool:
        return sum(w.maintenance.scheduler.fired for w in workers) >= len(log)

    await eventually(counted, timeout=10, what="the workers counted the fires in the log")
    info = await schedule_info(app, "every-second")
    assert info.task == "tick" and info.schedule == "every 1s" and not info.paused
    assert info.fired_total >= 4 and info.last_task_id is not None
    assert len(info.next_fire_ms) == 3 and info.next_fire_ms[0] > (info.last_tick_ms or 0)


async def test_sync_adds_changes_and_removes_by_name(
        apps: Callable[[], TaskQueue], start_worker: Callable[..., Worker]) -> None:
    app = apps()

    @app.task(name="job")
    async def job(n: int) -> int:
        return n

    app.schedule(job.message(n=1), cron="0 6 * * *", timezone="Europe/Berlin", name="a")
    app.schedule(job.message(n=2), every=3600, name="b")
    w = start_worker(app)
    await eventually(lambda: _names(app, {"a", "b"}), what="a and b stored")
    first = await schedule_info(app, "a")
    w.stop()

    # the next deploy: "a" changed (another hour), "b" removed, "c" added
    app2 = apps()
    job2 = app2.task(name="job")(job.fn)
    app2.schedule(job2.message(n=1), cron="0 7 * * *", timezone="Europe/Berlin", name="a")
    app2.schedule(job2.message(n=3), every=60, name="c", catch_up="skip")
    start_worker(app2)
    await eventually(lambda: _names(app2, {"a", "c"}), what="a and c stored, b removed")
    a = await schedule_info(app2, "a")
    assert a.cron == "0 7 * * *" and a.last_tick_ms == first.last_tick_ms  # same identity
    c = await schedule_info(app2, "c")
    assert c.catch_up == "skip" and c.every_s == 60
    with pytest.raises(ScheduleNotFound):
        await schedule_info(app2, "b")


async def _names(app: TaskQueue, want: set[str]) -> bool:
    return {s.name for s in await list_schedules(app)} == want


async def test_pause_and_resume(papp: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    app = papp
    start_worker(app, schedules_every_ms=200)
    await eventually(lambda: _fired(app, 1), timeout=20, what="a first tick")
    await pause_schedule(app, "every-second")
    paused_at = (await schedule_info(app, "every-second")).fired_total
    # while paused, ticks pass without a task (they are counted as skipped)
    await eventually(lambda: _skipped(app, 2), timeout=20, what="2 ticks skipped")
    info = await schedule_info(app, "every-second")
    assert info.paused and info.next_fire_ms == []
    assert info.fired_total <= paused_at + 1  # (one may have fired as the pause came)
    await resume_schedule(app, "every-second")
    await eventually(lambda: _fired(app, info.fired_total + 2), timeout=20,
                     what="firing again")
    with pytest.raises(ScheduleNotFound):
        await pause_schedule(app, "nope")


async def _fired(app: TaskQueue, n: int) -> bool:
    return any(s.fired_total >= n for s in await list_schedules(app))


async def _skipped(app: TaskQueue, n: int) -> bool:
    return any(s.skipped_total >= n for s in await list_schedules(app))


async def test_drain_in_tests_neither_syncs_nor_fires_schedules() -> None:
    app = TaskQueue("memory://periodic-drain")

    @app.task(name="job")
    async def job() -> str:
        return "ran"

    app.schedule(job.message(), every=1)
    await job.enqueue()
    result = await drain(app)
    assert result.succeeded == 1
    assert await list_schedules(app) == []
    await app.aclose()


async def test_schedules_of_a_queue_and_of_its_priority_lane_both_stay(tq: TaskQueue) -> None:
    """A queue and its priority lanes share a hash tag; each keeps its own schedules (a sync
    of one must not remove the other's, nor may list_schedules show them twice)."""
    from taskq.worker.context import Clock  # noqa: PLC0415
    from taskq.worker.schedules import Scheduler  # noqa: PLC0415

    @tq.task(name="job")
    async def job(n: int) -> int:
        return n

    tq.schedule(job.message(n=1), every=3600, name="normal")
    tq.schedule(job.with_options(priority="high").message(n=2), every=3600, name="urgent")
    assert tq.schedules["urgent"].queue == "default!high"
    clock = Clock()
    await clock.sync(tq.redis)
    scheduler = Scheduler(tq, clock, missed_after_ms=60_000, every_ms=1_000)
    await scheduler.sync()
    await scheduler.fire()
    infos = await list_schedules(tq)
    assert sorted((s.name, s.queue) for s in infos) == [
        ("normal", "default"), ("urgent", "default!high")]
    assert not scheduler._warned  # neither found 'gone' by its firing pass


async def test_a_schedule_on_a_priority_lane_runs(
        apps: Callable[[], TaskQueue], start_worker: Callable[..., Worker]) -> None:
    """A lane that only a schedule uses is found by the workers of its queue (the sync
    registers the schedules' queues as an enqueue does), so its ticks run."""
    app = apps()
    ran: list[int] = []

    @app.task(name="job")
    async def job(n: int) -> int:
        ran.append(n)
        return n

    app.schedule(job.with_options(priority="high").message(n=7), every=1, name="urgent")
    start_worker(app, queues=("default",), schedules_every_ms=200, flags_every_ms=200,
                 block_ms=100)

    async def fired() -> bool:
        return bool(ran)

    await eventually(fired, timeout=20, what="the lane's periodic task ran")


async def test_a_periodic_task_learns_its_tick_in_the_schedules_timezone(
        apps: Callable[[], TaskQueue], start_worker: Callable[..., Worker]) -> None:
    """ctx.scheduled_at is the tick the task was fired for (not when it ran), in the
    schedule's timezone, and the same in the retry of that tick."""
    app = apps()
    seen: list[tuple[int, datetime | None, str]] = []

    @app.task(name="tick", max_attempts=2, backoff=0.05)
    async def tick(ctx: TaskContext) -> None:
        seen.append((ctx.attempt, ctx.scheduled_at, ctx.task_id))
        if ctx.attempt == 1:
            raise RuntimeError("the first attempt fails: the retry must see the same tick")

    @app.task(name="plain")
    async def plain(ctx: TaskContext) -> None:
        seen.append((0, ctx.scheduled_at, ctx.task_id))

    app.schedule(tick.message(), every=1, timezone="Europe/Berlin", name="berlin")
    start_worker(app, schedules_every_ms=200)
    await plain.enqueue()

    async def retried() -> bool:
        return any(a == 2 for a, _, _ in seen)

    await eventually(retried, timeout=30, what="a tick's task retried")
    log = {e["t"]: int(e["k"]) for e in await fired_log(app) if e["w"] == "fired"}
    second = next(s for s in seen if s[0] == 2)
    first = next(s for s in seen if s[0] == 1 and s[2] == second[2])
    at = second[1]
    assert at is not None and first[1] == at
    assert at.tzinfo == BERLIN and at.utcoffset() in (timedelta(hours=1), timedelta(hours=2))
    assert int(at.timestamp() * 1000) == log[second[2]]  # the tick, not the start time
    assert [s[1] for s in seen if s[0] == 0] == [None]  # not a periodic task


async def test_a_queue_whose_last_schedule_is_removed_leaves_the_periodic_queues_set(
        apps: Callable[[], TaskQueue]) -> None:
    """The set the syncs and the operator view read shrinks: a queue left without schedules
    is taken out (its hash deleted), so later syncs make no script call for it."""
    from taskq.keys import periodic_queues_key  # noqa: PLC0415
    from taskq.worker.context import Clock  # noqa: PLC0415
    from taskq.worker.schedules import Scheduler  # noqa: PLC0415

    async def synced(app: TaskQueue) -> Scheduler:
        clock = Clock()
        await clock.sync(app.redis)
        scheduler = Scheduler(app, clock, missed_after_ms=60_000, every_ms=1_000)
        await scheduler.sync()
        return scheduler

    async def registry(app: TaskQueue) -> set[str]:
        return {q.decode() for q in await app.redis.smembers(  # type: ignore[misc]
            periodic_queues_key(app.prefix))}

    old = apps()
    job = old.task(name="job", queue="reports")(_job)
    other = old.task(name="other", queue="mail")(_job)
    old.schedule(job.message(n=1), every=3600, name="a")
    old.schedule(other.message(n=2), every=3600, name="b")
    await synced(old)
    assert await registry(old) == {"reports", "mail"}

    new = apps()  # the next deploy: the schedule of queue "mail" is gone
    job2 = new.task(name="job", queue="reports")(_job)
    new.task(name="other", queue="mail")(_job)
    new.schedule(job2.message(n=1), every=3600, name="a")
    await synced(new)
    assert await registry(new) == {"reports"}
    assert await new.redis.exists(new.keys("mail").periodic) == 0
    assert {s.name for s in await list_schedules(new)} == {"a"}

    # a sync of code that schedules on "mail" again puts it back
    await synced(old)
    assert await registry(old) == {"reports", "mail"}

    # and a worker whose sync finds the hash refilled meanwhile (another worker's sync ran
    # between its script and its removal from the set) keeps the queue in the set
    scheduler = await synced(new)
    await old.scripts.periodic_sync(keys=old.keys("mail"), schedules=[old.schedules["b"]])
    await scheduler._forget(["mail"])
    assert await registry(new) == {"reports", "mail"}


async def _job(n: int) -> int:
    return n
