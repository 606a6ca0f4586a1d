"""Unique keys per queue across priority lanes, retaken by a dead-letter replay, released by a
purge of every lane (issue 16's rough edges)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from typer.testing import CliRunner

from taskq import TaskQueue, Worker, admin
from taskq.cli import app as cli_app
from taskq.keys import GROUP
from taskq.records import TaskStatus
from tests.helpers import eventually


async def _status_is(tq: TaskQueue, task_id: str, status: TaskStatus) -> bool:
    return (await tq.status(task_id)).status is status


# -- one key per queue, whatever the priority -----------------------------------------------


async def test_a_key_is_unique_per_queue_across_priority_levels(tq: TaskQueue) -> None:
    @tq.task(name="job", queue="pq")
    async def job(n: int) -> None: ...

    high = await job.with_options(key="k", priority="high").enqueue(1)
    normal = await job.with_options(key="k").enqueue(2)
    low = await job.with_options(key="k", priority="low").enqueue(3)
    assert high.id.startswith("pq!high:") and not high.deduplicated
    assert (normal.id, normal.deduplicated) == (high.id, True)
    assert (low.id, low.deduplicated) == (high.id, True)
    lanes = [await tq.redis.xlen(tq.keys(q).stream) for q in ("pq!high", "pq", "pq!low")]
    assert lanes == [1, 0, 0]
    # every lane's keys name the same hold
    assert tq.keys("pq!high").unique("job:k") == tq.keys("pq").unique("job:k")


async def test_a_delayed_holder_in_another_lane_is_found_with_its_due_time(
    tq: TaskQueue,
) -> None:
    @tq.task(name="job", queue="pq")
    async def job(n: int) -> None: ...

    low = await job.with_options(key="d", priority="low", delay=60).enqueue(1)
    same = await job.with_options(key="d", priority="high").enqueue(2)
    assert (same.id, same.deduplicated, same.run_at_ms) == (low.id, True, low.run_at_ms)
    assert await low.cancel() == "delayed"  # its key is released: the next one is added
    fresh = await job.with_options(key="d", priority="high").enqueue(3)
    assert not fresh.deduplicated and fresh.id.startswith("pq!high:")


async def test_a_high_task_ending_frees_the_key_for_a_normal_enqueue(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    @tq.task(name="job", queue="pq")
    async def job(n: int) -> int:
        return n

    start_worker(tq, queues=("pq",), block_ms=100)
    high = await job.with_options(key="k", priority="high").enqueue(1)
    assert await high.result(timeout=15) == 1
    assert not await tq.redis.exists(tq.keys("pq").unique("job:k"))
    normal = await job.with_options(key="k").enqueue(2)
    assert not normal.deduplicated and await normal.result(timeout=15) == 2


# -- a replay takes the key again --------------------------------------------------------------


async def _dead_with_key(tq: TaskQueue, start_worker: Callable[..., Worker],
                         gate: asyncio.Event) -> tuple[Worker, str]:
    """A task with key "r" dead-lettered once (it fails until ``gate`` is set), then queue
    "rq" paused (the worker saw it): the worker and the task id."""
    @tq.task(name="flaky", queue="rq", max_attempts=1)
    async def flaky(n: int) -> int:
        if not gate.is_set():
            raise ValueError("not yet")
        return n

    w = start_worker(tq, queues=("rq",), block_ms=100)
    h = await flaky.with_options(key="r").enqueue(1)
    await eventually(lambda: _status_is(tq, h.id, TaskStatus.DEAD), timeout=15, what="dead")
    assert not await tq.redis.exists(tq.keys("rq").unique("flaky:r"))
    await _pause(tq, w, "rq")
    return w, h.id


async def _pause(tq: TaskQueue, w: Worker, queue: str) -> None:
    """Pause ``queue`` and wait until worker ``w`` saw it."""
    await admin.pause(tq, queue)
    await eventually(_paused(w, queue), what="worker saw the pause")


async def test_a_replayed_dead_letter_holds_its_key_again(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    gate = asyncio.Event()
    _, task_id = await _dead_with_key(tq, start_worker, gate)
    r = await admin.replay_dead_letters(tq, "rq")
    assert (r.replayed, r.kept) == (1, ())
    flaky = tq.registry["flaky"]
    again = await flaky.with_options(key="r").enqueue(2)  # type: ignore[attr-defined]
    assert (again.id, again.deduplicated) == (task_id, True)  # the replayed task holds it
    gate.set()
    await admin.resume(tq, "rq")
    assert (await tq.handle(task_id).wait(timeout=15)).status is TaskStatus.SUCCEEDED
    assert not await tq.redis.exists(tq.keys("rq").unique("flaky:r"))


async def test_a_replay_whose_key_another_task_holds_keeps_the_dead_letter(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    gate = asyncio.Event()
    w, task_id = await _dead_with_key(tq, start_worker, gate)
    flaky = tq.registry["flaky"]
    other = await flaky.with_options(key="r", priority="high").enqueue(2)  # type: ignore[attr-defined]
    assert not other.deduplicated
    r = await admin.replay_dead_letters(tq, "rq")
    assert r.replayed == 0
    (kept,) = r.kept
    assert (kept.task_id, kept.key, kept.holder, kept.kept_after_success) == (
        task_id, "flaky:r", other.id, False)
    assert other.id in kept.reason and "flaky:r" in kept.reason
    assert len(await admin.dead_letters(tq, "rq")) == 1  # still there
    assert await tq.redis.xlen(tq.keys("rq").stream) == 0  # no second live task
    # once the holder has ended, the replay goes through and takes the key
    gate.set()
    await admin.resume(tq, "rq")
    assert (await other.wait(timeout=15)).status is TaskStatus.SUCCEEDED
    await _pause(tq, w, "rq")
    r = await admin.replay_dead_letters(tq, "rq")
    assert (r.replayed, r.kept) == (1, ())
    assert (await flaky.with_options(key="r").enqueue(3)).id == task_id  # type: ignore[attr-defined]


def test_the_cli_says_which_dead_letters_a_replay_kept(redis_url: str, prefix: str) -> None:
    async def setup() -> tuple[str, str]:
        tq = TaskQueue(redis_url, prefix=prefix)
        try:
            @tq.task(name="job")
            async def job(n: int) -> None: ...

            keys = tq.keys("default")
            h = await job.with_options(key="c").enqueue(1)
            ((entry, fields),) = await tq.redis.xrange(keys.stream)
            # dead-letter it as a worker would (its key released), then another task takes it
            await tq.redis.xadd(keys.dead, {"id": h.id, "task": "job", "reason": "failed",
                                            "payload": fields[b"m"]})
            await tq.redis.xdel(keys.stream, entry)
            await tq.redis.delete(keys.unique("job:c"))
            holder = await job.with_options(key="c").enqueue(2)
            return h.id, holder.id
        finally:
            await tq.aclose()

    task_id, holder = asyncio.run(setup())
    r = CliRunner().invoke(cli_app, ["--redis-url", redis_url, "--prefix", prefix, "dead",
                                     "replay", "default", "--all", "--yes"],
                           env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "replayed 0 dead letter(s)" in r.output
    assert f"(task {task_id})" in r.output and holder in r.output and "job:c" in r.output


def _paused(w: Worker, queue: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return queue in w.paused
    return check


# -- purge clears every lane and releases the keys of what it removed --------------------------


async def _fill(tq: TaskQueue) -> str:
    """Queue "uq": a keyed task delivered to a consumer (pending, as if running), then waiting
    keyed and plain tasks in every lane, ready and delayed; returns the delivered task's id."""
    @tq.task(name="job", queue="uq")
    async def job(n: int) -> None: ...

    held = await job.with_options(key="held").enqueue(0)
    stream = tq.keys("uq").stream
    await tq.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    delivered = await tq.redis.xreadgroup(GROUP, "ghost", {stream: ">"}, count=1)
    assert len(delivered[0][1]) == 1
    await job.with_options(key="a", priority="high").enqueue(1)
    await job.with_options(key="b").enqueue(2)
    await job.with_options(key="c", priority="low", delay=60).enqueue(3)
    await job.with_options(priority="high", delay=60).enqueue(4)
    await job.enqueue(5)
    await job.with_options(priority="low").enqueue(6)
    return held.id


