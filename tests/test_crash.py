"""Worker processes that die: a SIGKILLed worker's task is finished by another worker within the
reclaim window, and a task that kills its own process ends in the dead letters (worker_lost)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from taskq import TaskQueue, TaskStatus
from tests.helpers import WorkerProcess, eventually
from tests.support import WORKER_APP, dead_letters, registered, stream_len, trace, traced

LEASE = ("--lease-ms", "2000")


async def test_sigkilled_worker_task_is_finished_by_another(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    first = worker_process(WORKER_APP, *LEASE, "--concurrency", "4")
    # stuck_once: the first run sleeps far longer than the test (however slow the machine and
    # the second worker's start, it is still running at the kill); the rerun ends at once
    handle = await app.get_task("stuck_once").enqueue("a", 600.0)  # type: ignore[union-attr]
    await eventually(lambda: traced(app, "started", 1), timeout=15, what="task started")
    second = worker_process(WORKER_APP, *LEASE, "--concurrency", "4")
    await eventually(lambda: registered(app, second.pid), timeout=15,
                     what="second worker up")
    assert await trace(app, "finished") == []  # still running in the first worker

    first.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    first.wait(5)
    await eventually(lambda: traced(app, "finished", 1), timeout=10,
                     what="task finished by the second worker")
    recovery = time.monotonic() - killed_at
    assert recovery < 10, recovery
    record = await handle.wait(timeout=5)
    assert record.status is TaskStatus.SUCCEEDED and record.result == "a"
    assert record.attempts == 2  # the lost run counts
    assert await trace(app, "started") == ["a", "a"]
    assert await trace(app, "finished") == ["a"]
    assert await dead_letters(app) == []
    assert await stream_len(app) == 0
    assert second.proc.poll() is None, second.output()


async def test_task_that_kills_its_worker_ends_dead_as_worker_lost(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    supervisor = worker_process(WORKER_APP, *LEASE, "--processes", "2", "--concurrency", "4")
    handle = await app.get_task("suicide").enqueue("p")  # type: ignore[union-attr]
    (letter,) = await eventually(lambda: dead_letters(app), timeout=40, what="dead letter")
    assert letter["reason"] == "worker_lost", letter
    assert letter["id"] == handle.id
    assert letter["attempts"] == "2"  # max_attempts=2: two runs, each killed its process
    assert await trace(app, "started") == ["p", "p"]
    record = await handle.wait(timeout=5)
    assert record.status is TaskStatus.DEAD and "worker_lost" in (record.error or "")

    # the supervisor restarted the dead processes: healthy work still completes
    done = await app.get_task("slow").enqueue("after", 0.0)  # type: ignore[union-attr]
    assert await done.result(timeout=20) == "after"
    assert await trace(app, "started") == ["p", "p", "after"]
    assert supervisor.proc.poll() is None
