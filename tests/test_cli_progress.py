"""Progress of running tasks shows in `taskq tasks --status running` and `taskq watch`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from click.testing import Result
from typer.testing import CliRunner

from taskq import TaskContext, TaskQueue, Worker
from taskq.cli import app
from tests.helpers import eventually

runner = CliRunner()


async def test_running_progress_is_listed_and_watched(
    tq: TaskQueue, start_worker: Callable[..., Worker], redis_url: str, prefix: str
) -> None:
    release = asyncio.Event()

    @tq.task(queue="reports")
    async def report(ctx: TaskContext, month: str) -> str:
        await ctx.progress(0.5, "half way")
        await release.wait()
        return month

    def cli(*args: str) -> Result:
        r = runner.invoke(app, ["--redis-url", redis_url, "--prefix", prefix, *args],
                          env={"COLUMNS": "220"})
        assert r.exit_code == 0, (args, r.output)
        return r

    handle = await report.enqueue("2024-01")
    start_worker(tq, block_ms=100)
    await eventually(lambda: _has_progress(tq, handle.id), what="progress reported")
    try:
        listed = await asyncio.to_thread(cli, "tasks", "reports", "--status", "running")
        assert "progress" in listed.stdout and "50% half way" in listed.stdout, listed.stdout
        watched = await asyncio.to_thread(cli, "watch", "--seconds", "0", "--interval", "0.1")
        assert "Running tasks with progress" in watched.stdout, watched.stdout
        assert "50% half way" in watched.stdout, watched.stdout
    finally:
        release.set()
    assert await handle.result(timeout=10) == "2024-01"


async def _has_progress(tq: TaskQueue, task_id: str) -> bool:
    return (await tq.status(task_id)).progress == 0.5
