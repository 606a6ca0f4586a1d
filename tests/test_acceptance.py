"""The acceptance run, as the issue will be checked: 10,000 tasks enqueued in batches, two worker
processes under the supervisor, one of them SIGKILLed five times (and respawned); every task
completes, and duplicates stay within kills x concurrency."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections.abc import Callable

import pytest

from taskq import TaskQueue
from taskq.keys import GROUP, workers_key
from tests.apps.common import trace_key
from tests.helpers import WorkerProcess, eventually
from tests.support import WORKER_APP, dead_letters, live_children, registered_pids

TASKS = 10_000
BATCH = 500
KILLS = 5
CONCURRENCY = 32
TASK_S = 0.1  # each task sleeps this long, so the run lasts long enough to kill mid-way


@pytest.mark.slow
async def test_ten_thousand_tasks_survive_five_sigkills(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    sup = worker_process(WORKER_APP, "--processes", "2", "--concurrency", str(CONCURRENCY),
                         "--lease-ms", "2000", "--log-level", "WARNING")
    done_key = trace_key(app.prefix, "done")
    runs_key = trace_key(app.prefix, "runs")

    async def consuming() -> set[int] | None:
        children = set(live_children(sup.pid))
        ready = children & await registered_pids(app)
        return ready if len(children) == 2 and len(ready) == 2 else None

    await eventually(consuming, timeout=20, what="two children consuming")
    mark = app.get_task("mark")
    assert mark is not None

    async def produce() -> None:
        for start in range(0, TASKS, BATCH):
            await app.enqueue_many([mark.message(n, TASK_S)
                                    for n in range(start, start + BATCH)])
            await asyncio.sleep(0.5)

    done_at_kill: list[int] = []

    async def kill() -> None:
        rng = random.Random(5)
        for _ in range(KILLS):
            await asyncio.sleep(1.5)
            children = await eventually(consuming, timeout=30, what="two children consuming")
            os.kill(rng.choice(sorted(children)), signal.SIGKILL)
            done_at_kill.append(int(await app.redis.scard(done_key)))  # type: ignore[misc]

    began = time.monotonic()
    await asyncio.gather(produce(), kill())

    async def all_done() -> bool:
        return int(await app.redis.scard(done_key)) == TASKS  # type: ignore[misc]

    await eventually(all_done, timeout=90, interval=0.2, what=f"{TASKS} tasks done")
    elapsed = time.monotonic() - began
    assert len(done_at_kill) == KILLS
    assert done_at_kill[-1] < TASKS, "every kill must land mid-run"

    runs = int(await app.redis.get(runs_key))
    duplicates = runs - TASKS
    assert 0 <= duplicates <= KILLS * CONCURRENCY, duplicates
    assert await dead_letters(app) == []

    async def drained() -> bool:  # every entry acked and deleted: nothing left to run again
        stream = app.keys("default").stream
        pending = await app.redis.xpending(stream, GROUP)
        return pending["pending"] == 0 and await app.redis.xlen(stream) == 0

    await eventually(drained, timeout=20, what="stream drained")
    stats = await app.redis.hgetall(app.keys("default").stats)  # type: ignore[misc]
    assert int(stats[b"completed"]) == TASKS
    workers = await app.redis.hgetall(workers_key(app.prefix))  # type: ignore[misc]
    reclaimed = sum(json.loads(w)["reclaimed"] for w in workers.values())
    assert reclaimed > 0  # the killed workers' entries came back through reclaim
    print(f"\n{TASKS} tasks, {KILLS} kills (done at each: {done_at_kill}), {duplicates} "
          f"duplicates, {reclaimed} reclaimed, {elapsed:.1f} s")

    sup.signal(signal.SIGTERM)
    assert await asyncio.to_thread(sup.wait, 40) == 0
