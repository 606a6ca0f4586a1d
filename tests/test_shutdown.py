"""SIGTERM: running tasks finish, prefetched ones are handed back at once, the process exits 0;
a second SIGTERM exits at once; a cancel swallowed by a task or a Redis call does not hang the
shutdown."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable

import pytest

from taskq import Message, TaskQueue, TaskStatus, Worker, WorkerConfig, codec, ids
from taskq.keys import GROUP
from taskq.worker.execution import Executors
from taskq.worker.ledger import Delivery
from taskq.worker.process import SAME_STOP_S, shutdown_limit_s
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
    # (a signal within SAME_STOP_S of the first is the same stop: see the next test)
    handled = time.monotonic()
    wait_sync(lambda: time.monotonic() - handled > SAME_STOP_S + 0.2, timeout=5,
              what="a second later")
    assert proc.proc.poll() is None  # still waiting for its running task
    proc.signal(signal.SIGTERM)
    began = time.monotonic()
    code = await asyncio.to_thread(proc.wait, 5)
    assert time.monotonic() - began < 3
    assert code != 0
    # nothing is lost: the entry is still pending and returns after its lease
    assert sum((await pending_by_consumer(app)).values()) == 1
    assert (await handle.status()).status is TaskStatus.RUNNING


async def test_a_signal_repeated_at_once_is_the_same_stop(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    """One Ctrl-C may arrive twice (the terminal and a supervisor; a service manager signalling
    every process of the service): the running task still finishes."""
    proc = worker_process(WORKER_APP, "--grace-s", "60")
    slow = app.get_task("slow")
    assert slow is not None
    handle = await slow.enqueue("twice", 2.0)
    await eventually(lambda: traced(app, "started", 1), timeout=15, what="task running")
    proc.signal(signal.SIGINT)
    proc.signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 60) == 0, proc.output()
    assert await handle.result(timeout=10) == "twice"
    assert "the same stop" in proc.output()


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


# -- cancels swallowed by Redis calls (redis-py may swallow a CancelledError and carry on) ----


async def _stop_within(worker: Worker, run: asyncio.Task[None], seconds: float) -> float:
    """Stop ``worker``; its run must end within ``seconds``; returns how long it took."""
    worker.stop()
    began = time.monotonic()
    done, _ = await asyncio.wait({run}, timeout=seconds)
    assert done, f"the worker did not stop within {seconds} s"
    run.result()
    return time.monotonic() - began


async def test_a_duty_that_swallows_its_cancel_does_not_hang_the_shutdown(
    tq: TaskQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The heartbeat's Redis call swallows the cancel and carries on (into another call): the
    worker cancels it again and stops on time."""
    swallowed: list[str] = []
    entered = asyncio.Event()

    async def heartbeat() -> None:
        entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.append("heartbeat")
        await asyncio.sleep(3600)  # on to the next Redis call

    worker = Worker(tq, WorkerConfig(block_ms=100, grace_s=1))
    monkeypatch.setattr(worker.maintenance, "heartbeat", heartbeat)
    run = asyncio.create_task(worker.run())
    await asyncio.wait_for(entered.wait(), 15)
    took = await _stop_within(worker, run, 10)
    assert swallowed == ["heartbeat"]
    assert took < 5  # block_ms + a few re-cancels, far from any bound


