"""The loop watch: a thread of its own that notices when the worker's event loop is blocked and
keeps the worker's leases alive meanwhile.

An ``async def`` task that calls something blocking (``time.sleep``, a sync HTTP client, a long
computation) stops the whole event loop: no other task runs, and neither do the maintenance
loops that renew the worker's leases. Past its lease, other workers (or this one, once the loop
runs again) would take the entry over and run it a second time. So:

- on the loop, :meth:`LoopWatch.beat` marks the time every :data:`TICK_S`;
- the watch thread wakes every :data:`TICK_S` and reads how long ago the last mark was: the
  loop's lag;
- past ``config.blocked_warn_ms`` it logs one WARNING naming the task that runs on the loop
  (its id and name, the line it is on) and the fix: a plain ``def`` (run in a thread) or
  ``cpu_bound=True`` (a process);
- while the loop stays blocked and the last lease renewal is half ``renew_every_ms`` old, the
  thread renews the leases of every held entry (and the concurrency slots of their attempts) itself,
  with the owner-checked renew script on a blocking connection of its own (opened on the first
  block). It never changes the ledger: leases lost meanwhile are found by the loop's own renewal.
- a loop blocked longer than ``config.keep_leases_blocked_s`` is taken for stuck for good: the
  thread stops renewing (an ERROR says so) and other workers take its entries over a lease
  later, as if it had died.

The thread only reads the ledger (a snapshot of ``held``, taken in one C call under the GIL);
the only value it writes is :attr:`Ledger.renewed_at`, a float.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from types import CodeType, FrameType
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from taskq import clients
from taskq.connection import REDIS_ERRORS
from taskq.queue import TaskQueue
from taskq.scripts import SyncScripts
from taskq.worker.context import WorkerContext
from taskq.worker.ledger import Delivery, Ledger

if TYPE_CHECKING:
    from redis import Redis as SyncRedis

log = logging.getLogger(__name__)

_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, RedisError)
TICK_S = 0.25
"""How often the loop marks the time, and the thread looks."""
KEEPER_LAG_S = 0.5
"""A loop this late is blocked: the thread renews the leases when they are due."""
WARN_AGAIN_S = 60.0
"""The same task blocking the loop again within this time is logged at DEBUG only."""
FIX = ("a blocking call in an async def task stops every task of this worker process; make it "
       "a plain def (it runs in a thread) or give it cpu_bound=True (a process), or await an "
       "async equivalent")


class LoopWatch:
    """The loop-lag monitor and lease keeper of one worker (see the module)."""

    def __init__(self, app: TaskQueue, context: WorkerContext, ledger: Ledger) -> None:
        self.app = app
        self.context = context
        self.ledger = ledger
        config = context.config
        self.warn_after_s = config.blocked_warn_ms / 1000
        self.renew_every_s = config.renew_every_ms / 1000
        self.keep_s = config.keep_leases_blocked_s
        self.lease_ms = config.lease_ms
        self.beat_at = time.monotonic()
        self.blocks = 0  # blocks of the loop past warn_after_s (metrics, tests)
        self.renewals = 0  # lease renewals the thread made
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._client: SyncRedis | None = None
        self._scripts: SyncScripts | None = None
        self._warned_at: dict[str, float] = {}

    # -- on the event loop -----------------------------------------------------------------

    def start(self) -> None:
        """Start the thread (from the worker's event loop)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.beat_at = time.monotonic()
        self._thread = threading.Thread(target=self._watch, name="taskq-loop-watch",
                                        daemon=True)
        self._thread.start()

    async def beat(self) -> None:
        """Mark the time every tick until halted (an asyncio task of the worker)."""
        while not self._halt.is_set():
            self.beat_at = time.monotonic()
            await asyncio.sleep(TICK_S)

    def halt(self) -> None:
        """Stop the thread at its next look (it closes its connection itself: never waited
        for here, the event loop must not block on a renewal in flight)."""
        self._halt.set()

    # -- on the watch thread ---------------------------------------------------------------

    def _watch(self) -> None:
        blocked_since: float | None = None  # the last beat before a block seen past warn_after
        culprit = ""
        renewed = 0
        gave_up = False
        try:
            while not self._halt.wait(TICK_S):
                now = time.monotonic()
                beat = self.beat_at
                lag = now - beat
                if lag < KEEPER_LAG_S:
                    if blocked_since is not None:
                        log.info("the event loop runs again after %.1f s blocked%s%s",
                                 now - blocked_since, f" by {culprit}" if culprit else "",
                                 f" (leases kept: {renewed} renewals)" if renewed else "")
                        blocked_since, culprit, renewed = None, "", 0
                    gave_up = False
                    continue
                if blocked_since is None and lag >= self.warn_after_s:
                    blocked_since = beat
                    try:
                        culprit = self._warn(lag)
                    except Exception:  # (naming the culprit is best effort)
                        log.exception("the event loop is blocked (%.1f s so far)", lag)
                if lag > self.keep_s:
                    if not gave_up:
                        log.error("the event loop has been blocked for %.0f s%s: taken for "
                                  "stuck, its leases are no longer renewed (other workers take "
                                  "its %d entries over after their lease)", lag,
                                  f" by {culprit}" if culprit else "", len(self.ledger.held))
                        gave_up = True
                    continue
                # (half the period: the first renewal of a block comes soon after it began,
                # however late in the period the loop's last renewal was)
                if now - self.ledger.renewed_at >= self.renew_every_s / 2 and self._renew():
                    renewed += 1
        finally:
            self._close()

    def _warn(self, lag: float) -> str:
        """Log the block (once per culprit per WARN_AGAIN_S); returns the culprit's words."""
        self.blocks += 1
        culprit, task_name = self._culprit()
        now = time.monotonic()
        key = task_name or "?"
        again = now - self._warned_at.get(key, -WARN_AGAIN_S) < WARN_AGAIN_S
        if not again:
            self._warned_at[key] = now
        if task_name:
            log.log(logging.DEBUG if again else logging.WARNING,
                    "the event loop is blocked (%.1f s so far) by %s: %s. Its leases are kept "
                    "meanwhile", lag, culprit, FIX)
        else:
            log.log(logging.DEBUG if again else logging.WARNING,
                    "the event loop is blocked (%.1f s so far)%s; no task of this worker runs "
                    "meanwhile (is the machine short of CPU?)", lag,
                    f" in {culprit}" if culprit else "")
        return culprit

    def _culprit(self) -> tuple[str, str]:
        """(words naming what runs on the blocked loop, the task name or "")."""
        running: Delivery | None = None
        loop = self._loop
        current = asyncio.current_task(loop) if loop is not None else None
        if current is not None:
            for d in list(self.ledger.held.values()):
                if d.runner is current:
                    running = d
                    break
        where = self._where()
        if running is not None and running.ctx is not None:
            name = running.ctx.task
            return f"task {name} ({running.task_id}){where}", name
        if current is not None:
            return f"asyncio task {current.get_name()}{where}", ""
        return where.removeprefix(" at "), ""

    def _where(self) -> str:
        """`` at file:line`` of the innermost frame of a registered task's function on the
        loop's thread (else of the loop thread's innermost frame), or ""."""
        frame: FrameType | None = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return ""
        codes: set[CodeType] = set()
        for task in list(self.app.registry.values()):
            code = getattr(task.fn, "__code__", None)
            if isinstance(code, CodeType):
                codes.add(code)
        innermost = frame
        f: FrameType | None = frame
        while f is not None:
            if f.f_code in codes:
                return f" at {f.f_code.co_filename}:{f.f_lineno}"
            f = f.f_back
        return f" at {innermost.f_code.co_filename}:{innermost.f_lineno}"

    def _renew(self) -> bool:
        """Renew the leases (and concurrency slots) of what the ledger holds; True when done."""
        held = list(self.ledger.held.items())  # (one C call: a consistent snapshot)
        if not held:
            self.ledger.renewed_at = time.monotonic()
            return True
        by_queue: dict[str, list[str]] = {}
        slots: dict[str, list[tuple[str, str]]] = {}
        for (queue, entry), d in held:
            by_queue.setdefault(queue, []).append(entry)
            if d.slot is not None and not d.lost:
                slots.setdefault(self.context.keys[queue].tag, []).append((d.slot, d.task_id))
        try:
            scripts = self._connect()
            for queue, entries in by_queue.items():
                scripts.renew(keys=self.context.keys[queue], consumer=self.context.id,
                              entry_ids=entries)
            for group in slots.values():
                scripts.renew_slots(slots=group, lease_ms=self.lease_ms)
        except _ERRORS as exc:
            log.warning("the loop watch could not renew the leases of a blocked worker: %s: %s",
                        type(exc).__name__, exc)
            return False
        except Exception:  # (a bug here must not end the thread: it would renew no more)
            log.exception("the loop watch could not renew the leases of a blocked worker")
            return False
        self.ledger.renewed_at = time.monotonic()
        self.renewals += 1
        log.debug("loop blocked: renewed the leases of %d entries", len(held))
        return True

    def _connect(self) -> SyncScripts:
        if self._scripts is None:
            self._client = clients.connect_sync(self.app.url,
                                                socket_timeout_s=self.app.socket_timeout_s)
            self._scripts = SyncScripts(self._client)
        return self._scripts

    def _close(self) -> None:
        client, self._client, self._scripts = self._client, None, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a connection that failed: nothing to do
                log.debug("closing the loop watch's connection failed", exc_info=True)
