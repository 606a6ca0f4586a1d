"""The periodic scripts on their own (lua/periodic_*.lua), with the schedule's last tick and
the last pass set by hand: which due ticks a pass fires, by policy, pause, backlog and code
version. Deterministic: no waiting for ticks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from taskq import TaskQueue, codec
from taskq.periodic import CatchUp, Schedule, Spec
from taskq.scripts import Fired

EVERY = 1000


@pytest.fixture
async def app(redis_url: str, prefix: str) -> AsyncIterator[TaskQueue]:
    tq = TaskQueue(redis_url, prefix=prefix, max_backlog=1_000)

    @tq.task(name="job")
    async def job() -> None: ...

    yield tq
    await tq.aclose()


def schedule(app: TaskQueue, catch_up: str = "once", every_ms: int = EVERY) -> Schedule:
    return Schedule("s", app.registry["job"].message(), Spec(every_ms=every_ms),
                    CatchUp(catch_up))


async def now_ms(app: TaskQueue) -> int:
    sec, usec = await app.redis.time()
    return int(sec) * 1000 + int(usec) // 1000


async def setup(app: TaskQueue, s: Schedule, *, behind: int, last_pass_ago: int) -> int:
    """Store ``s`` with its last tick ``behind`` ticks ago and the last pass that long ago;
    returns that last tick."""
    keys = app.keys("default")
    await app.scripts.periodic_sync(keys=keys, schedules=[s])
    now = await now_ms(app)
    last = (now // EVERY - behind) * EVERY
    await app.redis.hset(keys.periodic,  # type: ignore[misc]
                         mapping={"l:s": last, "seen": now - last_pass_ago})
    return last


async def fire(app: TaskQueue, s: Schedule, last: int, digest: str | None = None,
               tail: bool = False) -> tuple[bool, Fired]:
    now = await now_ms(app)
    head = s.spec.ticks(last, until_ms=now + 1000)
    tail_ticks = s.spec.ticks(now - 3000, until_ms=now + 1000) if tail else []
    _, missed, (r,) = await app.scripts.periodic_fire(
        keys=app.keys("default"), missed_after_ms=5000, limit=app.max_backlog,
        ticks=[(s.name, digest or s.digest, s.message_at(now), head[:5] if tail else head,
                tail_ticks)])
    return missed, r


async def stream_len(app: TaskQueue) -> int:
    return int(await app.redis.xlen(app.keys("default").stream))


async def test_a_recent_pass_fires_every_due_tick_once(app: TaskQueue) -> None:
    s = schedule(app)
    last = await setup(app, s, behind=4, last_pass_ago=1000)
    missed, r = await fire(app, s, last)
    assert not missed
    assert (r.state, r.fired, r.skipped) == ("ok", 4, 0)
    assert r.last_tick_ms == last + 4 * EVERY
    assert await stream_len(app) == 4
    entries = await app.redis.xrange(app.keys("default").stream)
    sent = [codec.decode(f[b"m"]) for _, f in entries]
    assert all(m.task == "job" and abs(m.enqueued_ms - last - 4 * EVERY) < 5_000 for m in sent)
    _, again = await fire(app, s, last)  # the same ticks handed over again: claimed already
    assert again.fired == 0 and await stream_len(app) == 4


@pytest.mark.parametrize(("policy", "fired"), [("once", 1), ("skip", 0), ("all", 6)])
async def test_after_no_worker_ran_the_policy_decides(app: TaskQueue, policy: str,
                                                      fired: int) -> None:
    s = schedule(app, policy)
    last = await setup(app, s, behind=6, last_pass_ago=30_000)
    missed, r = await fire(app, s, last)
    assert missed
    assert r.fired == fired and r.skipped == 6 - fired
    assert r.last_tick_ms == last + 6 * EVERY
    assert await stream_len(app) == fired
    log = await app.redis.xrange(app.keys("default").periodic_log)
    kinds = [f[b"w"] for _, f in log]
    assert kinds.count(b"fired") == fired and kinds.count(b"missed") == (fired < 6)


async def test_once_reaches_the_latest_tick_beyond_the_handed_head(app: TaskQueue) -> None:
    s = schedule(app, "once")
    last = await setup(app, s, behind=50, last_pass_ago=60_000)
    _, r = await fire(app, s, last, tail=True)  # head stops 45 ticks short; the tail has now
    assert r.fired == 1 and r.last_tick_ms >= last + 49 * EVERY


async def test_paused_ticks_pass_without_a_task_and_resume_starts_afresh(
        app: TaskQueue) -> None:
    s = schedule(app)
    keys = app.keys("default")
    last = await setup(app, s, behind=3, last_pass_ago=1000)
    assert await app.scripts.periodic_pause(keys=keys, name="s", paused=True)
    _, r = await fire(app, s, last)
    assert (r.state, r.fired, r.skipped) == ("paused", 0, 3)
    await app.redis.hset(keys.periodic, "l:s", str(last))  # type: ignore[misc]
    assert await app.scripts.periodic_pause(keys=keys, name="s", paused=False)
    _, r = await fire(app, s, last)
    assert r.fired == 0  # resumed: from the next tick on
    assert not await app.scripts.periodic_pause(keys=keys, name="nope", paused=True)


async def test_a_full_backlog_skips_the_tick(app: TaskQueue) -> None:
    s = schedule(app)
    last = await setup(app, s, behind=1, last_pass_ago=1000)
    await app.redis.xadd(app.keys("default").stream, {"m": b"x"})
    _, _, (r,) = await app.scripts.periodic_fire(
        keys=app.keys("default"), missed_after_ms=5000, limit=1,
        ticks=[("s", s.digest, b"", s.spec.ticks(last, until_ms=last + EVERY), [])])
    assert (r.state, r.fired, r.skipped) == ("full", 0, 1)
    assert await stream_len(app) == 1


async def test_a_worker_of_other_code_fires_nothing(app: TaskQueue) -> None:
    s = schedule(app)
    last = await setup(app, s, behind=2, last_pass_ago=1000)
    older = schedule(app, every_ms=2 * EVERY)  # the same name, defined otherwise
    assert older.digest != s.digest
    _, r = await fire(app, older, last)
    assert (r.state, r.fired) == ("stale", 0)
    await app.scripts.periodic_sync(keys=app.keys("default"), schedules=[])  # removed
    _, r = await fire(app, s, last)
    assert (r.state, r.fired) == ("gone", 0)
    assert await stream_len(app) == 0


async def test_a_changed_schedule_keeps_its_last_tick(app: TaskQueue) -> None:
    s = schedule(app)
    last = await setup(app, s, behind=2, last_pass_ago=1000)
    changed = schedule(app, "skip")
    (row,) = await app.scripts.periodic_sync(keys=app.keys("default"), schedules=[changed])
    assert row == ("s", "changed", last)
    (row,) = await app.scripts.periodic_sync(keys=app.keys("default"), schedules=[changed])
    assert row == ("s", "same", last)


async def test_a_daily_0230_fires_once_on_the_spring_forward_day_end_to_end(
        app: TaskQueue) -> None:
    # Berlin's 2026-03-29 (02:00 -> 03:00) is in the past of Redis's clock: the days around it
    # are handed to the firing script as due ticks, as a worker would after a restart with
    # catch_up="all"
    s = Schedule("s", app.registry["job"].message(),
                 Spec(cron="30 2 * * *", timezone="Europe/Berlin"), CatchUp.ALL)
    keys = app.keys("default")
    await app.scripts.periodic_sync(keys=keys, schedules=[s])
    start = int(datetime(2026, 3, 27, 12, 0, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
                * 1000)
    assert start < await now_ms(app) - 5 * 86_400_000  # the premise: those days are past
    await app.redis.hset(keys.periodic, "l:s", str(start))  # type: ignore[misc]
    head = s.spec.ticks(start, until_ms=await now_ms(app), limit=4)
    _, _, (r,) = await app.scripts.periodic_fire(
        keys=keys, missed_after_ms=5000, limit=0, ticks=[("s", s.digest, b"", head, [])])
    assert r.fired == 4
    log = await app.redis.xrange(keys.periodic_log)
    fired = [datetime.fromtimestamp(int(f[b"k"]) / 1000, ZoneInfo("Europe/Berlin"))
             for _, f in log]
    assert [f"{d:%m-%d %H:%M}" for d in fired] == ["03-28 02:30", "03-29 03:00",
                                                   "03-30 02:30", "03-31 02:30"]
