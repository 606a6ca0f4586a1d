"""The operator API (taskq.admin) against a real Redis."""

from __future__ import annotations

import asyncio
import json

import pytest

from taskq import TaskNotFound, TaskQueue, TaskStatus, admin, codec
from taskq.keys import worker_alive_key, workers_key
from tests.helpers import eventually


def register(tq: TaskQueue) -> dict[str, object]:
    gate = asyncio.Event()
    calls: list[int] = []

    @tq.task(name="add", queue="jobs")
    async def add(a: int, b: int) -> int:
        calls.append(a)
        return a + b

    @tq.task(name="poison", queue="jobs", max_attempts=1)
    async def poison(n: int) -> None:
        if n >= 0:
            raise ValueError(f"bad input {n}")

    @tq.task(name="slow", queue="jobs")
    async def slow() -> str:
        await gate.wait()
        return "done"

    return {"add": add, "poison": poison, "slow": slow, "gate": gate, "calls": calls}


async def test_queue_info_counts_waiting_delayed_and_paused(tq: TaskQueue) -> None:
    t = register(tq)
    add = t["add"]
    await tq.enqueue_many([add.message(i, 1) for i in range(5)])  # type: ignore[attr-defined]
    await tq.enqueue_many([add.message(7, 7)], delay=60)  # type: ignore[attr-defined]
    await admin.pause(tq, "jobs")
    info = await admin.queue_info(tq, "jobs")
    assert (info.length, info.lag, info.in_flight, info.delayed, info.dead) == (5, 5, 0, 1, 0)
    assert info.paused is True
    assert info.oldest_waiting_age_s is not None and 0 <= info.oldest_waiting_age_s < 30
    assert set(info.to_dict()) >= {"name", "length", "in_flight", "lag", "delayed", "dead",
                                   "consumers", "oldest_waiting_age_s", "completed_last_minute",
                                   "completed_total", "paused"}
    await admin.resume(tq, "jobs")
    assert not (await admin.queue_info(tq, "jobs")).paused
    names = [q.name for q in await admin.list_queues(tq)]
    assert names == ["jobs"]
    delayed = await admin.next_delayed(tq, "jobs")
    assert [(d.task, d.attempts) for d in delayed] == [("add", 0)]
    queued = await admin.list_tasks(tq, "jobs", "queued")
    assert [r.kwargs for r in queued] == [{"a": i, "b": 1} for i in range(5)] + [{"a": 7, "b": 7}]
    assert {r.status for r in queued} == {TaskStatus.QUEUED}


async def test_unknown_queue_and_task(tq: TaskQueue) -> None:
    with pytest.raises(admin.QueueNotFound):
        await admin.queue_info(tq, "nope")
    unknown = await admin.pause(tq, "nope")  # done (before a deploy), the typo told
    assert isinstance(unknown, admin.QueueNotFound) and unknown.name == "nope"
    assert await admin.pause(tq, "nope") is None  # a queue now: paused, listed
    assert await admin.resume(tq, "nope") is None
    with pytest.raises(TaskNotFound):
        await admin.task_record(tq, "nope:1-1")
    with pytest.raises(TaskNotFound):
        await admin.cancel(tq, "garbage")


async def test_completions_counted_and_consumers_listed(tq: TaskQueue, start_worker) -> None:  # type: ignore[no-untyped-def]
    t = register(tq)
    handles = await tq.enqueue_many([t["add"].message(i, 1) for i in range(10)])  # type: ignore[attr-defined]
    w = start_worker(tq, queues=("jobs",), concurrency=4)
    for h in handles:
        await h.result(timeout=10)

    async def counted() -> admin.QueueInfo | None:
        info = await admin.queue_info(tq, "jobs")
        return info if info.completed_total == 10 else None

    info = await eventually(counted, what="completions counted")
    # all ten were counted in this minute's counter, or (across a minute boundary) in it and
    # the previous one, of which the figure takes the share still inside the last 60 s
    minute = int((await tq.redis.time())[0]) // 60
    keys = tq.keys("jobs")
    cur = int(await tq.redis.get(keys.done_minute(minute)) or 0)
    prev = int(await tq.redis.get(keys.done_minute(minute - 1)) or 0)
    assert cur + prev == 10
    if prev == 0:
        assert info.completed_last_minute == 10
    else:
        assert cur <= info.completed_last_minute <= 10
    assert info.length == 0 and info.lag == 0
    cons = await admin.consumers(tq, "jobs")
    assert [c.name for c in cons] == [w.id]

    async def alive() -> bool:
        return bool((await admin.consumers(tq, "jobs"))[0].alive)

    await eventually(alive, what="consumer alive")
    workers = await eventually(lambda: admin.list_workers(tq), what="worker registered")
    assert workers[0].id == w.id and workers[0].alive and workers[0].queues == ["jobs"]


