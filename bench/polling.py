"""Polling with a deadline, for the benchmarks' asyncio measurements."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(check: Callable[[], bool], deadline: float, every: float = 0.01) -> None:
    """Poll ``check`` until true or the deadline (monotonic) passed."""
    while not check():
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(every)
