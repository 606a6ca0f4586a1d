"""One Ctrl-C is one graceful stop: the terminal signals the whole process group (supervisor,
worker processes, process-pool processes) and the running task still completes; the process
pool starts with the worker and its start-up never counts against a task's timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable

import pytest

from taskq import TaskQueue
from taskq.records import TaskStatus
from taskq.worker import Worker
from tests.apps import cpu, slow_import
from tests.helpers import WorkerProcess, eventually, wait_sync
from tests.support import WORKER_APP, alive, live_children, registered, registered_pids, trace

CPU_APP = "tests.apps.cpu_app:tq"


async def test_one_ctrl_c_on_a_supervisor_lets_the_running_task_finish(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    sup = worker_process(WORKER_APP, "--processes", "2", "--concurrency", "4")

    async def two_consuming() -> bool:
        children = set(live_children(sup.pid))
        return len(children) == 2 and children <= await registered_pids(app)

    await eventually(two_consuming, timeout=30, what="two children consuming")
    slow = app.get_task("slow")
    assert slow is not None
    handle = await slow.enqueue("k", 3.0)
    await eventually(lambda: trace(app, "started"), timeout=20, what="the task started")
    os.killpg(sup.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    assert await asyncio.to_thread(sup.wait, 60) == 0, sup.output()
    assert await trace(app, "finished") == ["k"], sup.output()
    assert await handle.result(timeout=10) == "k"
    out = sup.output()
    assert "second signal" not in out and "handing back" not in out, out


async def test_worker_processes_stop_when_their_supervisor_is_killed(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    """Children ignore the terminal's SIGINT and follow their supervisor: a supervisor killed
    outright (SIGKILL, the OOM killer) must not leave them consuming as orphans for ever."""
    sup = worker_process(WORKER_APP, "--processes", "2", "--concurrency", "4")

    async def two_consuming() -> set[int] | None:
        children = set(live_children(sup.pid))
        ok = len(children) == 2 and children <= await registered_pids(app)
        return children if ok else None

    children = await eventually(two_consuming, timeout=30, what="two children consuming")
    os.kill(sup.pid, signal.SIGKILL)
    assert await asyncio.to_thread(sup.wait, 30) == -signal.SIGKILL

    def all_gone() -> bool:
        return not any(alive(pid) for pid in children)

    try:
        await asyncio.to_thread(wait_sync, all_gone, 30, 0.1, "the children stopped")
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_one_ctrl_c_lets_a_running_cpu_bound_task_finish(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess], sig: signal.Signals
) -> None:
    """A Ctrl-C in the terminal, or a service manager's SIGTERM to every process of the group
    (systemd's default KillMode): the worker stops gracefully and the cpu_bound call running
    in its pool process completes."""
    proc = worker_process(CPU_APP, "--concurrency", "4")
    await eventually(lambda: registered(app, proc.pid), timeout=30, what="worker up")
    # the pool starts with the worker, before any cpu_bound task
    await asyncio.to_thread(wait_sync, lambda: "process pool for cpu_bound tasks started"
                            in proc.output(), 30, 0.05, "the pool started")
    spin = app.task(name="spin", cpu_bound=True)(cpu.spin)  # (as tests/apps/cpu_app.py)
    handle = await spin.enqueue(2.0)

    async def running() -> bool:
        return (await handle.status()).status is TaskStatus.RUNNING

    await eventually(running, timeout=20, what="the task running")
    os.killpg(proc.pid, sig)  # the worker and its pool processes
    assert await asyncio.to_thread(proc.wait, 60) == 0, proc.output()
    assert await handle.result(timeout=10) == 2.0
    assert (await handle.status()).attempts == 1
    out = proc.output()
    assert "KeyboardInterrupt" not in out and "never retrieved" not in out, out


async def test_the_pool_start_up_does_not_count_against_a_cpu_bound_timeout(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    """A pool process takes 1.5 s to import the task's module; the task's timeout is 1 s."""
    plus_one = tq.task(cpu_bound=True, timeout=1.0, max_attempts=1)(slow_import.plus_one)
    start_worker(tq, processes=1)
    handle = await plus_one.enqueue(1)
    assert await handle.result(timeout=60) == 2


async def test_pool_processes_end_with_a_sigkilled_worker(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    """The pool processes ignore SIGTERM (see above): when their worker is SIGKILLed (the OOM
    killer, ``kill -9``), they end too instead of running on for ever."""
    proc = worker_process(CPU_APP, "--concurrency", "4")
    await eventually(lambda: registered(app, proc.pid), timeout=30, what="worker up")
    await asyncio.to_thread(wait_sync, lambda: "process pool for cpu_bound tasks started"
                            in proc.output(), 30, 0.05, "the pool started")
    spin = app.task(name="spin", cpu_bound=True)(cpu.spin)
    handle = await spin.enqueue(60.0)

    async def running() -> bool:
        return (await handle.status()).status is TaskStatus.RUNNING

    await eventually(running, timeout=20, what="the task running")
    pool = live_children(proc.pid)
    assert pool, proc.output()
    proc.expect_exit()
    os.kill(proc.pid, signal.SIGKILL)
    try:
        await asyncio.to_thread(wait_sync, lambda: not any(alive(p) for p in pool), 20, 0.05,
                                "the pool processes ended with their worker")
    finally:
        for p in pool:  # (when this fails: not left spinning)
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
