"""The read model (taskq.state): the state rule without Redis, and status and listing agreeing
in every state against a real Redis."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import pytest

from taskq import TaskQueue, TaskStatus, Worker, admin, codec, ids
from taskq.codec import Message
from taskq.records import TaskRecord
from taskq.state import Observed, Pending, resolve
from tests.helpers import eventually

TID = "jobs:1700000000000-0"


def body(attempts: int = 0, task_id: str | None = None) -> bytes:
    return codec.encode(Message("add", (), {"a": 1}, attempts, 1_700_000_000_000, task_id))


def failure(status: TaskStatus = TaskStatus.FAILED) -> TaskRecord:
    return TaskRecord(TID, "jobs", status, task="add", attempts=1, error="boom",
                      finished_ms=1_700_000_000_500)


# -- the rule, without Redis -------------------------------------------------------------------


def test_nothing_observed_is_no_state() -> None:
    assert resolve(Observed(TID, "jobs")) is None


def test_a_failure_record_alone_is_left_to_the_caller() -> None:
    assert resolve(Observed(TID, "jobs", failure())) is None


def test_an_ended_record_wins_over_everything() -> None:
    for status in (TaskStatus.SUCCEEDED, TaskStatus.DEAD, TaskStatus.CANCELLED):
        rec = failure(status)
        seen = Observed(TID, "jobs", rec, run_at_ms=5, delayed_payload=body(), entry="1-0",
                        body=body(), pending=Pending("w1", 1))
        assert resolve(seen) is rec


def test_delayed_without_a_failure_is_queued() -> None:
    rec = resolve(Observed(TID, "jobs", run_at_ms=1234, delayed_payload=body()))
    assert rec is not None
    assert (rec.status, rec.run_at_ms, rec.task, rec.kwargs, rec.attempts) == (
        TaskStatus.QUEUED, 1234, "add", {"a": 1}, 0)
    assert rec.entry_id is None and rec.enqueued_ms == 1_700_000_000_000


def test_delayed_with_a_failure_is_failed_and_keeps_the_error() -> None:
    rec = resolve(Observed(TID, "jobs", failure(), run_at_ms=1234, delayed_payload=body(1)))
    assert rec is not None
    assert (rec.status, rec.run_at_ms, rec.error, rec.attempts, rec.finished_ms) == (
        TaskStatus.FAILED, 1234, "boom", 1, 1_700_000_000_500)


def test_an_undelivered_entry_is_queued() -> None:
    rec = resolve(Observed(TID, "jobs", entry="1700000000000-0", body=body()))
    assert rec is not None
    assert (rec.status, rec.entry_id, rec.worker, rec.deliveries, rec.kwargs) == (
        TaskStatus.QUEUED, "1700000000000-0", None, None, {"a": 1})


def test_a_pending_entry_is_running_with_the_attempt_now_running() -> None:
    seen = Observed(TID, "jobs", failure(), {"p": 0.5, "m": "half"}, entry="5-0",
                    body=body(1, TID), pending=Pending("w1", 2))
    rec = resolve(seen)
    assert rec is not None
    assert (rec.status, rec.worker, rec.deliveries, rec.entry_id) == (
        TaskStatus.RUNNING, "w1", 2, "5-0")
    assert rec.attempts == 3  # one recorded attempt, plus its two deliveries
    assert (rec.progress, rec.progress_message) == (0.5, "half")
    assert rec.error == "boom"  # the earlier failure stays visible


def test_progress_shows_only_while_running() -> None:
    rec = resolve(Observed(TID, "jobs", None, {"p": 0.5}, entry="5-0", body=body()))
    assert rec is not None and rec.status is TaskStatus.QUEUED and rec.progress is None


def test_an_undecodable_body_keeps_what_the_record_knows() -> None:
    rec = resolve(Observed(TID, "jobs", failure(), entry="5-0", body=b"\xc1garbage",
                           pending=Pending("w1", 1)))
    assert rec is not None
    assert (rec.status, rec.task, rec.attempts) == (TaskStatus.RUNNING, "add", 1)


def test_the_task_id_and_entry_rule() -> None:
    assert ids.of_entry("jobs", "5-0", None) == "jobs:5-0"
    assert ids.of_entry("jobs", "9-0", TID) == TID
    assert ids.entry_of(TID, None) == "1700000000000-0"
    assert ids.entry_of(TID, "9-0") == "9-0"
    assert ids.entry_of("jobs:1700000000000-dabc", None) is None


# -- status and listing agree, against Redis ---------------------------------------------------


async def listed(tq: TaskQueue, status: TaskStatus, task_id: str) -> TaskRecord | None:
    for rec in await admin.list_tasks(tq, "jobs", status, limit=100):
        if rec.id == task_id:
            return rec
    return None


async def test_status_and_listing_agree_in_every_state(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    gate = asyncio.Event()

    @tq.task(name="gated", queue="jobs")
    async def gated() -> None:
        await gate.wait()

    @tq.task(name="ok", queue="jobs")
    async def ok(n: int) -> int:
        return n

    @tq.task(name="flaky", queue="jobs", max_attempts=2, backoff=60)
    async def flaky() -> None:
        raise RuntimeError("flaky")

    @tq.task(name="poison", queue="jobs", max_attempts=1)
    async def poison() -> None:
        raise ValueError("poison")

    w = start_worker(tq, queues=("jobs",), block_ms=100, flags_every_ms=100,
                     promote_every_ms=100)
    running = await gated.enqueue()
    succeeded = await ok.enqueue(0)
    failed = await flaky.enqueue()
    dead = await poison.enqueue()
    assert await succeeded.result(timeout=10) == 0
    for handle, want in ((running, TaskStatus.RUNNING), (failed, TaskStatus.FAILED),
                         (dead, TaskStatus.DEAD)):
        await eventually(functools.partial(_is, tq, handle.id, want), what=str(want))

    await admin.pause(tq, "jobs")
    await eventually(lambda: _true("jobs" in w.paused), what="the worker saw the pause")
    queued = await ok.enqueue(1)
    delayed = await ok.with_options(delay=60).enqueue(2)
    cancelled = await ok.enqueue(3)
    assert await cancelled.cancel() == "queued"
    moved = await ok.with_options(delay=0.1).enqueue(4)  # promoted to the stream: a new entry

    async def promoted() -> bool:
        rec = await tq.status(moved.id)
        return rec.status is TaskStatus.QUEUED and rec.entry_id is not None

    await eventually(promoted, what="the delayed task promoted")

    expected = {
        running.id: TaskStatus.RUNNING, succeeded.id: TaskStatus.SUCCEEDED,
        failed.id: TaskStatus.FAILED, dead.id: TaskStatus.DEAD, queued.id: TaskStatus.QUEUED,
        delayed.id: TaskStatus.QUEUED, cancelled.id: TaskStatus.CANCELLED,
        moved.id: TaskStatus.QUEUED,
    }
    for task_id, status in expected.items():
        rec = await tq.status(task_id)
        assert rec.status is status, (task_id, rec)
        assert await listed(tq, status, task_id) == rec, task_id
    moved_rec = await tq.status(moved.id)
    assert moved_rec.entry_id != ids.implied_entry(moved.id)  # its id and entry differ
    assert (moved_rec.task, moved_rec.kwargs) == ("ok", {"n": 4})
    assert (await tq.status(delayed.id)).run_at_ms is not None
    run = await tq.status(running.id)
    assert (run.worker, run.deliveries, run.attempts) == (w.id, 1, 1)
    every = {r.id for r in await admin.list_tasks(tq, "jobs", limit=100)}
    assert every == set(expected)

    gate.set()
    await admin.resume(tq, "jobs")
    assert (await running.wait(timeout=10)).status is TaskStatus.SUCCEEDED


async def _is(tq: TaskQueue, task_id: str, status: TaskStatus) -> bool:
    return (await tq.status(task_id)).status is status


async def _true(value: bool) -> bool:
    return value


@pytest.mark.parametrize("status", ["running", "queued", "failed"])
async def test_listing_an_empty_queue_state(tq: TaskQueue, status: str) -> None:
    @tq.task(queue="jobs")
    async def nothing() -> None:
        return None

    assert await admin.list_tasks(tq, "jobs", status) == []
