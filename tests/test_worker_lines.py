"""What a worker process says at its start and its end: the Redis it connects to before trying
(an unreachable Redis is logged while it retries), and how the tasks it took ended, with the
ones handed back unfinished apart."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable

from taskq import TaskQueue
from tests.helpers import WorkerProcess, eventually, wait_sync
from tests.support import WORKER_APP, traced


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_start_line_comes_before_connecting_and_an_unreachable_redis_is_logged(
    worker_process: Callable[..., WorkerProcess]
) -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    proc = worker_process(WORKER_APP, env={"TASKQ_REDIS_URL": url})
    await asyncio.to_thread(
        wait_sync, lambda: "cannot start consuming" in proc.output(), 30, 0.05,
        "the unreachable Redis logged")
    out = proc.output()
    assert f"connecting to Redis {url}" in out, out
    assert out.index("connecting to Redis") < out.index("cannot start consuming")
    assert "retrying" in out
    proc.signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 30) == 0, proc.output()
    out = proc.output()
    assert "stopped before Redis answered" in out, out
    assert "consuming default" not in out  # (it never consumed)


async def test_the_stop_line_counts_tasks_handed_back_apart(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    proc = worker_process(WORKER_APP, "--grace-s", "0.5")
    gated = app.get_task("gated")  # runs until the test opens its gate: never, here
    assert gated is not None
    await gated.enqueue("held")
    await eventually(lambda: traced(app, "started", 1), timeout=20, what="task running")
    proc.signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 30) == 0, proc.output()
    out = proc.output()
    assert ("stopped: 0 succeeded, 0 retried, 0 dead-lettered, 1 handed back unfinished "
            "(1 attempts started)") in out, out
