"""Worker operations that end a worker on its own: ``--burst`` (the queues are empty) and
``--max-memory`` (the process grew past a limit); ``--max-tasks`` is counted by the runner.

Each ends the worker the graceful way (:meth:`Worker.stop`: what it holds is finished or handed
back) and the process exits 0; a supervisor (``--processes N``, systemd, Kubernetes) starts a
fresh one, except after ``--burst``. Checked a few times a second, never per task.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
from collections.abc import Callable

from taskq.connection import REDIS_ERRORS
from taskq.queue import TaskQueue
from taskq.worker.context import WorkerContext
from taskq.worker.ledger import Ledger

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.25
BURST_HORIZON_MS = 60_000
"""A burst worker waits for delayed tasks (retries) due within this long; later ones are left."""


def rss_mb() -> float:
    """This process's resident memory in MB (Linux: /proc; elsewhere its peak)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1_048_576
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024 if os.uname().sysname != "Darwin" else peak / 1_048_576


class Limits:
    """The burst and memory checks of one worker; calls ``stop(reason)`` once one is met."""

    def __init__(self, app: TaskQueue, context: WorkerContext, ledger: Ledger,
                 stop: Callable[[str], None]) -> None:
        self.app = app
        self.context = context
        self.config = context.config
        self.ledger = ledger
        self.stop = stop

    @property
    def needed(self) -> bool:
        return self.config.burst or self.config.max_memory_mb is not None

    async def run(self) -> None:
        limit = self.config.max_memory_mb
        while not self.ledger.stopping:
            await asyncio.sleep(CHECK_EVERY_S)
            if limit is not None and (mb := rss_mb()) > limit:
                self.stop(f"memory {mb:.0f} MB passed --max-memory {limit} MB")
                return
            if self.config.burst and not self.ledger.held:
                try:
                    empty = await self.empty()
                except REDIS_ERRORS as exc:
                    log.warning("burst check failed (%s); retrying", exc)
                    continue
                if empty and not self.ledger.held:
                    self.stop("the queues are empty (--burst)")
                    return

    async def empty(self) -> bool:
        """No entry in any stream, and no delayed task due within the burst horizon."""
        horizon = self.context.clock.now_ms() + BURST_HORIZON_MS
        pipe = self.app.redis.pipeline(transaction=False)
        for keys in self.context.keys.values():
            pipe.xlen(keys.stream)
            pipe.zcount(keys.delayed, "-inf", horizon)
        return not any(int(n) for n in await pipe.execute())
