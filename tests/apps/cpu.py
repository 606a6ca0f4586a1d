"""Module-level functions for cpu_bound tasks: a process pool imports them by module and name."""

from __future__ import annotations

import os
import time


def burn(n: int) -> dict[str, int]:
    """A little CPU work; returns the sum of squares below ``n`` and the pid that did it."""
    return {"total": sum(i * i for i in range(n)), "pid": os.getpid()}


def spin(seconds: float) -> float:
    """Busy for ``seconds`` (a runaway cpu_bound task)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds


def exit_with(code: int) -> None:
    """Raises SystemExit(``code``) in the pool process (task code calling sys.exit)."""
    raise SystemExit(code)
