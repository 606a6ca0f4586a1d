"""Ending asyncio tasks for sure: cancel, wait, cancel again what still runs, within a deadline.

One ``Task.cancel()`` is not enough. A coroutine inside a redis-py call can swallow the
``CancelledError`` (its disconnect paths catch ``BaseException``) and carry on: the task is left
"cancelling" but running, and whoever awaits it waits forever. So :func:`cancel_and_wait`
cancels again every :data:`RECANCEL_EVERY_S` until the tasks are done or the deadline passes,
and logs, with its stack, each task that survived; :func:`bounded` runs one shutdown step for at
most a given time. Loops that must end should also end on their own (a flag or an event), so
that a swallowed cancel costs at most one more pass.
"""

from __future__ import annotations

import asyncio
import linecache
import logging
import time
from collections.abc import Coroutine, Iterable
from typing import Any

log = logging.getLogger(__name__)

RECANCEL_EVERY_S = 0.05
"""How long a cancelled task gets to end before it is cancelled again."""


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], *, timeout_s: float,
                          what: str = "task") -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait until they are done, cancelling again those still running
    every :data:`RECANCEL_EVERY_S`, for at most ``timeout_s``. Returns the tasks still running
    then (each logged with its stack); their exceptions are not raised."""
    pending = {t for t in tasks if not t.done()}
    deadline = time.monotonic() + timeout_s
    while pending:
        for t in pending:
            t.cancel()
        left = deadline - time.monotonic()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_EVERY_S, left))
    for t in pending:
        log.error("%s %s still running %.1f s after it was cancelled (a cancel swallowed?); "
                  "abandoned:\n%s", what, t.get_name(), timeout_s, stack_of(t))
    return pending


async def bounded(step: Coroutine[Any, Any, Any], *, timeout_s: float, what: str) -> bool:
    """Run ``step`` for at most ``timeout_s``; then cancel it for sure (as
    :func:`cancel_and_wait`, one more second). True when it finished in time (its exception,
    if any, is raised), False when it was cut off (logged)."""
    task = asyncio.ensure_future(step)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    except asyncio.CancelledError:
        await cancel_and_wait([task], timeout_s=1.0, what=what)
        raise
    if done:
        task.result()
        return True
    log.error("%s did not finish within %.1f s; cut off:\n%s", what, timeout_s, stack_of(task))
    await cancel_and_wait([task], timeout_s=1.0, what=what)
    if task.done() and not task.cancelled() and task.exception() is not None:
        log.error("%s failed as it was cut off: %r", what, task.exception())
    return False


def stack_of(task: asyncio.Task[Any]) -> str:
    """Where ``task`` is suspended now: its coroutine and every coroutine it awaits, innermost
    last (``Task.print_stack`` shows only the outermost)."""
    lines = [repr(task)]
    coro: Any = task.get_coro()
    for _ in range(100):  # (a bound against a cycle)
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        code = frame.f_code
        lines.append(f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}')
        source = linecache.getline(code.co_filename, frame.f_lineno).strip()
        if source:
            lines.append(f"    {source}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return "\n".join(lines)
