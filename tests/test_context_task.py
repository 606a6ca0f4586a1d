"""A task taking the TaskContext first is enqueued with its other arguments only."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from taskq import ContextTask, Task, TaskContext, TaskQueue, TaskValidationError, Worker

FAST = {"block_ms": 100}


async def test_context_task_is_enqueued_without_the_context(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    @tq.task
    async def report(ctx: TaskContext, month: str) -> str:
        await ctx.progress(0.5, "half way")
        return f"{ctx.task}:{ctx.attempt}:{month}"

    @tq.task
    def sync_report(ctx: TaskContext, month: str, pages: int = 1) -> str:
        return f"{ctx.queue}:{month}:{pages}"

    assert isinstance(report, ContextTask)
    by_position = await report.enqueue("2024-01")  # the README's own call
    by_name = await report.enqueue(month="2024-02")
    sync_handle = await sync_report.enqueue("2024-03", 2)
    start_worker(tq, **FAST)
    assert await by_position.result(timeout=10) == f"{report.name}:1:2024-01"
    assert await by_name.result(timeout=10) == f"{report.name}:1:2024-02"
    assert await sync_handle.result(timeout=10) == "default:2024-03:2"


async def test_context_task_arguments_are_still_validated(tq: TaskQueue) -> None:
    @tq.task
    async def report(ctx: TaskContext, month: str) -> None:
        return None

    with pytest.raises(TaskValidationError):
        await report.enqueue("2024-01", "extra")  # type: ignore[call-arg]
    with pytest.raises(TaskValidationError):
        await report.enqueue(month=1)  # type: ignore[arg-type]
    with pytest.raises(TaskValidationError):
        await report.enqueue()  # type: ignore[call-arg]
    assert set(report.signature.json_schema()["properties"]) == {"month"}


def test_plain_task_is_not_a_context_task() -> None:
    tq = TaskQueue(prefix="ctx-kind")

    @tq.task
    def plain(month: str) -> str:
        return month

    @tq.task
    def takes(ctx: TaskContext, month: str) -> str:
        return f"{ctx.task_id}:{month}"

    assert type(plain) is Task
    assert plain("x") == "x"
    ctx = TaskContext("q:1-0", "t", "q", 1, 3, "w")
    assert takes(ctx, "y") == "q:1-0:y"  # a direct call passes the context first
