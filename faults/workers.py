"""Real worker processes (``python -m faults.worker_main faults.app:tq``: taskq's worker with
the suite's crash hook), respawned by the harness after kills."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Proc:
    slot: int
    popen: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.monotonic)
    killed: bool = False  # the harness killed it (so its exit is expected)
    termed: bool = False
    measured: bool = False  # what it held at its death was noted (Env.note_deaths)


class WorkerPool:
    """``size`` worker processes serving one app. ``env`` reaches every process (crash points,
    faketime...); ``slot_env`` can give one slot its own. ``respawn`` restarts dead ones."""

    def __init__(self, folder: Path, env: dict[str, str], size: int, *, concurrency: int = 8,
                 lease_ms: int = 2000, grace_s: float = 10.0, prefetch: int = 2,
                 respawn: bool = True, extra_args: list[str] | None = None,
                 name: str = "worker") -> None:
        self.folder = folder
        self.name = name
        self.env = env
        self.size = size
        self.concurrency = concurrency
        self.lease_ms = lease_ms
        self.grace_s = grace_s
        self.prefetch = prefetch
        self.respawn = respawn
        self.extra_args = list(extra_args or [])
        self.slot_env: dict[int, dict[str, str]] = {}
        self.procs: dict[int, Proc] = {}
        self.history: list[Proc] = []
        self.spawned = 0
        self.kills = 0
        self.unexpected_exits: list[tuple[int, int | None]] = []
        self.wrapper: list[str] = []

    def _spawn(self, slot: int) -> Proc:
        self.spawned += 1
        log = self.folder / f"{self.name}.{slot}.{self.spawned}.log"
        env = {**os.environ, **self.env, **self.slot_env.get(slot, {}),
               "TASKQ_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
        cmd = [*self.wrapper, sys.executable, "-m", "faults.worker_main", "faults.app:tq",
               "--queues", "q", "--concurrency", str(self.concurrency),
               "--prefetch", str(self.prefetch), "--lease-ms", str(self.lease_ms),
               "--grace-s", str(self.grace_s), *self.extra_args]
        with open(log, "ab") as out:
            popen = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        p = Proc(slot, popen, log)
        self.procs[slot] = p
        self.history.append(p)
        return p

    def start(self) -> None:
        for slot in range(self.size):
            self._spawn(slot)

    def alive(self) -> list[Proc]:
        return [p for p in self.procs.values() if p.popen.poll() is None]

    def tend(self) -> int:
        """Respawn dead processes; note exits the harness did not cause. Returns respawns."""
        n = 0
        for slot, p in list(self.procs.items()):
            code = p.popen.poll()
            if code is None:
                continue
            if not (p.killed or p.termed):
                self.unexpected_exits.append((p.popen.pid, code))
                p.killed = True  # count it once
            if self.respawn:
                self._spawn(slot)
                n += 1
        return n

    def kill(self, slot: int | None = None, sig: int = signal.SIGKILL) -> Proc | None:
        live = self.alive()
        if not live:
            return None
        p = self.procs[slot] if slot is not None else random.choice(live)
        if p.popen.poll() is not None:
            return None
        if sig == signal.SIGKILL:
            p.killed = True
            self.kills += 1
            os.killpg(p.popen.pid, signal.SIGKILL)
            p.popen.wait(10)
        else:
            p.termed = True
            p.popen.send_signal(sig)
        return p

    def replace(self, slot: int, timeout: float) -> float:
        """SIGTERM slot's process, wait for it to exit (SIGKILL after ``timeout``), start a new
        one. Returns how long the old one took to stop."""
        p = self.procs[slot]
        t0 = time.monotonic()
        p.termed = True
        p.popen.send_signal(signal.SIGTERM)
        try:
            code = p.popen.wait(timeout)
            if code != 0:
                self.unexpected_exits.append((p.popen.pid, code))
        except subprocess.TimeoutExpired:
            self.unexpected_exits.append((p.popen.pid, None))
            os.killpg(p.popen.pid, signal.SIGKILL)
            p.popen.wait(10)
        took = time.monotonic() - t0
        self._spawn(slot)
        return took

    def stop(self, timeout: float = 20.0) -> None:
        self.respawn = False
        for p in self.alive():
            p.termed = True
            p.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.history:
            try:
                p.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.popen.pid, signal.SIGKILL)
                p.popen.wait(10)
            # whatever the pool started (forked pools, faketime wrappers) goes with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.popen.pid, signal.SIGKILL)

    def consuming(self, slot: int) -> bool:
        """Slot's current process has started consuming (its signal handlers are set)."""
        p = self.procs[slot]
        return p.log.exists() and "consuming" in p.log.read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(p.log.read_text(errors="replace") for p in self.history
                         if p.log.exists())
