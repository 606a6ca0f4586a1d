"""An async task that blocks the event loop longer than the lease (``time.sleep`` in an
``async def``): the loop watch (taskq/worker/loopwatch.py) logs a WARNING naming the task and
the fix, and keeps the worker's leases meanwhile: the task runs once and succeeds, with one
worker process or two (where the other one would otherwise take the entry over)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import pytest

from taskq import TaskQueue, Worker
from taskq.keys import GROUP
from taskq.worker.loopwatch import LoopWatch
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
    assert "cpu_bound=True" in out and "tests/apps/common.py:" in out  # (the blocking line)
    assert "lease lost" not in out and "reclaimed" not in out, out
    proc.signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 40) == 0, proc.output()
    assert await trace(app, "started") == ["b1"]


async def test_a_worker_never_takes_over_an_entry_it_still_runs(
    tq: TaskQueue, start_worker: Callable[..., Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the loop watch's renewals (switched off here), a blocked loop lets the leases
    of what the worker holds run out; the reclaim pass that comes first when the loop runs
    again renews them before it looks, so the worker does not take its own running entry over
    (a new delivery would make the running attempt's ack fail, and the task run again)."""
    monkeypatch.setattr(LoopWatch, "_renew", lambda self: False)
    runs: list[int] = []

    @tq.task(max_attempts=5)
    async def blocker() -> int:
        runs.append(1)
        time.sleep(2.5)  # noqa: ASYNC251 - the mistake under test: 2.5 leases
        return len(runs)

    worker = start_worker(tq, lease_ms=1000, renew_every_ms=300, reclaim_every_ms=100)
    handle = await blocker.enqueue()
    assert await handle.result(timeout=30) == 1
    assert (await handle.status()).attempts == 1
    assert (worker.counters.reclaimed, worker.counters.lost_leases) == (0, 0)
    assert runs == [1]
