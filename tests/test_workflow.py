"""Workflows: chains, groups, chords, per-task callbacks, status and cancel, run by workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from taskq import Retry, TaskQueue, TaskValidationError, Worker, codec
from taskq import workflow as wf_pkg
from taskq.errors import WorkflowError, WorkflowFailed, WorkflowNotFound
from taskq.workflow import (
    StepFailure,
    Workflow,
    chain,
    chord,
    group,
    link,
    start,
    start_sync,
)


def tasks(tq: TaskQueue) -> dict[str, Any]:
    @tq.task
    async def add(a: int, b: int) -> int:
        return a + b

    @tq.task
    async def double(x: int) -> int:
        return 2 * x

    @tq.task
    async def total(values: list[int], plus: int = 0) -> int:
        return sum(values) + plus

    @tq.task(max_attempts=1)
    async def boom(x: int) -> int:
        raise ValueError(f"boom {x}")

    @tq.task
    async def noted(failure: StepFailure) -> str:
        return f"{failure['task']}:{failure['reason']}:{failure['error']}"

    @tq.task
    async def label(prefix: str, x: int) -> str:
        return f"{prefix}{x}"

    return {"add": add, "double": double, "total": total, "boom": boom, "noted": noted,
            "label": label}


async def test_chain_passes_each_result_on(tq: TaskQueue,
                                           start_worker: Callable[..., Worker]) -> None:
    t = tasks(tq)
    start_worker(tq, block_ms=100)
    wf = await start(tq, chain(t["add"].message(1, 2), t["double"].step(), t["double"].step()))
    assert await wf.result(timeout=20) == 12
    st = await wf.status()
    assert st.status == "succeeded" and st.finished and st.kind == "chain"
    assert [s.state for s in st.steps] == ["succeeded"] * 3
    assert [s.result for s in st.steps] == [3, 6, 12]
    # the input arrives by name and shows in the step's record
    rec = await tq.status(st.steps[2].task_id)
    assert rec.kwargs == {"x": 6}


async def test_step_into_names_the_parameter(tq: TaskQueue,
                                             start_worker: Callable[..., Worker]) -> None:
    t = tasks(tq)
    start_worker(tq, block_ms=100)
    wf = await start(tq, chain(t["add"].message(2, 3), t["label"].step_into("x", "n=")))
    assert await wf.result(timeout=20) == "n=5"


async def test_chord_callback_gets_results_in_order(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    t = tasks(tq)
    start_worker(tq, block_ms=100, concurrency=4)
    members = [t["add"].message(i, 0) for i in range(12)]
    wf = await start(tq, chord(members, t["total"].step(plus=100)))
    assert await wf.result(timeout=30) == sum(range(12)) + 100
    st = await wf.status()
    assert st.kind == "chord"
    callback = st.steps[-1]
    rec = await tq.status(callback.task_id)
    assert rec.kwargs["values"] == list(range(12))


async def test_group_result_is_a_list(tq: TaskQueue,
                                      start_worker: Callable[..., Worker]) -> None:
    t = tasks(tq)
    start_worker(tq, block_ms=100, concurrency=4)
    wf = await start(tq, group([t["add"].message(i, i) for i in range(5)]))
    assert await wf.result(timeout=20) == [0, 2, 4, 6, 8]


async def test_dead_member_fails_the_chord_and_runs_on_error(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    t = tasks(tq)
    start_worker(tq, block_ms=100, concurrency=4)
    members = [t["add"].message(1, 1), t["boom"].message(7), t["add"].message(2, 2)]
    wf = await start(tq, chord(members, t["total"].step(), on_error=t["noted"].step()))
    with pytest.raises(WorkflowFailed) as failed:
        await wf.result(timeout=30)
    st = failed.value.status
    assert st.status == "failed" and st.finished
    states = [s.state for s in st.steps]
    assert states[1] == "dead" and states[3] == "skipped"  # the callback never runs
    handler = st.steps[4]
    assert handler.handler and handler.state == "succeeded"
    assert handler.result == f"{t['boom'].name}:max_attempts:boom 7"


async def test_failed_chain_skips_the_rest(tq: TaskQueue,
                                           start_worker: Callable[..., Worker]) -> None:
    t = tasks(tq)
    start_worker(tq, block_ms=100)
    wf = await start(tq, chain(t["add"].message(1, 2), t["boom"].step(), t["double"].step()))
    st = await wf.wait(timeout=20)
    assert st.status == "failed"
    assert [s.state for s in st.steps] == ["succeeded", "dead", "skipped"]


async def test_link_callbacks(tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    t = tasks(tq)
    start_worker(tq, block_ms=100)
    ok = await start(tq, link(t["add"].message(1, 1), on_success=t["double"].step(),
                              on_failure=t["noted"].step()))
    st = await ok.wait(timeout=20)
    assert [s.state for s in st.steps] == ["succeeded", "succeeded", "standby"]
    assert st.steps[1].result == 4
    bad = await start(tq, link(t["boom"].message(3), on_success=t["double"].step(),
                               on_failure=t["noted"].step()))
    st = await bad.wait(timeout=20)
    assert [s.state for s in st.steps] == ["dead", "skipped", "succeeded"]
    assert st.steps[2].result.endswith("boom 3")


async def test_cancel_stops_waiting_and_queued_steps(tq: TaskQueue) -> None:
    t = tasks(tq)
    wf = await start(tq, chain(t["add"].message(1, 2), t["double"].step()))
    assert await wf.cancel() == "running"
    st = await wf.status()
    assert st.status == "cancelled" and st.finished
    assert [s.state for s in st.steps] == ["cancelled", "cancelled"]
    assert await tq.redis.xlen(tq.keys("default").stream) == 0
    assert await wf.cancel() == "cancelled"  # a second cancel changes nothing


async def test_status_of_unknown_workflow(tq: TaskQueue) -> None:
    with pytest.raises(WorkflowNotFound):
        await Workflow("default:1-wabc", tq).status()
    with pytest.raises(WorkflowNotFound):
        Workflow("not a workflow id", tq)


async def test_shapes_checked_at_enqueue(tq: TaskQueue) -> None:
    t = tasks(tq)
    with pytest.raises(WorkflowError):
        await start(tq, chain(t["double"].step(), t["double"].step()))  # no input for the 1st
    with pytest.raises(WorkflowError):
        await start(tq, group([]))
    with pytest.raises(TaskValidationError):
        t["label"].step_into("nope", "x")
    with pytest.raises(TaskValidationError):
        t["total"].step(plus="not a number")
    # input types checked at start where both sides are plain classes
    with pytest.raises(TaskValidationError, match="takes int, but the step before returns str"):
        await start(tq, chain(t["label"].message("p", 1), t["double"].step()))
    with pytest.raises(TaskValidationError, match="takes int"):
        await start(tq, chord([t["add"].message(1, 2)], t["double"].step()))
    with pytest.raises(TaskValidationError, match="takes list"):
        await start(tq, chord([t["label"].message("p", 1)], t["total"].step()))
    assert await tq.redis.xlen(tq.keys("default").stream) == 0


async def test_plain_tasks_do_not_carry_workflow_fields(tq: TaskQueue) -> None:
    t = tasks(tq)
    await t["add"].enqueue(1, 2)
    (entry,) = await tq.redis.xrange(tq.keys("default").stream)
    body = codec.unpack(entry[1][b"m"])
    assert "w" not in body and "x" not in body


def test_step_types() -> None:
    # typing: step() drops the first parameter (checked by mypy in tests/test_typing.py style)
    tq = TaskQueue("redis://127.0.0.1:1/0", prefix="unused")
    t = tasks(tq)
    s = t["label"].step_into("x", "p")
    assert s.param == "x" and s.kwargs == {"prefix": "p"}
    d = t["total"].step(plus=3)
    assert d.param == "values" and d.kwargs == {"plus": 3}


async def test_a_retried_step_keeps_its_input_and_its_place(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    t = tasks(tq)
    seen: list[int] = []

    @tq.task(max_attempts=3)
    async def shaky(x: int) -> int:
        seen.append(x)
        if len(seen) == 1:
            raise Retry(delay=0.05)
        return x + 1

    start_worker(tq, block_ms=100)
    wf = await start(tq, chain(t["add"].message(2, 3), shaky.step(), t["double"].step()))
    assert await wf.result(timeout=20) == 12
    assert seen == [5, 5]  # the second attempt got the same input
    st = await wf.status()
    assert [s.state for s in st.steps] == ["succeeded"] * 3


@pytest.mark.parametrize("field", [
    "nope", ["default:1-wab", -1, "", ["default"]], ["no colon", 0, "", ["default"]],
    ["default:1-wab", 0, "", []], ["default:1-wab", 0, "", ["bad queue"]],
    ["default:1-wab", 0, 5, ["default"]],
])
def test_malformed_workflow_field_is_a_decode_error(field: Any) -> None:
    body = {"v": 1, "t": "x", "a": [], "k": {}, "n": 0, "e": 0, "w": field}
    with pytest.raises(codec.DecodeError):
        codec.decode(codec.pack(body))


async def test_sync_start_and_handle(tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    t = tasks(tq)
    start_worker(tq, block_ms=100)

    def from_sync_code() -> tuple[Any, str]:
        wf = start_sync(tq, chain(t["add"].message(1, 2), t["double"].step()))
        return wf.result(timeout=20), wf.status().status

    try:
        assert await asyncio.to_thread(from_sync_code) == (6, "succeeded")
    finally:
        tq.close_sync()


def test_workflow_package_exports() -> None:
    public = {n for n, v in vars(wf_pkg).items()
              if not n.startswith("_") and not isinstance(v, type(wf_pkg))
              and type(v).__module__ != "__future__"}
    assert set(wf_pkg.__all__) == public
    assert wf_pkg.__all__ == sorted(wf_pkg.__all__, key=lambda n: (not n[:1].isupper(), n))


async def test_steps_with_a_concurrency_limit(tq: TaskQueue,
                                              start_worker: Callable[..., Worker]) -> None:
    """Steps holding a concurrency slot: the slot and the workflow are both settled by the
    one complete (or dead) script."""
    t = tasks(tq)

    @tq.task(concurrency_limit=1)
    async def limited(x: int) -> int:
        return x * 10

    @tq.task(concurrency_limit=1, max_attempts=1)
    async def limited_boom(x: int) -> int:
        raise ValueError(str(x))

    start_worker(tq, block_ms=100, concurrency=4)
    ok = await start(tq, chord([limited.message(i) for i in range(4)], t["total"].step()))
    assert await ok.result(timeout=30) == 60
    bad = await start(tq, chain(limited_boom.message(1), t["double"].step(),
                                on_error=t["noted"].step()))
    st = await bad.wait(timeout=30)
    assert [s.state for s in st.steps] == ["dead", "skipped", "succeeded"]
    again = await start(tq, chain(limited.message(2), t["double"].step()))
    assert await again.result(timeout=30) == 40  # the slots were freed
    dies_again = await start(tq, link(limited_boom.message(2), on_failure=t["noted"].step()))
    st = await dies_again.wait(timeout=30)  # ran: the dead step's slot was freed too
    assert [s.state for s in st.steps] == ["dead", "succeeded"]


@pytest.fixture
async def small_tq(redis_url: str, prefix: str) -> AsyncIterator[TaskQueue]:
    """A TaskQueue with a small max_payload_bytes. Requested before ``start_worker``, so its
    worker stops before it is closed (closed first, the worker's last commands reopened
    connections that nobody closed)."""
    tq = TaskQueue(redis_url, prefix=prefix, max_payload_bytes=4_000)
    yield tq
    await tq.aclose()


async def test_a_step_whose_input_makes_it_too_large_fails_its_workflow(
        small_tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    """Each member's result is within max_result_bytes, but the callback's envelope with the
    list of them passes max_payload_bytes: the worker refuses the callback (payload_too_large).
    Its workflow must end (failed, the step dead under its own task id), not stay running."""
    tq = small_tq

    @tq.task
    async def big(n: int) -> str:
        return str(n) * 3_000

    @tq.task
    async def count(values: list[str]) -> int:
        return len(values)

    start_worker(tq, block_ms=100, concurrency=2)
    wf = await start(tq, chord([big.message(1), big.message(2)], count.step()))
    with pytest.raises(WorkflowFailed) as failed:
        await wf.result(timeout=30)
    st = failed.value.status
    assert st.status == "failed" and st.finished
    assert [s.state for s in st.steps] == ["succeeded", "succeeded", "dead"]
    rec = await tq.status(st.steps[2].task_id)
    assert rec.status.value == "dead" and "payload_too_large" in (rec.error or "")