async def _lane_sizes(tq: TaskQueue) -> list[tuple[int, int]]:
    out = []
    for q in ("uq!high", "uq", "uq!low"):
        k = tq.keys(q)
        out.append((await tq.redis.xlen(k.stream), await tq.redis.zcard(k.delayed)))
    return out


async def test_purge_clears_every_lane_and_releases_keys_but_keeps_delivered_tasks(
    tq: TaskQueue,
) -> None:
    held = await _fill(tq)
    assert await _lane_sizes(tq) == [(1, 1), (3, 0), (1, 1)]
    assert await admin.purge_queue(tq, "uq") == 6
    assert await _lane_sizes(tq) == [(0, 0), (1, 0), (0, 0)]  # the delivered entry stays
    keys = tq.keys("uq")
    for k in ("a", "b", "c"):
        assert not await tq.redis.exists(keys.unique(f"job:{k}")), k
    job = tq.registry["job"]
    again = await job.with_options(key="held").enqueue(7)  # type: ignore[attr-defined]
    assert (again.id, again.deduplicated) == (held, True)  # its task lives: key kept
    fresh = await job.with_options(key="a", priority="high").enqueue(8)  # type: ignore[attr-defined]
    assert not fresh.deduplicated
    assert (await tq.redis.hgetall(keys.stats)).get(b"purged") == b"2"  # the normal lane's 2


