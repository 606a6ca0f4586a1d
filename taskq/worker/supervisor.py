"""Run N worker processes; restart one that dies; forward stop signals.

Children are ``python -m taskq.worker`` processes with the same options and ``--processes 1``
(taskq's own entry point, whatever the current directory holds). A child that dies is restarted
after a pause that grows while children keep dying quickly (a crash loop does not spin).
SIGTERM/SIGINT go to every child as one SIGTERM; the supervisor exits 0 once all have ended (a
second signal is forwarded too, so the children exit at once). The children ignore SIGINT
(:data:`~taskq.worker.process.SUPERVISED_ENV`): a Ctrl-C in the terminal, which signals the
whole process group, reaches them through the supervisor only, so one Ctrl-C is one graceful
stop everywhere. A child that exits 0 on its own was recycled
(``--max-tasks``, ``--max-memory``) and is started again at once; with ``--burst`` it is done,
and the supervisor exits 0 once every child is.

A child that cannot run with this configuration (Redis refuses it, the metrics port is taken)
says so in a file the supervisor names in its environment, then exits 78: the supervisor
then stops every child and exits 78. An exit code alone is a crash, restarted like any other:
task code can exit with any code (``os._exit(78)``), and must not stop the whole service.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from taskq.worker.process import CONFIG_FAILURE_ENV, EXIT_CONFIG, SUPERVISED_ENV

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(self, child_args: Sequence[str], processes: int, grace_s: float,
                 metrics_port: int | None = None, *, burst: bool = False) -> None:
        self.child_args = list(child_args)
        self.burst = burst
        self.finished: set[int] = set()
        self.metrics_port = metrics_port  # child i serves metrics on metrics_port + i
        self.processes = processes
        self.grace_s = grace_s
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.signals = 0
        self.restarts = 0
        self.failed = False
        self._reports: Path | None = None  # the directory of the children's failure files

    def _report_file(self, slot: int) -> Path:
        if self._reports is None:
            self._reports = Path(tempfile.mkdtemp(prefix="taskq-supervisor-"))
        return self._reports / f"config-failure-{slot}"

    def _config_failure(self, slot: int) -> str | None:
        """Why child ``slot`` said it cannot run with this configuration, or None."""
        try:
            return self._report_file(slot).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def _spawn(self, slot: int) -> None:
        cmd = [sys.executable, "-m", "taskq.worker", *self.child_args, "--processes", "1"]
        if self.metrics_port is not None:
            cmd += ["--metrics-port", str(self.metrics_port + slot)]
        report = self._report_file(slot)
        report.unlink(missing_ok=True)
        env = {**os.environ, CONFIG_FAILURE_ENV: str(report), SUPERVISED_ENV: "1"}
        self.children[slot] = subprocess.Popen(cmd, env=env)
        log.info("started worker process %d (pid %d)", slot, self.children[slot].pid)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals += 1
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)  # (children ignore SIGINT)

    def run(self) -> int:
        try:
            return self._run()
        finally:
            if self._reports is not None:
                shutil.rmtree(self._reports, ignore_errors=True)

    def _run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for slot in range(self.processes):
            self._spawn(slot)
        backoff: dict[int, float] = dict.fromkeys(range(self.processes), 0.5)
        started = dict.fromkeys(range(self.processes), time.monotonic())
        due: dict[int, float] = {}
        while self.signals == 0 and len(self.finished) < self.processes:
            time.sleep(0.2)
            now = time.monotonic()
            for slot, child in list(self.children.items()):
                # (once a stop signal came, an exit is the stop, not a crash to restart)
                if slot in due or slot in self.finished or self.signals or child.poll() is None:
                    continue
                if child.returncode == 0:
                    if self.burst:
                        log.info("worker process %d finished (queues empty)", slot)
                        self.finished.add(slot)
                        continue
                    log.info("worker process %d (pid %d) recycled itself; starting a fresh one",
                             slot, child.pid)
                    due[slot] = now
                    continue
                why = self._config_failure(slot) if child.returncode == EXIT_CONFIG else None
                if why is not None:
                    log.error("worker process %d cannot run with this configuration (%s); "
                              "stopping", slot, why[:500])
                    self._on_signal(signal.SIGTERM, None)
                    self.failed = True
                    break
                if now - started[slot] > 30:
                    backoff[slot] = 0.5
                log.warning("worker process %d (pid %d) exited with %s; restarting in %.1f s",
                            slot, child.pid, child.returncode, backoff[slot])
                due[slot] = now + backoff[slot]
                backoff[slot] = min(backoff[slot] * 2, 30.0)
            for slot, at in list(due.items()):
                if now >= at and self.signals == 0:
                    del due[slot]
                    self.restarts += 1
                    self._spawn(slot)
                    started[slot] = time.monotonic()
        deadline = time.monotonic() + self.grace_s + 15
        for child in self.children.values():
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.wait(remaining)
            except subprocess.TimeoutExpired:
                log.error("worker process %d did not stop in time; killing it", child.pid)
                child.kill()
                child.wait()
        return EXIT_CONFIG if self.failed else 0
