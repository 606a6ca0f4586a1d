"""Periodic schedules in a worker (a maintenance duty): sync the app's schedules to Redis when
the worker starts, then, every pass, hand each queue's schedules' coming ticks to one firing
script call per queue (``lua/periodic_fire.lua``), which enqueues the ticks that are due on
Redis's clock and claims each one atomically, so that any number of workers, whatever their
clocks, enqueue each tick once.

The local clock (corrected by the Redis time the worker measures, :class:`Clock`) only picks
which ticks to hand over: a tick handed over early waits for a later pass, one handed over late
fires late, never twice nor skipped. Every pass also tells Redis a worker was there: a pass that
comes after more than ``missed_after_ms`` without any applies each schedule's catch-up policy
to the ticks that came due meanwhile (:class:`taskq.periodic.CatchUp`).
"""

from __future__ import annotations

import logging
from collections import defaultdict

from taskq.keys import periodic_queues_key, queues_key
from taskq.periodic import MAX_TICKS, Schedule
from taskq.queue import TaskQueue
from taskq.scripts import Fired
from taskq.worker.context import Clock

log = logging.getLogger(__name__)


class Scheduler:
    """Syncs and fires the periodic schedules of ``app`` (see the module)."""

    def __init__(self, app: TaskQueue, clock: Clock, *, missed_after_ms: int,
                 every_ms: int) -> None:
        self.app = app
        self.clock = clock
        self.missed_after_ms = missed_after_ms
        self.lookahead_ms = max(1_000, 2 * every_ms)
        self.synced = False
        self.queues: dict[str, list[Schedule]] = {}
        self.last: dict[str, int] = {}  # schedule name -> its last tick, as last seen in Redis
        self._first: dict[str, tuple[int, int]] = {}  # name -> (last tick, first tick after it)
        self._warned: set[tuple[str, str]] = set()
        self.fired = 0

    async def sync(self) -> None:
        """Make Redis hold the code's schedules: added, changed, removed (the code wins).

        The periodic-queues set lists every queue whose periodic hash holds schedules (the
        operator view and each worker's sync read it). It is not in the queues' hash tags, so
        it cannot change in the sync script itself (one slot per script on a Cluster); this
        order keeps it right whatever syncs of other code run meanwhile: a worker adding
        schedules adds the queue before and again after its script; one that left a queue
        without schedules (the script deleted its hash) removes the queue, then looks again
        and adds it back if another worker's sync stored schedules there meanwhile."""
        app = self.app
        by_queue: dict[str, list[Schedule]] = defaultdict(list)
        for s in app.schedules.values():
            by_queue[s.queue].append(s)
        registry = periodic_queues_key(app.prefix)
        if by_queue:  # first: a queue with schedules in Redis is always in this set
            await app.redis.sadd(registry, *by_queue)  # type: ignore[misc]
            # and known as a queue, as an enqueue makes it: a priority lane only a schedule
            # uses is then found by its queue's workers (taskq.priority)
            await app.redis.sadd(queues_key(app.prefix), *by_queue)  # type: ignore[misc]
        stored = {q.decode() if isinstance(q, bytes) else str(q)
                  for q in await app.redis.smembers(registry)}  # type: ignore[misc]
        emptied = sorted(stored - set(by_queue))
        for queue in sorted(stored | set(by_queue)):
            result = await app.scripts.periodic_sync(keys=app.keys(queue),
                                                     schedules=by_queue.get(queue, []))
            for name, state, last in result:
                if state == "removed":
                    log.info("schedule %s removed (no longer declared in code)", name)
                    continue
                self.last[name] = last
                if state != "same":
                    log.info("schedule %s %s: %s on queue %s", name, state,
                             app.schedules[name].spec.text(), queue)
        if by_queue:  # (again: see above)
            await app.redis.sadd(registry, *by_queue)  # type: ignore[misc]
        if emptied:
            await self._forget(emptied)
        self.queues = dict(by_queue)
        self.synced = True

    async def _forget(self, queues: list[str]) -> None:
        """Take ``queues``, left without schedules by this sync, out of the periodic-queues
        set, but keep those another worker's sync gave schedules meanwhile."""
        app = self.app
        registry = periodic_queues_key(app.prefix)
        await app.redis.srem(registry, *queues)  # type: ignore[misc]
        pipe = app.redis.pipeline(transaction=False)
        for q in queues:
            pipe.exists(app.keys(q).periodic)
        back = [q for q, n in zip(queues, await pipe.execute(), strict=True) if n]
        if back:
            await app.redis.sadd(registry, *back)  # type: ignore[misc]
        gone = sorted(set(queues) - set(back))
        if gone:
            log.info("queue(s) %s have no periodic schedules any more", ", ".join(gone))

    async def fire(self) -> None:
        """One pass: sync first if not done yet, then one firing call per queue."""
        if not self.synced:
            await self.sync()
        if not self.queues:
            return
        now = self.clock.now_ms()
        until = now + self.lookahead_ms
        for queue, schedules in self.queues.items():
            ticks = []
            for s in schedules:
                head, tail = self._ticks(s, now, until)
                # the envelope as enqueued now (its enqueue time: about now), when one may fire
                message = s.message_at(now) if head or tail else b""
                ticks.append((s.name, s.digest, message, head, tail))
            _, missed, results = await self.app.scripts.periodic_fire(
                keys=self.app.keys(queue), missed_after_ms=self.missed_after_ms,
                limit=self.app.max_backlog, ticks=ticks)
            for r in results:
                self._handle(queue, r, missed)

    def _ticks(self, s: Schedule, now: int, until: int) -> tuple[list[int], list[int]]:
        """The ticks to hand over: the first ones after the last known tick (without a hole,
        at most MAX_TICKS), and, when those stop short, the ones around now."""
        last = self.last.get(s.name, now)
        first = self._first.get(s.name)
        if first is not None and first[0] == last and first[1] > until:
            return [], []  # (the common case: nothing due soon, no cron evaluated)
        head = s.spec.ticks(last, until_ms=until)
        if not head:
            nxt = s.spec.next_ticks(last, 1)
            if nxt:
                self._first[s.name] = (last, nxt[0])
        tail: list[int] = []
        if len(head) == MAX_TICKS:
            tail = s.spec.ticks(max(head[-1], now - self.lookahead_ms), until_ms=until, limit=8)
        return head, tail

    def _handle(self, queue: str, r: Fired, missed: bool) -> None:
        self.last[r.name] = r.last_tick_ms
        if r.fired:
            self.fired += r.fired
            log.info("schedule %s: enqueued %d task(s) on %s, the last %s%s", r.name, r.fired,
                     queue, r.last_task_id, " (catching up after no worker ran)" if missed else "")
        if r.skipped and r.state != "paused":
            why = "the queue's backlog is full" if r.state == "full" else "catch-up policy"
            log.warning("schedule %s: %d tick(s) skipped (%s)", r.name, r.skipped, why)
        if r.state in ("stale", "gone") and (r.name, r.state) not in self._warned:
            self._warned.add((r.name, r.state))
            log.warning("schedule %s is %s in Redis: a worker with other code synced it; this "
                        "worker leaves it to workers of that code", r.name,
                        "defined otherwise" if r.state == "stale" else "removed")
