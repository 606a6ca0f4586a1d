"""The task log: one file per worker process, one line per event, written with O_APPEND.

Lines are ``start <job> <pid> <attempt> <monotonic ns>`` and ``end <job> <pid> <monotonic ns>``.
Each line is a single ``os.write`` on an O_APPEND descriptor, so a line is either whole or
absent after a SIGKILL. CLOCK_MONOTONIC is shared by every process of the machine (and is left
unfaked by faketime when FAKETIME_DONT_FAKE_MONOTONIC=1), so lines of different processes order.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

_fds: dict[int, int] = {}  # pid -> descriptor (a forked process opens its own file)


def _descriptor() -> int:
    pid = os.getpid()
    if pid not in _fds:
        folder = os.environ.get("FAULTS_LOG_DIR", ".")
        path = os.path.join(folder, f"tasks.{pid}.log")
        _fds[pid] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    return _fds[pid]


def write(line: str) -> None:
    os.write(_descriptor(), (line + "\n").encode())


def start(job: int, attempt: int) -> None:
    write(f"start {job} {os.getpid()} {attempt} {time.monotonic_ns()}")


def end(job: int) -> None:
    write(f"end {job} {os.getpid()} {time.monotonic_ns()}")


@dataclass
class Runs:
    """What the task log says about every job."""

    starts: dict[int, list[tuple[int, int, int]]] = field(default_factory=lambda: defaultdict(list))
    ends: dict[int, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))
    torn: int = 0

    def completed(self) -> set[int]:
        return {j for j, e in self.ends.items() if e}

    def end_times(self) -> list[int]:
        return sorted(t for e in self.ends.values() for _, t in e)


def read(folder: Path) -> Runs:
    """Parse every task log in ``folder`` (starts as (pid, attempt, ns), ends as (pid, ns))."""
    runs = Runs()
    for path in sorted(folder.glob("tasks.*.log")):
        for line in path.read_text().splitlines():
            parts = line.split()
            try:
                if parts[0] == "start" and len(parts) == 5:
                    runs.starts[int(parts[1])].append(
                        (int(parts[2]), int(parts[3]), int(parts[4])))
                elif parts[0] == "end" and len(parts) == 4:
                    runs.ends[int(parts[1])].append((int(parts[2]), int(parts[3])))
                else:
                    runs.torn += 1
            except (ValueError, IndexError):
                runs.torn += 1
    for lst in runs.starts.values():
        lst.sort(key=lambda s: s[2])
    return runs
