"""Operators acting on one step of a workflow: cancelling it by its task id (the workflow
notices, in the cancel script), replaying its dead letter (refused, said so), and the
Cluster's rule that a workflow's queues share one slot (checked at start)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from redis.crc import key_slot
from typer.testing import CliRunner

from taskq import Retry, TaskQueue, Worker, admin
from taskq.cli import app as cli_app
from taskq.errors import WorkflowError, WorkflowFailed
from taskq.keys import QueueKeys
from taskq.workflow import StepFailure, Workflow, chain, group, start
from taskq.workflow.start import check_one_slot
from tests.helpers import eventually

runner = CliRunner()


def _tasks(tq: TaskQueue, ran: list[str]) -> dict[str, Any]:
    @tq.task
    async def add(a: int, b: int) -> int:
        ran.append("add")
        return a + b

    @tq.task(max_attempts=3)
    async def later(x: int) -> int:  # its first attempt waits a minute: it sits delayed
        ran.append("later")
        raise Retry(delay=60)

    @tq.task
    async def double(x: int) -> int:
        ran.append("double")
        return 2 * x

    @tq.task
    async def total(values: list[int]) -> int:
        ran.append("total")
        return sum(values)

    @tq.task(max_attempts=1)
    async def boom(x: int) -> int:
        raise ValueError(f"boom {x}")

    @tq.task
    async def noted(failure: StepFailure) -> str:
        ran.append("noted")
        return failure["reason"]

    return {"add": add, "later": later, "double": double, "total": total, "boom": boom,
            "noted": noted}


async def test_cancelling_a_delayed_step_by_id_ends_its_workflow(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    ran: list[str] = []
    t = _tasks(tq, ran)
    start_worker(tq, block_ms=100)
    wf = await start(tq, chain(t["add"].message(1, 2), t["later"].step(), t["double"].step(),
                               on_error=t["noted"].step()))
    second = (await wf.status()).steps[1].task_id

    async def delayed() -> bool:
        return await tq.redis.zscore(tq.keys("default").delayed, second) is not None

    await eventually(delayed, timeout=20, what="the second step waiting for its retry")
    assert await tq.cancel(second) == "delayed"
    st = await wf.wait(timeout=20)
    assert (st.status, st.finished) == ("cancelled", True)
    assert [s.state for s in st.steps] == ["succeeded", "cancelled", "skipped", "standby"]
    with pytest.raises(WorkflowFailed):
        await wf.result(timeout=5)
    assert (await tq.status(second)).status == "cancelled"
    # the third step was never enqueued (its envelope is gone), the on_error handler not run
    raw = await tq.redis.hgetall(Workflow(wf.id, tq).key)
    assert b"e:2" not in raw
    assert int(raw[b"left"]) == 0
    assert await tq.redis.ttl(Workflow(wf.id, tq).key) > 0  # it expires like any ended one
    assert "double" not in ran and "noted" not in ran
    assert await tq.cancel(second) == "unknown"  # a second cancel changes nothing


async def test_cancelling_a_running_step_by_id_ends_its_workflow(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    ran: list[str] = []
    t = _tasks(tq, ran)
    started = asyncio.Event()

    @tq.task
    async def slow(x: int) -> int:
        started.set()
        await asyncio.sleep(60)
        return x

    start_worker(tq, block_ms=100)
    wf = await start(tq, chain(t["add"].message(1, 2), slow.step(), t["double"].step()))
    await asyncio.wait_for(started.wait(), 20)
    assert await tq.cancel((await wf.status()).steps[1].task_id) == "running"
    st = await wf.wait(timeout=20)
    assert (st.status, st.finished) == ("cancelled", True)
    assert [s.state for s in st.steps] == ["succeeded", "cancelled", "skipped"]
    assert "double" not in ran


async def test_cancelling_a_queued_step_with_the_cli_ends_its_workflow(
        tq: TaskQueue, redis_url: str, prefix: str) -> None:
    t = _tasks(tq, [])
    wf = await start(tq, chain(t["add"].message(1, 2), t["double"].step(), t["double"].step()))
    first = (await wf.status()).steps[0].task_id
    r = await asyncio.to_thread(runner.invoke, cli_app, [
        "--redis-url", redis_url, "--prefix", prefix, "cancel", first, "--yes", "--json"])
    assert r.exit_code == 0, r.output
    assert "queued" in r.output
    st = await wf.status()
    assert (st.status, st.finished) == ("cancelled", True)
    assert [s.state for s in st.steps] == ["cancelled", "skipped", "skipped"]
    assert await tq.redis.xlen(tq.keys("default").stream) == 0


async def test_a_cancelled_group_member_ends_the_workflow_the_other_runs_on(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    """Cancelling one member of a group ends the workflow as cancelled, at once; the other
    member, already queued, runs to its end (as beside a step that dies), counted then."""
    ran: list[str] = []
    t = _tasks(tq, ran)
    wf = await start(tq, chain(group([t["add"].message(1, 2), t["add"].message(3, 4)]),
                               t["total"].step()))
    first = (await wf.status()).steps[0].task_id
    assert await tq.cancel(first) == "queued"
    st = await wf.status()
    assert st.status == "cancelled" and not st.finished
    assert [s.state for s in st.steps] == ["cancelled", "queued", "skipped"]
    start_worker(tq, block_ms=100)
    st = await wf.wait(timeout=20)
    assert st.status == "cancelled" and st.finished
    assert [s.state for s in st.steps] == ["cancelled", "succeeded", "skipped"]
    assert ran == ["add"]


async def test_plain_tasks_cancel_as_before(tq: TaskQueue) -> None:
    t = _tasks(tq, [])
    h = await t["add"].enqueue(1, 2)
    assert await tq.cancel(h.id) == "queued"
    delayed = await t["add"].with_options(delay=60).enqueue(1, 2)
    assert await tq.cancel(delayed.id) == "delayed"
    assert await tq.cancel(h.id) == "unknown"


async def test_replay_leaves_dead_workflow_steps_and_says_so(
        tq: TaskQueue, redis_url: str, prefix: str,
        start_worker: Callable[..., Worker]) -> None:
    ran: list[str] = []
    t = _tasks(tq, ran)
    start_worker(tq, block_ms=100)
    wf = await start(tq, chain(t["boom"].message(1), t["double"].step()))
    with pytest.raises(WorkflowFailed):
        await wf.result(timeout=20)
    calls: list[int] = []

    @tq.task(max_attempts=1)
    async def once(x: int) -> int:  # dies the first time only: its replay succeeds
        calls.append(x)
        if len(calls) == 1:
            raise ValueError("first time")
        return x

    plain = await once.enqueue(2)
    assert (await plain.wait(timeout=20)).status == "dead"
    step_id = (await wf.status()).steps[0].task_id
    r = await admin.replay_dead_letters(tq, "default")
    assert (r.replayed, r.workflow_steps) == (1, [step_id])  # the plain task only
    letters = await admin.dead_letters(tq, "default")
    assert [d.task_id for d in letters] == [step_id]  # the step's dead letter stays
    st = await wf.status()
    assert st.status == "failed" and [s.state for s in st.steps] == ["dead", "skipped"]
    assert (await tq.status(step_id)).status == "dead"
    assert await plain.result(timeout=20) == 2  # the plain one was replayed, and ran
    # the CLI says what it left and why
    r2 = await asyncio.to_thread(runner.invoke, cli_app, [
        "--redis-url", redis_url, "--prefix", prefix, "dead", "replay", "default", "--all",
        "--yes"])
    assert r2.exit_code == 0, r2.output
    assert "replayed 0" in r2.output and "not replayed: 1" in r2.output
    assert step_id in r2.output and "start the workflow again" in r2.output
    r3 = await asyncio.to_thread(runner.invoke, cli_app, [
        "--redis-url", redis_url, "--prefix", prefix, "dead", "replay", "default", "--all",
        "--yes", "--json"])
    assert json.loads(r3.output) == {"queue": "default", "replayed": 0,
                                     "workflow_steps": [step_id], "kept": []}



async def test_one_replay_tells_both_reasons_for_the_letters_it_left(
        tq: TaskQueue, redis_url: str, prefix: str,
        start_worker: Callable[..., Worker]) -> None:
    t = _tasks(tq, [])
    start_worker(tq, block_ms=100)
    wf = await start(tq, chain(t["boom"].message(1), t["double"].step()))
    with pytest.raises(WorkflowFailed):
        await wf.result(timeout=20)
    step_id = (await wf.status()).steps[0].task_id

    @tq.task(max_attempts=1)
    async def keyed(x: int) -> int:
        raise ValueError("always")

    dead = await keyed.with_options(key="m").enqueue(1)
    assert (await dead.wait(timeout=20)).status == "dead"
    holder = await keyed.with_options(key="m", delay=60).enqueue(2)  # sits delayed, holds "m"
    assert not holder.deduplicated
    r = await admin.replay_dead_letters(tq, "default")
    assert (r.replayed, r.workflow_steps) == (0, [step_id])
    assert [(k.task_id, k.holder) for k in r.kept] == [(dead.id, holder.id)]
    assert {d.task_id for d in await admin.dead_letters(tq, "default")} == {step_id, dead.id}
    assert await admin.replay_dead(tq, "default") == 0
    out = await asyncio.to_thread(runner.invoke, cli_app, [
        "--redis-url", redis_url, "--prefix", prefix, "dead", "replay", "default", "--all",
        "--yes"])
    assert out.exit_code == 0, out.output
    flat = " ".join(out.output.split())
    assert "not replayed: 1" in flat and step_id in flat
    assert "kept dead letter" in flat and holder.id in flat


def _queues_in_two_slots(prefix: str) -> tuple[str, str]:
    first = "a"
    slot = key_slot(QueueKeys(prefix, first).stream.encode())
    for i in range(100):
        other = f"b{i}"
        if key_slot(QueueKeys(prefix, other).stream.encode()) != slot:
            return first, other
    raise AssertionError("no second slot found")


def test_one_slot_rule_for_cluster_workflows() -> None:
    check_one_slot("p", ["emails", "emails!high", "emails!low"])  # a queue and its lanes
    a, b = _queues_in_two_slots("p")
    with pytest.raises(WorkflowError, match="must share one queue") as refused:
        check_one_slot("p", [a, b])
    assert repr(a) in str(refused.value) and repr(b) in str(refused.value)


async def test_the_memory_stand_in_ends_the_workflow_too() -> None:
    """Its Lua has no cmsgpack: the cancel script hands the message to Python to tell."""
    pytest.importorskip("fakeredis")
    pytest.importorskip("lupa")
    tq = TaskQueue("memory://")
    try:
        t = _tasks(tq, [])
        wf = await start(tq, chain(t["add"].message(1, 2), t["double"].step()))
        assert await tq.cancel((await wf.status()).steps[0].task_id) == "queued"
        st = await wf.status()
        assert st.status == "cancelled" and [s.state for s in st.steps] == [
            "cancelled", "skipped"]
        plain = await t["add"].enqueue(1, 2)
        assert await tq.cancel(plain.id) == "queued"
    finally:
        await tq.aclose()


async def test_a_purge_ends_the_workflows_of_the_steps_it_removes(tq: TaskQueue) -> None:
    """A purge removes queued workflow steps as a cancel by id does: each workflow ends as
    cancelled (else it stayed running for ever, its step gone); plain tasks go as before."""
    t = _tasks(tq, [])
    wf = await start(tq, chain(t["add"].message(1, 2), t["double"].step()))
    grouped = await start(tq, group([t["add"].message(1, 1), t["add"].message(2, 2)]))
    await t["add"].enqueue(5, 5)
    assert await admin.purge_queue(tq, "default") == 4
    st = await wf.status()
    assert (st.status, st.finished) == ("cancelled", True)
    assert [s.state for s in st.steps] == ["cancelled", "skipped"]
    st = await grouped.status()
    assert (st.status, st.finished) == ("cancelled", True)
    assert [s.state for s in st.steps] == ["cancelled", "cancelled"]
    assert await tq.redis.xlen(tq.keys("default").stream) == 0
