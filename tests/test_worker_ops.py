"""Worker operations (--burst, --max-tasks, --max-memory, recycling under the supervisor), the
deploy grace of unknown task names, and timeouts that free their process or count their thread."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable

import msgpack
import pytest

from taskq import TaskQueue, Worker, admin
from taskq.records import TaskStatus
from tests.apps import cpu
from tests.apps.common import trace_key
from tests.helpers import ROOT, WorkerProcess, eventually, wait_sync
from tests.support import alive, dead_letters, stream_len

APP = "tests.apps.basic:tq"


async def _runs(app: TaskQueue, prefix: str) -> int:
    return int(await app.redis.get(trace_key(prefix, "runs")) or 0)


async def test_burst_exits_0_once_the_queues_are_empty(
    app: TaskQueue, prefix: str, worker_process: Callable[..., WorkerProcess]
) -> None:
    handles = await app.enqueue_many([app.registry["mark"].message(i) for i in range(20)])
    w = worker_process(APP, "--burst", "--concurrency", "4")
    assert await asyncio.to_thread(w.wait, 60) == 0
    assert [(await h.status()).status for h in handles] == [TaskStatus.SUCCEEDED] * 20
    assert "the queues are empty (--burst)" in w.output()


async def test_max_tasks_exits_after_n_and_leaves_the_rest_queued(
    app: TaskQueue, prefix: str, worker_process: Callable[..., WorkerProcess]
) -> None:
    handles = await app.enqueue_many([app.registry["mark"].message(i) for i in range(8)])
    # (--burst: one worker process, not supervised, so that its own exit is seen)
    w = worker_process(APP, "--burst", "--max-tasks", "3", "--concurrency", "2",
                       "--prefetch", "4")
    assert await asyncio.to_thread(w.wait, 60) == 0
    statuses = [(await h.status()).status for h in handles]
    assert statuses.count(TaskStatus.SUCCEEDED) == 3 == await _runs(app, prefix)
    assert statuses.count(TaskStatus.QUEUED) == 5  # handed back, not lost
    assert await stream_len(app) == 5
    assert "ran 3 tasks (--max-tasks)" in w.output()


async def test_max_memory_exits_0(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    w = worker_process(APP, "--burst", "--max-memory", "1")  # any Python process is larger
    assert await asyncio.to_thread(w.wait, 60) == 0
    assert "passed --max-memory 1 MB" in w.output()


async def test_the_supervisor_restarts_recycled_workers_until_the_work_is_done(
    app: TaskQueue, prefix: str, redis_url: str, tmp_path: object
) -> None:
    handles = await app.enqueue_many([app.registry["mark"].message(i) for i in range(12)])
    env = {**os.environ, "TEST_PREFIX": prefix, "TASKQ_REDIS_URL": redis_url}
    sup = subprocess.Popen([sys.executable, "-m", "worker", APP, "--processes", "2",  # noqa: ASYNC220
                            "--max-tasks", "2", "--concurrency", "1", "--prefetch", "1"],
                           cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for h in handles:
            assert (await h.wait(timeout=120)).status is TaskStatus.SUCCEEDED
        assert sup.poll() is None  # still supervising
        assert await _runs(app, prefix) == 12
    finally:
        sup.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(sup.wait, 60)
    assert code == 0


async def test_one_recycling_worker_is_supervised_and_restarted(
    app: TaskQueue, prefix: str, worker_process: Callable[..., WorkerProcess]
) -> None:
    """``--max-tasks`` without ``--processes``: the process that reached its limit exits 0 and
    the supervisor starts a fresh one, so the work goes on (it used to stop for good)."""
    handles = await app.enqueue_many([app.registry["mark"].message(i) for i in range(5)])
    w = worker_process(APP, "--max-tasks", "2", "--concurrency", "1", "--prefetch", "1")
    for h in handles:
        assert (await h.wait(timeout=120)).status is TaskStatus.SUCCEEDED, w.output()
    assert await _runs(app, prefix) == 5
    assert w.proc.poll() is None, w.output()  # still supervising
    assert "recycled itself" in w.output()
    w.signal(signal.SIGTERM)
    assert await asyncio.to_thread(w.wait, 60) == 0, w.output()


async def test_supervised_burst_workers_end_and_so_does_the_supervisor(
    app: TaskQueue, prefix: str, redis_url: str
) -> None:
    handles = await app.enqueue_many([app.registry["mark"].message(i) for i in range(6)])
    env = {**os.environ, "TEST_PREFIX": prefix, "TASKQ_REDIS_URL": redis_url}
    code = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "worker", APP, "--processes", "2", "--burst"],
        cwd=ROOT, env=env, capture_output=True, timeout=120, check=False)
    assert code.returncode == 0
    assert [(await h.status()).status for h in handles] == [TaskStatus.SUCCEEDED] * 6


def _envelope(task: str) -> bytes:
    return msgpack.packb({"v": 1, "t": task, "a": [], "k": {}, "n": 0, "e": 0})  # type: ignore[no-any-return]


@pytest.fixture
async def newer(redis_url: str, prefix: str) -> AsyncIterator[TaskQueue]:
    """The app of a newer deploy (closed after the workers using it stopped)."""
    app = TaskQueue(redis_url, prefix=prefix)
    yield app
    await app.aclose()


async def test_an_unknown_task_waits_out_the_deploy_grace_for_a_worker_that_knows_it(
    tq: TaskQueue, newer: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    """An old worker hands the new task name back (no attempt used) until a new worker,
    which knows it, runs it."""
    entry = (await tq.redis.xadd(tq.keys("default").stream, {"m": _envelope("new_task")})).decode()
    task_id = f"default:{entry}"
    old = start_worker(tq, block_ms=100, unknown_grace_s=60)
    await eventually(lambda: _deferred(tq), what="handed back as unknown")
    assert old.counters.deferred >= 1 and old.counters.dead == 0
    assert (await tq.status(task_id)).status is TaskStatus.QUEUED  # waiting, still itself

    @newer.task(name="new_task")
    async def new_task() -> str:
        return "ran"

    # Redis hands a new entry to the reader blocked longest; two workers in one event loop
    # re-block in lockstep (the old one first, every time), so the new one blocks longer here
    # (between processes, phases differ and the jittered hand-back delay decides)
    start_worker(newer, block_ms=1_000, unknown_grace_s=60)
    record = await tq.wait(task_id, timeout=30)
    assert (record.status, record.result, record.attempts) == (TaskStatus.SUCCEEDED, "ran", 1)


async def test_an_unknown_task_is_dead_lettered_after_the_grace(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    await tq.redis.xadd(tq.keys("default").stream, {"m": _envelope("gone_task")})
    t0 = time.monotonic()
    start_worker(tq, block_ms=100, unknown_grace_s=1.0)
    (letter,) = await eventually(lambda: dead_letters(tq), timeout=20, what="dead letter")
    assert time.monotonic() - t0 >= 1.0
    assert letter["reason"] == "unknown_task"
    assert "deploy grace" in letter["error"]
    assert letter["attempts"] == "0"
    assert (await admin.queue_info(tq, "default")).deferred_total >= 1


async def _deferred(tq: TaskQueue) -> bool:
    return (await admin.queue_info(tq, "default")).deferred_total >= 1


async def test_a_cpu_bound_timeout_kills_and_replaces_its_process(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    spin = tq.task(cpu_bound=True, timeout=1.0, max_attempts=1)(cpu.spin)
    burn = tq.task(cpu_bound=True)(cpu.burn)
    worker = start_worker(tq, processes=1, block_ms=100)
    first = await (await burn.enqueue(10)).result(timeout=60)  # the pool's process is up
    t0 = time.monotonic()
    record = await (await spin.enqueue(120.0)).wait(timeout=60)
    assert record.status is TaskStatus.DEAD and record.error_type == "TimeoutError"
    wait_sync(lambda: not alive(first["pid"]), timeout=20, what="the spinning process killed")
    after = await (await burn.enqueue(10)).result(timeout=60)  # a fresh process, at once
    assert after["pid"] != first["pid"]
    assert time.monotonic() - t0 < 60  # far less than the 120 s the spin would take
    assert worker.executors.pools_killed == 1


async def test_calls_queued_in_a_killed_pool_run_on_the_next_one(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    """A cpu_bound timeout kills the pool: the calls queued behind the timed-out one (they
    never ran) run on the new pool, without an attempt used, instead of being dead-lettered
    as if they had raised CancelledError themselves."""
    spin = tq.task(cpu_bound=True, timeout=1.0, max_attempts=1)(cpu.spin)
    burn = tq.task(cpu_bound=True, max_attempts=1)(cpu.burn)
    worker = start_worker(tq, processes=1, concurrency=8, block_ms=100)
    await (await burn.enqueue(10)).result(timeout=60)  # the pool is warm
    spinning = await spin.enqueue(120.0)

    async def running() -> bool:
        return (await tq.status(spinning.id)).status is TaskStatus.RUNNING

    await eventually(running, timeout=30, what="the spin running")
    queued = [await burn.enqueue(10 + i) for i in range(5)]  # behind the busy process
    record = await spinning.wait(timeout=60)
    assert record.status is TaskStatus.DEAD and record.error_type == "TimeoutError"
    for handle in queued:
        rec = await handle.wait(timeout=60)
        assert (rec.status, rec.attempts) == (TaskStatus.SUCCEEDED, 1), rec
    assert worker.executors.pools_killed == 1
    assert worker.counters.dead == 1


async def test_a_sync_timeout_is_counted_until_its_thread_ends(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    release = threading.Event()

    @tq.task(name="stuck", timeout=0.2, max_attempts=1)
    def stuck() -> None:
        release.wait(30)

    worker = start_worker(tq, block_ms=100)
    record = await (await stuck.enqueue()).wait(timeout=20)
    assert record.status is TaskStatus.DEAD and record.error_type == "TimeoutError"
    assert worker.executors.abandoned == 1
    release.set()
    await eventually(lambda: _true(worker.executors.abandoned == 0), what="thread ended")


async def _true(value: bool) -> bool:
    return value
