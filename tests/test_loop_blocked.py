"""An async task that blocks the event loop longer than the lease (``time.sleep`` in an
``async def``): the loop watch (taskq/worker/loopwatch.py) logs a WARNING naming the task and
the fix, and keeps the worker's leases meanwhile: the task runs once and succeeds, with one
worker process or two (where the other one would otherwise take the entry over)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import pytest

from taskq import TaskQueue
from taskq.keys import GROUP
from tests.helpers import WorkerProcess, eventually
from tests.support import WORKER_APP, live_children, registered_pids, trace

LEASE_MS = 2000
BLOCK_S = 5.0  # two and a half leases


@pytest.mark.parametrize("processes", [1, 2])
async def test_a_task_blocking_the_loop_past_its_lease_runs_once(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess], processes: int
) -> None:
    proc = worker_process(WORKER_APP, "--processes", str(processes), "--lease-ms",
                          str(LEASE_MS), "--concurrency", "4")

    async def consuming() -> bool:
        pids = {proc.pid} if processes == 1 else set(live_children(proc.pid))
        return len(pids) == processes and pids <= await registered_pids(app)

    await eventually(consuming, timeout=30, what="workers consuming")
    blocks = app.get_task("blocks_loop")
    assert blocks is not None
    handle = await blocks.enqueue("b1", BLOCK_S)
    assert await handle.result(timeout=60) == "b1"
    status = await handle.status()
    assert status.attempts == 1, status
    assert await trace(app, "started") == ["b1"]  # ran once
    keys = app.keys("default")

    async def nothing_pending() -> bool:
        return int((await app.redis.xpending(keys.stream, GROUP))["pending"]) == 0

    await eventually(nothing_pending, timeout=10, what="no entry left pending")
    out = proc.output()
    assert "event loop is blocked" in out and "task blocks_loop" in out, out
    assert "cpu_bound=True" in out
    assert "lease lost" not in out and "reclaimed" not in out, out
    proc.signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 40) == 0, proc.output()
    assert await trace(app, "started") == ["b1"]