async def test_a_task_that_swallows_its_cancel_at_the_grace_period_is_handed_back(
    tq: TaskQueue,
) -> None:
    """Past the grace period the runner is cancelled; the task swallows it, keeps running,
    then returns: it is cancelled again, the worker stops on time, and the entry is handed
    back with no outcome (the next run is the one that counts)."""
    runs: list[str] = []

    @tq.task(max_attempts=3)
    async def stubborn() -> str:
        runs.append("run")
        if len(runs) > 1:
            return "second run"
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            runs.append("swallowed")
        try:
            await asyncio.sleep(3600)  # carries on
        except asyncio.CancelledError:
            runs.append("swallowed again")
        return "late"  # must not be recorded: the entry was handed back

    worker = Worker(tq, WorkerConfig(block_ms=100, grace_s=0.5))
    run = asyncio.create_task(worker.run())
    handle = await stubborn.enqueue()
    await eventually(lambda: _true(runs == ["run"]), timeout=15, what="task running")
    took = await _stop_within(worker, run, 10)
    assert runs == ["run", "swallowed", "swallowed again"]
    assert took < 5
    record = await handle.status()
    assert record.status is TaskStatus.QUEUED and record.result is None  # handed back
    assert record.attempts == 0 and worker.counters.succeeded == 0
    again = Worker(tq, WorkerConfig(block_ms=100))
    run = asyncio.create_task(again.run())
    try:
        assert await handle.result(timeout=10) == "second run"
    finally:
        await _stop_within(again, run, 10)


async def _true(value: bool) -> bool:
    return value


# -- hand-backs --------------------------------------------------------------------------------


async def _take(tq: TaskQueue, worker: Worker) -> Delivery:
    """Read the one entry of the default queue as ``worker``'s consumer (what its reader
    would hold, never started)."""
    keys = tq.keys("default")
    resp = await tq.redis.xreadgroup(GROUP, worker.id, {keys.stream: ">"}, count=10)
    [(_, [(entry, fields)])] = resp
    return Delivery("default", entry.decode(), 1, fields[b"m"])


async def test_a_task_handed_back_twice_keeps_its_id(tq: TaskQueue) -> None:
    """Rolling restarts: a worker stopped right after it read an entry that an earlier worker
    had handed back hands it back again. The task keeps its id: it ends under that id, and
    its entries mapping goes with it (the fault suite's s09 lost such records)."""

    @tq.task
    async def work(n: int) -> int:
        return n

    handle = await work.enqueue(7)
    await tq.ensure_groups(["default"])
    keys = tq.keys("default")
    first, second = (Worker(tq, WorkerConfig(block_ms=100)) for _ in range(2))
    d1 = await _take(tq, first)
    assert d1.entry_id == ids.implied_entry(handle.id)
    await first.outcomes.release([d1])
    d2 = await _take(tq, second)
    assert d2.entry_id != d1.entry_id
    await second.outcomes.release([d2])  # never started: no task id of its own
    [(entry3, fields)] = await tq.redis.xrange(keys.stream)
    assert codec.decode(fields[b"m"]).task_id == handle.id  # not "default:<d2's entry>"
    assert await tq.redis.hgetall(keys.entries) == {handle.id.encode(): entry3}
    assert (await handle.status()).status is TaskStatus.QUEUED
    third = Worker(tq, WorkerConfig(block_ms=100))
    run = asyncio.create_task(third.run())
    try:
        assert await handle.result(timeout=10) == 7
    finally:
        await _stop_within(third, run, 10)
    assert await tq.redis.hgetall(keys.entries) == {}
    assert (await handle.status()).attempts == 1


async def test_an_abandoned_delivery_keeps_no_outcome(tq: TaskQueue) -> None:
    """An attempt abandoned at the end of the grace period (its entry handed back) that goes on
    (its cancel swallowed) hands nothing to the completer, retries nothing, dead-letters
    nothing."""

    @tq.task
    async def work() -> None:
        return None

    worker = Worker(tq, WorkerConfig())
    d = Delivery("default", "1700000000000-0", 1, None, task_id="default:1700000000000-0",
                 started=True, lost=True, abandoned=True)
    msg = Message(work.name)
    worker.outcomes.finish(d, msg, work, TaskStatus.SUCCEEDED, 1, "", 1)
    assert not d.acking and worker.ledger.done == [] and worker.ledger.acks_pending() == 0
    await worker.outcomes.failed(d, msg, work, RuntimeError("x"), 1, 0)  # no Redis call made
    await worker.outcomes.dead(d, msg, "max_attempts", "RuntimeError", "x")
    assert (worker.counters.failed, worker.counters.retried, worker.counters.dead) == (0, 0, 0)
    assert await dead_letters(tq) == []


