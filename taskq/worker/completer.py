"""Group commit: one owner-checked complete script per queue for every delivery finished
meanwhile, retried through connection errors; the ledger learns which were acked and which lost."""

from __future__ import annotations

import asyncio
import logging

from taskq import durability
from taskq.connection import FATAL, REDIS_ERRORS, fatal_config_error
from taskq.errors import NotReplicated
from taskq.keys import QueueKeys
from taskq.queue import TaskQueue
from taskq.worker.context import WorkerContext
from taskq.worker.ledger import Delivery, Ledger
from taskq.worker.wakeup import wake_waiters

log = logging.getLogger(__name__)

GROUP_COMMIT_MIN_RUNNING = 16
UNCONFIRMED: tuple[type[Exception], ...] = (NotReplicated, *REDIS_ERRORS)
GROUP_COMMIT_WAIT_S = 0.002


class Completer:
    """Acks what the ledger hands over (see the module); :meth:`run` until halted."""

    def __init__(self, app: TaskQueue, context: WorkerContext, ledger: Ledger) -> None:
        self.app = app
        self.id = context.id
        self.keys = context.keys
        self.clock = context.clock
        self.ledger = ledger
        self._halted = False
        self.unreplicated = 0  # completed tasks fewer replicas than min_replicas confirmed

    def halt(self) -> None:
        """End :meth:`run` once nothing is left to ack (the last step of a worker's shutdown;
        this ends it even when a Redis call swallowed the cancel of its task)."""
        self._halted = True
        self.ledger.done_ready.set()

    async def run(self) -> None:
        ledger = self.ledger
        while not (self._halted and not ledger.done):
            await ledger.done_ready.wait()
            if not ledger.done:  # woken by halt()
                ledger.done_ready.clear()
                continue
            # Group commit: when many tasks are running, wait a moment so that those about to
            # finish share the script call; when few are, flush at once (latency first).
            if ledger.unfinished() >= GROUP_COMMIT_MIN_RUNNING:
                await asyncio.sleep(GROUP_COMMIT_WAIT_S)
            else:
                for _ in range(3):
                    await asyncio.sleep(0)
            batch = ledger.take_done()
            first = batch[0]
            if all(d.queue == first.queue and d.ttl_ms == first.ttl_ms for d in batch):
                await self._complete_group(self.keys[first.queue], first.ttl_ms, batch)
                continue
            groups: dict[tuple[str, int], list[Delivery]] = {}
            for d in batch:
                groups.setdefault((d.queue, d.ttl_ms), []).append(d)
            for (queue, ttl), items in groups.items():
                await self._complete_group(self.keys[queue], ttl, items)

    async def _replicated(self, keys: QueueKeys, count: int) -> None:
        """With ``min_replicas``: WAIT for the replicas to have the completion; short of them,
        log (a failover may then run these tasks again), never retry."""
        try:
            await durability.confirm(self.app.lane, keys.stream, self.app.min_replicas,
                                     self.app.replicas_timeout_ms,
                                     f"completion of {count} tasks of {keys.queue!r}",
                                     aof=self.app.wait_aof)
        except UNCONFIRMED as exc:
            self.unreplicated += count
            log.warning("%s", exc)

    async def _complete_group(self, keys: QueueKeys, ttl: int, items: list[Delivery]) -> None:
        delay = 0.05
        refused = 0
        while True:
            try:
                lost = await self.app.scripts.complete(
                    keys=keys, consumer=self.id, items=items, ttl_ms=ttl,
                    now_ms=self.clock.now_ms(), scan=len(self.ledger.held) + len(items) + 16,
                )
                if self.app.min_replicas:
                    await self._replicated(keys, len(items))
                break
            except FATAL as exc:  # retrying cannot fix it: the worker exits (78)
                raise fatal_config_error(exc) or exc from exc
            except REDIS_ERRORS as exc:
                log.warning("ack of %d tasks failed (%s); retrying", len(items), exc)
            except Exception:  # a refused script must not stop every later ack
                refused += 1
                log.exception("ack of %d tasks refused by Redis", len(items))
                if refused >= 5:  # give up: the entries return after their lease
                    lost = [d.entry_id for d in items]
                    break
            if self._halted:  # shutting down: no retrying without end
                log.warning("giving up on the ack of %d tasks at shutdown: they run again after "
                            "their lease", len(items))
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        freed = [d for d in items if d.slot]  # (concurrency-limited tasks only)
        self.ledger.acked(items, lost)
        if freed:
            gone = set(lost)
            await wake_waiters(self.app, self.keys, (d for d in freed if d.entry_id not in gone))
