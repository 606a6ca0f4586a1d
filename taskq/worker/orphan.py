"""A process that must not outlive the one that started it: a signal to itself when its
parent dies, even by SIGKILL (Linux ``prctl(PR_SET_PDEATHSIG)``), and a daemon thread that
notices a changed ``getppid()`` (other systems, and the race of a parent that died before the
``prctl``). Used by cpu_bound pool processes (SIGKILL: they ignore SIGTERM) and by supervised
worker processes (SIGTERM: a graceful stop, as if the supervisor had sent it)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
PARENT_POLL_S = 1.0
"""How often the thread checks that the parent still lives."""


def signal_on_parent_death(sig: signal.Signals, parent: int | None = None) -> None:
    """Have ``sig`` sent to this process when its parent (``parent``, by default the current
    one) dies. (Linux sends it when the *thread* that spawned this process ends: spawn from a
    thread that lives as long as the parent.)"""
    parent = os.getppid() if parent is None else parent
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), sig)

    threading.Thread(target=watch, name="taskq-parent-watch", daemon=True).start()
