"""SIGTERM: running tasks finish, prefetched ones are handed back at once, the process exits 0;
a second SIGTERM exits at once."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

from taskq import TaskQueue, TaskStatus
from taskq.keys import GROUP
from tests.apps.common import gate_key
from tests.helpers import WorkerProcess, eventually, wait_sync
from tests.support import WORKER_APP, dead_letters, registered, trace, traced


async def pending_by_consumer(app: TaskQueue) -> dict[str, int]:
    stream = app.keys("default").stream
    if not await app.redis.exists(stream):
        return {}
    info = await app.redis.xpending(stream, GROUP)
    return {(c["name"].decode() if isinstance(c["name"], bytes) else c["name"]): int(c["pending"])
            for c in info["consumers"] or ()}


async def test_sigterm_drains_and_hands_back_prefetched_tasks(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    # a long lease: anything the second worker runs soon was handed back, not reclaimed
    first = worker_process(WORKER_APP, "--lease-ms", "30000", "--concurrency", "2",
                           "--prefetch", "3")
    await eventually(lambda: registered(app, first.pid), timeout=15, what="first up")
    gated = app.get_task("gated")
    assert gated is not None
    # the tasks run until the test opens their gate: two run, three wait in the first worker,
    # however long the second worker takes to start
    handles = await app.enqueue_many([gated.message(f"k{i}") for i in range(5)])
    await eventually(lambda: traced(app, "started", 2), timeout=10, what="two running")
    held = await eventually(lambda: _held(app, 5), timeout=5, what="five held by the first")
    assert list(held.values()) == [5]
    second = worker_process(WORKER_APP, "--lease-ms", "30000", "--concurrency", "10")
    await eventually(lambda: registered(app, second.pid), timeout=15, what="second up")
    running = await trace(app, "started")
    assert len(running) == 2 and await trace(app, "finished") == []
    assert list((await pending_by_consumer(app)).values()) == [5]  # all still in the first

    first.signal(signal.SIGTERM)
    sent = time.monotonic()
    # the three that never started are run by the second worker at once
    await eventually(lambda: traced(app, "started", 5), timeout=5, what="handed-back tasks run")
    assert time.monotonic() - sent < 5
    # the running two are still running: the first worker waits for them (grace 25 s)
    assert first.proc.poll() is None
    assert await trace(app, "finished") == []
    await app.redis.set(gate_key(app.prefix), b"1")
    # the running two finish in the first worker, which then exits 0
    code = await asyncio.to_thread(first.wait, 15)
    assert code == 0, first.output()
    records = [await h.wait(timeout=10) for h in handles]
    assert all(r.status is TaskStatus.SUCCEEDED for r in records)
    assert sorted(r.result for r in records) == [f"k{i}" for i in range(5)]
    ran_in = {r.result: r.worker for r in records}
    assert all(f":{first.pid}:" in (ran_in[k] or "") for k in running)
    assert all(f":{second.pid}:" in (ran_in[k] or "") for k in set(ran_in) - set(running))
    started = await trace(app, "started")
    assert sorted(started) == [f"k{i}" for i in range(5)]  # each ran exactly once
    assert sorted(await trace(app, "finished")) == sorted(started)
    assert all(r.attempts == 1 for r in records)
    assert await dead_letters(app) == []
    assert "finishing running tasks" in first.output()


async def _held(app: TaskQueue, n: int) -> dict[str, int] | None:
    pending = await pending_by_consumer(app)
    return pending if sum(pending.values()) >= n else None


async def test_second_sigterm_exits_at_once(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    proc = worker_process(WORKER_APP, "--lease-ms", "2000", "--grace-s", "60")
    slow = app.get_task("slow")
    assert slow is not None
    handle = await slow.enqueue("long", 30.0)
    await eventually(lambda: traced(app, "started", 1), timeout=15, what="task running")
    proc.signal(signal.SIGTERM)
    wait_sync(lambda: "signal again" in proc.output(), timeout=5, what="first signal handled")
    assert proc.proc.poll() is None  # still waiting for its running task
    proc.signal(signal.SIGTERM)
    began = time.monotonic()
    code = await asyncio.to_thread(proc.wait, 5)
    assert time.monotonic() - began < 3
    assert code != 0
    # nothing is lost: the entry is still pending and returns after its lease
    assert sum((await pending_by_consumer(app)).values()) == 1
    assert (await handle.status()).status is TaskStatus.RUNNING


async def test_task_still_running_after_the_grace_period_is_handed_back(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    first = worker_process(WORKER_APP, "--lease-ms", "30000", "--grace-s", "1")
    stuck = app.get_task("stuck_once")
    assert stuck is not None
    # its first run sleeps far past the grace period (and the test), so it is still running
    # when the grace period ends however loaded the machine is
    handle = await stuck.enqueue("g", 600.0)
    await eventually(lambda: traced(app, "started", 1), timeout=15, what="task running")
    second = worker_process(WORKER_APP, "--lease-ms", "30000")
    await eventually(lambda: registered(app, second.pid), timeout=15, what="second up")
    first.signal(signal.SIGTERM)
    began = time.monotonic()
    # exits 0 once the grace period (1 s) is over and the task handed back
    assert await asyncio.to_thread(first.wait, 10) == 0, first.output()
    assert "grace period over: handing back 1 running tasks" in first.output()
    # handed back, not left to its 30 s lease: the second worker runs it at once
    record = await handle.wait(timeout=15)
    assert record.status is TaskStatus.SUCCEEDED and record.result == "g"
    assert time.monotonic() - began < 25  # well before the 30 s lease would have expired
    assert await trace(app, "started") == ["g", "g"]
    assert await trace(app, "finished") == ["g"]
    assert record.worker is not None and f":{second.pid}:" in record.worker
