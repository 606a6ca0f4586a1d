"""The worker's periodic duties, each its own loop, each surviving Redis errors.

- renew: reset the idle time of every entry held (running or prefetched), owner-checked, so
  that healthy long tasks are never taken away; entries found lost are dropped or discarded.
- reclaim: take over entries idle longer than the lease (their worker died), with their
  delivery count, so poison that kills its process ends in the dead letters.
- promote: move due delayed tasks and retries to the stream (any worker; atomic; no scheduler).
- heartbeat: register the worker with its figures; a key with a TTL says it is alive.
- flags: refresh paused queues and cancel requests; forget idle, empty, dead consumers.
- schedules: sync the app's periodic schedules at start, then fire their due ticks (one script
  call per queue with schedules per pass; see :mod:`taskq.worker.schedules`).

They work on the ledger, the app's scripts and client, and the worker's context: never on the
worker itself. A duty that keeps failing the same way (Redis out of memory refuses every
promote, about ten a second) is logged the first time, then at most once per
``REPEAT_LOG_EVERY_S`` with the number of failures not logged (and that number once more when
it works again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

from redis.exceptions import ResponseError

from taskq import priority
from taskq.connection import FATAL, REDIS_ERRORS, fatal_config_error
from taskq.errors import RedisOutOfMemory
from taskq.heartbeat import Heartbeat
from taskq.keys import GROUP, worker_alive_key, workers_key
from taskq.queue import TaskQueue
from taskq.worker.context import WorkerContext
from taskq.worker.ledger import Ledger
from taskq.worker.schedules import Scheduler

log = logging.getLogger(__name__)

_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, ResponseError)
FORGET_CONSUMERS_EVERY_S = 60.0
CANCEL_REQUEST_TTL_MS = 600_000
FORGET_IDLE_MS = 600_000
REPEAT_LOG_EVERY_S = 60.0


class RepeatedFailures:
    """Which failures of one loop to log: the first of a kind (its type and message), then the
    same one at most once per ``every_s``, saying how many were not logged in between."""

    __slots__ = ("_kind", "_logged_at", "_unlogged", "every_s")

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._kind: tuple[str, str] | None = None
        self._logged_at = 0.0
        self._unlogged = 0

    def failed(self, kind: tuple[str, str], now: float) -> int | None:
        """None: do not log this failure; else log it, with this many identical failures that
        were not logged since the last one that was."""
        if kind == self._kind and now - self._logged_at < self.every_s:
            self._unlogged += 1
            return None
        unlogged = self._unlogged if kind == self._kind else 0
        self._kind, self._logged_at, self._unlogged = kind, now, 0
        return unlogged

    def succeeded(self) -> int:
        """The duty worked: forget its failures; returns how many were not logged."""
        unlogged, self._kind, self._unlogged = self._unlogged, None, 0
        return unlogged


def _not_logged(count: int) -> str:
    return f" ({count} more times since, not logged)" if count else ""


class Maintenance:
    """The periodic duties of one worker (see the module)."""

    def __init__(self, app: TaskQueue, context: WorkerContext, ledger: Ledger) -> None:
        self.app = app
        self.context = context
        self.config = context.config
        self.keys = context.keys
        self.flags = context.flags
        self.ledger = ledger
        self.forgot_consumers_at = time.monotonic()
        self.scheduler = Scheduler(app, context.clock, missed_after_ms=self.config.lease_ms,
                                   every_ms=self.config.schedules_every_ms)
        self._halt = asyncio.Event()

    def loops(self) -> Iterator[tuple[str, Coroutine[Any, Any, None]]]:
        """Each duty's loop, with the name of its asyncio task."""
        c = self.config
        yield "taskq-renew", self._every("renew", c.renew_every_ms, self.renew, jitter=False)
        yield "taskq-reclaim", self._every("reclaim", c.reclaim_every_ms, self.reclaim)
        yield "taskq-promote", self._every("promote", c.promote_every_ms, self.promote)
        yield "taskq-heartbeat", self._every("heartbeat", c.heartbeat_every_ms, self.heartbeat,
                                             first=True)
        yield "taskq-flags", self._every("flags", c.flags_every_ms, self.refresh_flags,
                                         first=True)
        if c.schedules:
            yield "taskq-schedules", self._every("schedules", c.schedules_every_ms,
                                                 self.scheduler.fire, first=True)

    def halt(self) -> None:
        """End every loop after its current pass (the last step of a worker's shutdown: leases
        are renewed until then). Their tasks are cancelled too; this ends them even when a
        Redis call swallowed that cancel (see :mod:`taskq.cancelling`)."""
        self._halt.set()

    async def _every(self, name: str, period_ms: int, duty: Callable[[], Awaitable[None]],
                     jitter: bool = True, first: bool = False) -> None:
        if not first:
            await self._pause(period_ms / 1000 * (random.random() if jitter else 1.0))
        repeats = RepeatedFailures(REPEAT_LOG_EVERY_S)
        while not self._halt.is_set():
            try:
                await duty()
            except asyncio.CancelledError:
                raise
            except FATAL as exc:  # retrying cannot fix it: the worker exits (78)
                raise fatal_config_error(exc) or exc from exc
            except _ERRORS as exc:
                unlogged = repeats.failed((type(exc).__name__, str(exc)), time.monotonic())
                if unlogged is not None:
                    log.warning("%s failed: %s: %s%s", name, type(exc).__name__, exc,
                                _not_logged(unlogged))
            except Exception as exc:
                unlogged = repeats.failed((type(exc).__name__, str(exc)), time.monotonic())
                if unlogged is not None:
                    log.exception("%s failed%s", name, _not_logged(unlogged))
            else:
                unlogged = repeats.succeeded()
                if unlogged:
                    log.warning("%s works again (%d more failures before, not logged)", name,
                                unlogged)
            period = period_ms / 1000
            await self._pause(period * (0.8 + 0.4 * random.random()) if jitter else period)

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when the loops are halted."""
        if self._halt.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._halt.wait()

    async def renew(self) -> None:
        ledger = self.ledger
        began = time.monotonic()
        by_queue: dict[str, list[str]] = {}
        for (queue, entry), _ in list(ledger.held.items()):
            by_queue.setdefault(queue, []).append(entry)
        for queue, entries in by_queue.items():
            lost = await self.app.scripts.renew(keys=self.keys[queue], consumer=self.context.id,
                                                entry_ids=entries)
            for entry in lost:
                ledger.lost(queue, entry)
        ledger.renewed_at = max(ledger.renewed_at, began)
        await self._renew_slots()

    async def _renew_slots(self) -> None:
        """Renew the concurrency slots of the attempts held (see taskq.worker.limiter), one
        script call per queue that has any: a worker that dies stops renewing, and its slots
        free themselves a lease later."""
        by_tag: dict[str, list[tuple[str, str]]] = {}
        for (queue, _), d in list(self.ledger.held.items()):
            if d.slot is not None and not d.lost:
                by_tag.setdefault(self.keys[queue].tag, []).append((d.slot, d.task_id))
        for slots in by_tag.values():
            await self.app.scripts.renew_slots(slots=slots, lease_ms=self.config.lease_ms)

    async def discover_lanes(self) -> None:
        """Start reading the priority lanes of this worker's queues that producers have used
        since (a lane is registered in the queues set by its first enqueue)."""
        app, keys = self.app, self.keys
        wanted = [lane for q in self.config.queues if not priority.is_lane(q)
                  for lane in priority.lanes(q) if lane not in keys]  # (a lane named: only it)
        if not wanted:
            return
        # A lane in use has a stream or a delayed set (EXISTS: a command the documented
        # least-privilege ACL user already has; SMISMEMBER on the queues set is not)
        pipe = app.redis.pipeline(transaction=False)
        for lane in wanted:
            lane_keys = app.keys(lane)
            pipe.exists(lane_keys.stream, lane_keys.delayed)
        found = await pipe.execute()
        new = [lane for lane, here in zip(wanted, found, strict=True) if here]
        if not new:
            return
        await app.ensure_groups(new)
        for lane in new:
            keys[lane] = app.keys(lane)
        log.info("reading priority lanes %s", ", ".join(new))

    async def reclaim(self) -> None:
        ledger = self.ledger
        if ledger.stopping:
            return
        # Never take over an entry this worker still holds (it is running here): after the
        # event loop was blocked, the leases of what it holds may have run out; XAUTOCLAIM
        # would then hand them to this very worker again (a new delivery: the running
        # attempt's ack fails, and the task runs once more). Renew them first.
        if time.monotonic() - ledger.renewed_at > self.config.renew_every_ms / 1000 * 1.5:
            await self.renew()
        for queue, keys in self.keys.items():
            if queue in self.flags.paused:
                continue
            room = ledger.reclaim_room()
            if room <= 0:
                return
            cursor = "0-0"
            for _ in range(10):  # bounded per cycle
                cursor, got, missing = await self.app.scripts.reclaim(
                    keys=keys, consumer=self.context.id, min_idle_ms=self.config.lease_ms,
                    cursor=cursor, count=room, rounds=5, dead_cap=self.app.dead_letter_cap,
                )
                if missing:
                    log.error("%d pending entries of %s were deleted before they ran; "
                              "dead-lettered as payload_missing", missing, queue)
                for r in got:
                    if (queue, r.entry_id) in ledger.held:  # (its renewals failed meanwhile)
                        log.warning("entry %s of %s was taken over by this worker, which "
                                    "still holds it: its lease ran out", r.entry_id, queue)
                    ledger.counters.reclaimed += 1
                    log.info("reclaimed entry %s of %s (delivery %d)", r.entry_id, queue,
                             r.deliveries)
                    ledger.accept(queue, r.entry_id, r.payload or None, r.deliveries,
                                  ledger.ranks.get(queue, 0))
                room -= len(got)
                if cursor == "0-0" or room <= 0:
                    break

    async def promote(self) -> None:
        for keys in self.keys.values():
            for _ in range(20):  # bounded per cycle
                moved, _missing = await self.app.scripts.promote(keys=keys, count=500)
                if moved < 500:
                    break

    async def heartbeat(self) -> None:
        w, c, app = self.context, self.ledger.counters, self.app
        info = Heartbeat(
            id=w.id, host=w.host, pid=os.getpid(), queues=list(w.config.queues),
            concurrency=w.config.concurrency, in_flight=len(self.ledger.held),
            processed=c.processed, succeeded=c.succeeded, failed=c.failed,
            retried=c.retried, dead=c.dead, reclaimed=c.reclaimed,
            lost_leases=c.lost_leases, started_ms=int(w.started_at * 1000),
            heartbeat_ms=int(time.time() * 1000), stopping=self.ledger.stopping,
        )
        alive, ttl_ms = worker_alive_key(app.prefix, w.id), w.config.heartbeat_every_ms * 3 + 1000
        pipe = app.redis.pipeline(transaction=False)
        pipe.set(alive, b"1", px=ttl_ms)
        pipe.hset(workers_key(app.prefix), w.id, info.encode())
        try:
            await pipe.execute()
        except RedisOutOfMemory:
            # Redis refuses writes that may add memory; PEXPIRE adds none: the key that says
            # this worker is alive lives on (its figures in the workers hash are left stale).
            if await app.redis.pexpire(alive, ttl_ms):
                log.warning("Redis is out of memory: heartbeat kept alive without its figures")
            else:
                raise
        await w.clock.sync(app.redis)

    async def refresh_flags(self) -> None:
        """Paused queues and cancel requests from Redis; cancels what is held and cancelled;
        priority lanes used since."""
        await self.discover_lanes()
        app, keys, flags = self.app, self.keys, self.flags
        pipe = app.redis.pipeline(transaction=False)
        queues = list(keys)
        for q in queues:
            pipe.exists(keys[q].paused)
            pipe.hgetall(keys[q].cancels)
        replies = await pipe.execute()
        paused = {q for q, n in zip(queues, replies[0::2], strict=True) if n}
        if paused != flags.paused:
            log.info("paused queues: %s", ", ".join(sorted(paused)) or "none")
        flags.paused = paused
        cancels: set[str] = set()
        stale_before = self.context.clock.now_ms() - CANCEL_REQUEST_TTL_MS
        for q, requests in zip(queues, replies[1::2], strict=True):
            stale = [k for k, at in requests.items() if int(at) < stale_before]
            if stale:  # asked for tasks that had already ended: nobody will act on them
                await app.redis.hdel(keys[q].cancels, *stale)  # type: ignore[misc]
            cancels.update(k.decode() if isinstance(k, bytes) else k for k in requests)
        flags.cancels = cancels
        if cancels:
            for d in list(self.ledger.held.values()):
                if d.task_id in cancels and not d.cancel:
                    d.cancel = True
                    if d.ctx is not None:
                        d.ctx.request_cancel()
                    if d.runner is not None and d.started:
                        task = app.registry.get(d.ctx.task) if d.ctx else None
                        if task is not None and task.is_async:
                            d.runner.cancel()
        now = time.monotonic()
        if now - self.forgot_consumers_at > FORGET_CONSUMERS_EVERY_S:
            self.forgot_consumers_at = now
            await self.forget_consumers()

    async def forget_consumers(self) -> None:
        """Remove consumers that are idle, hold nothing and belong to no live worker."""
        app, me = self.app, self.context.id
        for keys in self.keys.values():
            try:
                consumers = await app.redis.xinfo_consumers(keys.stream, GROUP)
            except ResponseError:
                continue
            for c in consumers:
                name = c["name"].decode() if isinstance(c["name"], bytes) else str(c["name"])
                if name == me or int(c["pending"]) > 0 or int(c["idle"]) < FORGET_IDLE_MS:
                    continue
                if await app.redis.exists(worker_alive_key(app.prefix, name)):
                    continue
                if await app.scripts.forget_consumer(keys=keys, consumer=name):
                    log.info("forgot idle consumer %s of %s", name, keys.queue)

    async def unregister(self) -> None:
        """The worker is gone: its registration and its (empty) consumers go too."""
        app, me = self.app, self.context.id
        pipe = app.redis.pipeline(transaction=False)
        pipe.delete(worker_alive_key(app.prefix, me))
        pipe.hdel(workers_key(app.prefix), me)
        await pipe.execute()
        for keys in self.keys.values():
            with contextlib.suppress(ResponseError):
                await app.scripts.forget_consumer(keys=keys, consumer=me)
