"""``python -m worker APP --processes 2``: the supervisor restarts a child that dies and exits 0
on SIGTERM once its children have drained."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from taskq import TaskQueue
from tests.helpers import ROOT, WorkerProcess, eventually, wait_sync
from tests.support import WORKER_APP, alive, live_children, registered_pids, trace


async def test_supervisor_restarts_a_killed_child_and_stops_cleanly(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    sup = worker_process(WORKER_APP, "--processes", "2", "--lease-ms", "2000",
                         "--concurrency", "4")

    async def two_consuming() -> set[int] | None:
        children = set(live_children(sup.pid))
        ready = children & await registered_pids(app)
        return ready if len(children) == 2 and len(ready) == 2 else None

    before = await eventually(two_consuming, timeout=20, what="two children consuming")
    victim = min(before)
    os.kill(victim, signal.SIGKILL)

    async def replaced() -> set[int] | None:
        now = await two_consuming()
        return now if now and victim not in now else None

    after = await eventually(replaced, timeout=20, what="the killed child replaced")
    assert not alive(victim)
    assert before - {victim} <= after  # the other child was left alone
    assert "restarting" in sup.output()

    # both children consume: work enqueued now completes
    slow = app.get_task("slow")
    assert slow is not None
    handles = await app.enqueue_many([slow.message(f"k{i}", 0.0) for i in range(6)])
    assert sorted([await h.result(timeout=15) for h in handles]) == [f"k{i}" for i in range(6)]
    assert len(await trace(app, "started")) == 6

    sup.signal(signal.SIGTERM)
    code = await asyncio.to_thread(sup.wait, 30)
    assert code == 0, sup.output()
    assert not any(alive(pid) for pid in after)



# A supervisor whose children are bare sleepers: SIGTERM kills them at once (no drain), so they
# are gone while the supervisor still sleeps in its loop: the race that logged "restarting".
_FAST_CHILDREN = """
import logging, subprocess, sys
from taskq.worker.supervisor import Supervisor
class Fast(Supervisor):
    def _spawn(self, slot):
        sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
        self.children[slot] = subprocess.Popen(sleeper)
        print("spawned", flush=True)
logging.basicConfig(level=logging.INFO)
raise SystemExit(Fast([], 4, 1.0).run())
"""


def _stop_once(log: Path) -> str:
    with open(log, "wb") as out:
        sup = subprocess.Popen([sys.executable, "-c", _FAST_CHILDREN], cwd=ROOT, stdout=out,
                               stderr=subprocess.STDOUT)
    try:
        wait_sync(lambda: log.read_text().count("spawned") == 4, timeout=20,
                  what="four children")
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(30) == 0, log.read_text()
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()
    return log.read_text()


def test_a_stop_signal_is_not_reported_as_crashed_children(tmp_path: Path) -> None:
    for n in range(3):
        output = _stop_once(tmp_path / f"sup{n}.log")
        assert "restarting" not in output, output