async def test_purge_of_one_lane_leaves_the_others(tq: TaskQueue) -> None:
    await _fill(tq)
    assert await admin.purge_queue(tq, "uq!low") == 2
    assert await _lane_sizes(tq) == [(1, 1), (3, 0), (0, 0)]
    assert not await tq.redis.exists(tq.keys("uq").unique("job:c"))
    assert await tq.redis.exists(tq.keys("uq").unique("job:a"))


def test_the_purge_confirmation_says_what_is_removed(redis_url: str, prefix: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    async def setup() -> None:
        tq = TaskQueue(redis_url, prefix=prefix)
        try:
            await _fill(tq)
        finally:
            await tq.aclose()

    asyncio.run(setup())
    monkeypatch.setattr("taskq.cli.common.interactive", lambda: True)
    r = CliRunner().invoke(cli_app, ["--redis-url", redis_url, "--prefix", prefix, "purge",
                                     "uq"], input="n\n", env={"COLUMNS": "250"})
    text = " ".join(r.output.split())
    assert ("Delete the 6 waiting tasks of queue 'uq' (high: 1 not yet delivered, 1 delayed; "
            "normal: 2 not yet delivered, 0 delayed; low: 1 not yet delivered, 1 delayed)? "
            "Their unique keys are released; the 1 tasks delivered to workers and the dead "
            "letters are kept.") in text, r.output
    assert r.exit_code == 1 and "declined; nothing was changed" in r.output


async def test_purge_ends_while_tasks_keep_coming(tq: TaskQueue) -> None:
    """A purge removes what waits when it runs and returns, even while a producer keeps
    sending (it must not chase the producer for ever)."""
    @tq.task(name="job", queue="busy")
    async def job(n: int) -> None: ...

    for i in range(5):
        await job.enqueue(i)
    stop = asyncio.Event()

    async def produce() -> None:
        n = 0
        while not stop.is_set():
            await job.enqueue(n)
            n += 1

    producer = asyncio.create_task(produce())
    try:
        removed = await asyncio.wait_for(admin.purge_queue(tq, "busy"), 30)
        assert removed >= 5
    finally:
        stop.set()
        await producer