async def test_completed_last_minute_counts_this_minute_and_the_last_pro_rata(
    tq: TaskQueue,
) -> None:
    register(tq)
    await tq.enqueue_many([])
    keys = tq.keys("jobs")
    await tq.redis.sadd(f"{tq.prefix}:queues", "jobs")  # type: ignore[misc]
    for _ in range(3):  # (again if a minute ends between the writes and the read)
        sec, _ = await tq.redis.time()
        minute = int(sec) // 60
        await tq.redis.set(keys.done_minute(minute), 42)
        await tq.redis.set(keys.done_minute(minute - 1), 60)
        before = await tq.redis.time()
        info = await admin.queue_info(tq, "jobs")
        after = await tq.redis.time()
        if int(after[0]) // 60 == minute:
            break
    # this minute's 42, plus the previous minute's 60 pro rata: the share of it still inside
    # the last 60 s at the moment of the read (between `before` and `after`)
    def share(t: tuple[int, int]) -> int:
        elapsed = ((t[0] * 1000 + t[1] // 1000) % 60_000) / 60_000
        return round(60 * (1 - elapsed))

    assert 42 + share(after) <= info.completed_last_minute <= 42 + share(before)


async def test_dead_letters_replay_and_purge(tq: TaskQueue, start_worker) -> None:  # type: ignore[no-untyped-def]
    t = register(tq)
    poison = t["poison"]
    handles = [await poison.enqueue(i) for i in range(3)]  # type: ignore[attr-defined]
    start_worker(tq, queues=("jobs",), concurrency=4)

    async def three_dead() -> list[admin.DeadLetter]:
        letters = await admin.dead_letters(tq, "jobs")
        return letters if len(letters) == 3 else []

    letters = await eventually(three_dead, what="three dead letters")
    first = letters[-1]  # oldest last
    assert first.task == "poison" and first.reason == "max_attempts"
    assert first.error_type == "ValueError" and "bad input" in first.error
    assert "Traceback" in first.traceback and first.payload_ok
    assert sorted(d.kwargs["n"] for d in letters) == [0, 1, 2]
    assert {d.task_id for d in letters} == {h.id for h in handles}
    shown = await admin.dead_letter(tq, "jobs", first.id)
    assert shown is not None and shown.to_dict() == first.to_dict()
    assert await admin.dead_letter(tq, "jobs", "1-1") is None
    assert await admin.dead_letters(tq, "jobs", task="add") == []
    failures = await admin.recent_failures(tq, "jobs")
    assert len(failures) == 3 and failures[0].status == "dead"

    # replay one: it runs again (and dies again, with attempts reset to 1 run)
    assert await admin.replay_dead(tq, "jobs", [first.id]) == 1

    async def back_dead() -> list[admin.DeadLetter]:
        again = [d for d in await admin.dead_letters(tq, "jobs") if d.task_id == first.task_id]
        return again

    again = (await eventually(back_dead, what="replayed task ran again"))[0]
    assert again.id != first.id and again.attempts == 1
    assert await admin.purge_dead(tq, "jobs", task="add") == 0
    assert await admin.purge_dead(tq, "jobs", [again.id]) == 1
    assert await admin.purge_dead(tq, "jobs") == 2
    assert (await admin.queue_info(tq, "jobs")).dead == 0


async def test_replay_runs_the_task_to_success(tq: TaskQueue, start_worker, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    t = register(tq)
    h = await t["poison"].enqueue(5)  # type: ignore[attr-defined]
    wtq = TaskQueue(redis_url, prefix=tq.prefix)
    register(wtq)
    w = start_worker(wtq, queues=("jobs",))
    await eventually(lambda: admin.dead_letters(tq, "jobs"), what="dead")
    w.stop()

    async def gone() -> bool:
        return not await admin.list_workers(tq)

    await eventually(gone, what="worker stopped")
    await wtq.aclose()
    # rewrite the dead letter's payload to an argument that succeeds, as a fixed deploy would
    letter = (await admin.dead_letters(tq, "jobs"))[0]
    keys = tq.keys("jobs")
    await tq.redis.xdel(keys.dead, letter.id)
    fixed = codec.encode(codec.Message("poison", (), {"n": -1}, 1, 0, h.id))
    new_id = await tq.redis.xadd(keys.dead, {"id": h.id, "entry": letter.entry, "task": "poison",
                                             "reason": "x", "attempts": 1, "payload": fixed})
    assert (await admin.task_record(tq, h.id)).status is TaskStatus.DEAD
    assert await admin.replay_dead(tq, "jobs") == 1
    rec = await admin.task_record(tq, h.id)
    assert rec.status is TaskStatus.QUEUED and rec.attempts == 0
    assert await admin.dead_letter(tq, "jobs", new_id.decode()) is None
    start_worker(tq, queues=("jobs",))
    rec = await tq.wait(h.id, timeout=10)
    assert rec.status is TaskStatus.SUCCEEDED and rec.attempts == 1


async def test_purge_queue_keeps_running_tasks(tq: TaskQueue, start_worker) -> None:  # type: ignore[no-untyped-def]
    t = register(tq)
    slow = await t["slow"].enqueue()  # type: ignore[attr-defined]
    w = start_worker(tq, queues=("jobs",), concurrency=1, prefetch=0)

    async def running() -> bool:
        return (await tq.status(slow.id)).status is TaskStatus.RUNNING

    await eventually(running, what="slow task running")
    await admin.pause(tq, "jobs")

    async def paused() -> bool:
        return "jobs" in w.paused

    await eventually(paused, what="worker saw the pause")
    await tq.enqueue_many([t["add"].message(i, 1) for i in range(2500)])  # type: ignore[attr-defined]
    await tq.enqueue_many([t["add"].message(1, 1)], delay=300)  # type: ignore[attr-defined]
    listing = await admin.list_tasks(tq, "jobs", "running")
    assert [r.id for r in listing] == [slow.id]
    assert (await admin.queue_info(tq, "jobs")).lag == 2500
    assert await admin.purge_queue(tq, "jobs") == 2501
    info = await admin.queue_info(tq, "jobs")
    assert (info.length, info.in_flight, info.lag, info.delayed) == (1, 1, 0, 0)
    t["gate"].set()  # type: ignore[attr-defined]
    await admin.resume(tq, "jobs")
    assert (await slow.result(timeout=10)) == "done"
    done = await admin.list_tasks(tq, "jobs", "succeeded")
    assert [r.id for r in done] == [slow.id]


async def test_cancel_and_list_cancelled(tq: TaskQueue) -> None:
    t = register(tq)
    h = await t["add"].enqueue(1, 2)  # type: ignore[attr-defined]
    assert await admin.cancel(tq, h.id) == "queued"
    rec = await admin.task_record(tq, h.id)
    assert rec.status is TaskStatus.CANCELLED
    assert [r.id for r in await admin.list_tasks(tq, "jobs", "cancelled")] == [h.id]
    assert [r.id for r in await admin.list_tasks(tq, "jobs")] == [h.id]


async def test_dead_workers_listed_and_cleaned(tq: TaskQueue) -> None:
    info = {"id": "w1", "host": "h", "pid": 1, "queues": ["jobs"], "concurrency": 3,
            "in_flight": 0, "processed": 5, "heartbeat": 1}
    await tq.redis.hset(workers_key(tq.prefix), mapping={  # type: ignore[misc]
        "w1": json.dumps(info), "w2": json.dumps({**info, "id": "w2"})})
    await tq.redis.set(worker_alive_key(tq.prefix, "w2"), b"1", px=60_000)
    workers = await admin.list_workers(tq)
    assert [(w.id, w.alive) for w in workers] == [("w2", True), ("w1", False)]
    assert workers[1].processed == 5 and workers[1].concurrency == 3
    assert await admin.clean_dead_workers(tq) == 1
    assert [w.id for w in await admin.list_workers(tq)] == ["w2"]


async def test_lag_is_right_after_a_purge(tq: TaskQueue, start_worker) -> None:  # type: ignore[no-untyped-def]
    t = register(tq)
    w = start_worker(tq, queues=("jobs",), concurrency=2)
    h = await t["add"].enqueue(1, 1)  # type: ignore[attr-defined]
    await h.result(timeout=10)  # the group now has a position
    await admin.pause(tq, "jobs")

    async def paused() -> bool:
        return "jobs" in w.paused

    await eventually(paused, what="worker saw the pause")
    await t["add"].enqueue(0, 0)  # type: ignore[attr-defined]  # may be taken by a read issued before the pause
    await tq.enqueue_many([t["add"].message(i, 1) for i in range(30)])  # type: ignore[attr-defined]
    before = await admin.queue_info(tq, "jobs")
    purged = await admin.purge_queue(tq, "jobs")
    assert purged == before.lag and purged >= 30
    info = await admin.queue_info(tq, "jobs")
    assert (info.lag, info.oldest_waiting_age_s) == (0, None)