# -- sync tasks at exit ------------------------------------------------------------------------


async def test_finished_sync_tasks_give_no_warning_at_exit(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    """Idle threads of the pool are not sync tasks still running."""
    proc = worker_process(WORKER_APP, "--concurrency", "8")
    await eventually(lambda: registered(app, proc.pid), timeout=15, what="worker up")
    sync = app.get_task("sync_sleep")
    assert sync is not None
    handles = await app.enqueue_many([sync.message(f"s{i}", 0.02) for i in range(40)])
    assert [await h.result(timeout=30) for h in handles] == [f"s{i}" for i in range(40)]
    proc.signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 15) == 0, proc.output()
    out = proc.output()
    assert "stopped: 40 succeeded" in out  # (every sync task ran in this process)
    assert "still running" not in out


async def test_a_sync_task_still_running_at_exit_is_reported_and_not_waited_for(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    proc = worker_process(WORKER_APP, "--lease-ms", "30000", "--grace-s", "0.5")
    await eventually(lambda: registered(app, proc.pid), timeout=15, what="worker up")
    sync = app.get_task("sync_sleep")
    assert sync is not None
    handle = await sync.enqueue("long", 600.0)
    await eventually(lambda: _running(handle.id, app), timeout=15, what="task running")
    proc.signal(signal.SIGTERM)
    began = time.monotonic()
    assert await asyncio.to_thread(proc.wait, 15) == 0, proc.output()
    assert time.monotonic() - began < 10  # its thread (600 s) was not joined
    assert "exiting with 1 sync tasks still running" in proc.output()
    assert (await handle.status()).status is TaskStatus.QUEUED  # handed back


async def _running(task_id: str, app: TaskQueue) -> bool:
    return (await app.status(task_id)).status is TaskStatus.RUNNING


async def test_executors_count_the_calls_that_run_even_once_cancelled() -> None:
    executors = Executors(threads=4, processes=1)
    release = threading.Event()
    try:
        assert executors.busy == 0
        quick = executors.submit(executors.threads, lambda: 1)
        assert await quick == 1
        await eventually(lambda: _true(executors.busy == 0), what="quick call counted out")
        started = threading.Event()

        def blocking() -> None:
            started.set()
            release.wait()

        blocked = executors.submit(executors.threads, blocking)
        assert executors.busy == 1
        assert await asyncio.to_thread(started.wait, 10)
        blocked.cancel()  # the attempt ends; its thread runs on
        await asyncio.sleep(0.05)
        assert executors.busy == 1
        release.set()
        await eventually(lambda: _true(executors.busy == 0), what="blocked call counted out")
    finally:
        release.set()
        executors.shutdown()


async def test_a_stuck_shutdown_ends_at_its_limit(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    """A task swallows every cancel: the worker hands it back, logs it, and the process exits
    (code 1) at its shutdown limit instead of waiting for it forever."""
    proc = worker_process(WORKER_APP, "--lease-ms", "30000", "--grace-s", "0.5")
    immortal = app.get_task("immortal")
    assert immortal is not None
    handle = await immortal.enqueue("i")
    await eventually(lambda: traced(app, "started", 1), timeout=15, what="task running")
    proc.signal(signal.SIGTERM)
    began = time.monotonic()
    limit = shutdown_limit_s(WorkerConfig(grace_s=0.5))
    code = await asyncio.to_thread(proc.wait, limit + 15)
    took = time.monotonic() - began
    out = proc.output()
    assert code == 1, out
    assert took >= limit - 1  # it waited for its limit (the steps before were bounded)
    assert "grace period over: handing back 1 running tasks" in out
    assert "still running 2.0 s after it was cancelled" in out  # the runner, with its stack
    assert "shutdown overdue" in out and "in immortal" in out
    assert (await handle.status()).status is TaskStatus.QUEUED  # handed back all the same
