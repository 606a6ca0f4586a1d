"""Adapter subprocesses: producers run to completion, workers run until stopped. Workers get a
session of their own, so the whole process tree (supervisors, pool children) is measured and
stopped together."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.server import pinned
from bench.systems import ROOT, System

LOG_DIR = ROOT / "bench" / "results" / "raw"


def env(sink_url: str, queue_url: str, concurrency: int, job: str = "list") -> dict[str, str]:
    e = dict(os.environ)
    e.update(BENCH_SINK_URL=sink_url, BENCH_QUEUE_URL=queue_url, BENCH_JOB=job,
             BENCH_CONCURRENCY=str(concurrency), PYTHONPATH=str(ROOT),
             PYTHONDONTWRITEBYTECODE="1")
    return e


def adapter_argv(system: System, *args: str) -> list[str]:
    return [system.python, "-m", "bench.peers", system.module, *args]


def produce(system: System, e: dict[str, str], cpu: int | None, *args: str,
            timeout: float = 300) -> dict[str, Any]:
    """Run a producer command; its JSON answer."""
    r = subprocess.run(pinned(cpu, adapter_argv(system, *args)), env=e, cwd=ROOT,
                       capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{system.name} {args[0]} failed: {r.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


def start_produce(system: System, e: dict[str, str], cpu: int | None,
                  *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(pinned(cpu, adapter_argv(system, *args)), env=e, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class WorkerProc:
    """One worker process (tree) of a system."""

    def __init__(self, system: System, e: dict[str, str], cpu: int | None, tag: str) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"worker-{system.module}-{tag}.log"
        self._log = self.log_path.open("w")
        argv = adapter_argv(system, "worker", "--concurrency", e["BENCH_CONCURRENCY"])
        self.proc = subprocess.Popen(pinned(cpu, argv), env=e, cwd=ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_bytes(self) -> int:
        """Resident memory of every process in the worker's session."""
        total = 0
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (d / "stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()
                if int(fields[3]) != self.proc.pid:  # session id
                    continue
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        return total

    def stop(self, grace_s: float = 5.0) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(grace_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._log.close()

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text()[-1500:]
        return ""
