"""The in-flight ledger: every delivery a worker holds, from its read to its ack.

A delivery is *held* from the moment it is read (or reclaimed) until it is acked, handed back or
found lost. Held deliveries are *waiting* (read, no run slot yet), *running* (at most
``concurrency``, each with its own asyncio task) or *acking* (finished, handed to the completer,
not yet acked). The ledger alone changes those counts, and owns the rules built on them:

- run slots: a delivery starts at once while fewer than ``concurrency`` run, else it waits in
  order and starts when a runner ends;
- the read room: ``capacity`` less what is held, plus finished entries awaiting their ack (up
  to the capacity again, so stalled acks still stop the reads); the reader reads again once
  there is room for a worthwhile batch (or nothing is held);
- acks: a finished delivery stays held (its lease renewed) until the completer reports it
  acked or lost.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from taskq.context import TaskContext
from taskq.records import TaskStatus
from taskq.scripts import StepEnd
from taskq.worker.config import WorkerConfig

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Delivery:
    """One entry this worker holds (prefetched, running, or waiting for its ack)."""

    queue: str
    entry_id: str
    deliveries: int
    payload: bytes | None
    task_id: str = ""
    started: bool = False
    lost: bool = False
    abandoned: bool = False  # still running past the grace period: handed back, no outcome
    cancel: bool = False
    acking: bool = False  # handed to the completer; it drops the delivery once acked
    ctx: TaskContext | None = None
    runner: asyncio.Task[None] | None = field(default=None, repr=False)
    # set when the outcome is handed to the completer (a Completable for the complete script)
    status: TaskStatus = TaskStatus.RUNNING
    record: bytes = b""
    flags: str = ""
    ttl_ms: int = 0
    rank: int = 0  # lower starts first among waiting deliveries (priority lanes, queue order)
    slot: str | None = None  # the concurrency slot set it holds (see taskq.worker.limiter)
    step: StepEnd | None = None  # a workflow step: how it ended (for the complete script)
    unique: tuple[str, int] | None = None  # its unique key and ms to keep it after success
    error: BaseException | None = field(default=None, repr=False)  # a failed attempt's error


@dataclass(slots=True)
class Counters:
    """What a worker counted since it started (heartbeat, metrics)."""

    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead: int = 0
    lost_leases: int = 0
    reclaimed: int = 0
    throttled: int = 0  # made to wait by a rate or concurrency limit (no attempt used)
    deferred: int = 0  # unknown task names handed back in the deploy grace
    handed_back: int = 0  # handed back unrun or unfinished (shutdown, paused queue, recycled pool)
    expired: int = 0


Process = Callable[[Delivery], Coroutine[Any, Any, None]]


async def _unwired(d: Delivery) -> None:
    raise RuntimeError("the ledger was given no runner (Ledger.runs)")


class Ledger:
    """The deliveries held by one worker, its run slots, read room and acks (see the module)."""

    def __init__(self, config: WorkerConfig) -> None:
        self.held: dict[tuple[str, str], Delivery] = {}
        self.counters = Counters()
        self.stopping = False  # read on the hot path
        self.capacity = config.capacity
        self.concurrency = config.concurrency
        self.read_threshold = max(1, min(config.batch, config.capacity // 2))
        self.running = 0  # deliveries with a runner (at most concurrency)
        self.acking = 0  # held deliveries handed to the completer (finished, not yet acked)
        self.waiting: collections.deque[Delivery] = collections.deque()  # read, no runner yet
        self.done: list[Delivery] = []  # handed to the completer, not yet taken by it
        self.room = asyncio.Event()  # set when the read room may have grown
        self.done_ready = asyncio.Event()  # set when ``done`` got its first delivery
        self._process: Process = _unwired
        self.ranks: dict[str, int] = {}  # queue -> rank of its deliveries (set by the reader)
        # when the leases of everything held were last renewed (time.monotonic(); written by
        # maintenance and by the loop watch's thread while the loop is blocked)
        self.renewed_at = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None

    def runs(self, process: Process) -> None:
        """Wire the coroutine that takes one delivery from its checks to its outcome."""
        self._process = process

    def stop(self) -> None:
        """No delivery starts from now on; the reader wakes up to see it."""
        self.stopping = True
        self.room.set()

    # -- reads -----------------------------------------------------------------------------

    def read_room(self) -> int:
        """Entries the reader may take now. Finished entries waiting for their ack leave room
        already (up to the capacity again, so stalled acks still stop the reads): waiting for
        the group commit's round trip before reading would leave the run slots idle."""
        cap = self.capacity
        return cap - len(self.held) + min(self.acking, cap)

    async def wait_room(self) -> int:
        """The read room, once it is worth a read: room for a worthwhile batch, or nothing held
        (so an idle worker answers at once). Small reads would cost a round trip per task under
        load. Returns at once when the worker stops."""
        threshold = self.read_threshold
        while True:
            room = self.read_room()
            if room >= threshold or not self.held or self.stopping:
                return room
            self.room.clear()
            await self.room.wait()

    def reclaim_room(self) -> int:
        """Entries reclaiming may take now: the capacity less everything held."""
        return self.capacity - len(self.held)

    def accept(self, queue: str, entry_id: str, payload: bytes | None, deliveries: int,
               rank: int = 0) -> None:
        """Take an entry delivered to (or reclaimed by) this worker. Waiting deliveries start
        by ``rank`` (lower first: a higher priority lane, or an earlier queue in strict order),
        in the order taken within a rank."""
        key = (queue, entry_id)
        held = self.held.get(key)
        if held is not None:  # reclaimed our own entry (renewal stalled): new fencing token
            held.deliveries = deliveries
            return
        d = Delivery(queue, entry_id, deliveries, payload)
        self.held[key] = d
        if self.running < self.concurrency:
            self.running += 1
            d.runner = self._spawn(self._process(d))
        else:
            waiting = self.waiting
            if rank:
                d.rank = rank
            if not waiting or rank >= waiting[-1].rank:  # (always, for queues without lanes)
                waiting.append(d)
            else:
                self._jump(d)

    def _jump(self, d: Delivery) -> None:
        """Put ``d`` before the waiting deliveries of a higher rank (after its own rank's)."""
        waiting = self.waiting
        for i, other in enumerate(waiting):
            if other.rank > d.rank:
                waiting.insert(i, d)
                return
        waiting.append(d)

    # -- runs ------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """``asyncio.create_task`` without its loop lookup (a getpid call each, in Python
        3.11): once per task, it shows in the profile."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.create_task(coro)

    def _start_waiting(self) -> None:
        """Give runners to waiting deliveries while there are free run slots (a delivery whose
        lease was lost meanwhile has left ``held`` and is skipped)."""
        waiting = self.waiting
        while waiting and self.running < self.concurrency and not self.stopping:
            d = waiting.popleft()
            if d.lost or self.held.get((d.queue, d.entry_id)) is not d:
                continue
            self.running += 1
            d.runner = self._spawn(self._process(d))

    def runner_ended(self, d: Delivery) -> None:
        """A runner is over (whatever happened): its slot goes to a waiting delivery. A delivery
        not handed to the completer leaves the ledger, unless the worker is stopping before it
        started (the drain hands those back)."""
        self.running -= 1
        key = (d.queue, d.entry_id)
        if not d.acking and (not self.stopping or d.started) and self.held.get(key) is d:
            del self.held[key]
            self.room.set()
        if self.waiting:
            self._start_waiting()

    def hand_over(self, d: Delivery) -> None:
        """A finished delivery goes to the completer; it stays held until acked."""
        d.acking = True
        self.acking += 1
        done = self.done
        done.append(d)
        if len(done) == 1:
            self.done_ready.set()
        if self.read_room() >= self.read_threshold:
            self.room.set()  # (the reader may be waiting for room)

    def drop(self, d: Delivery) -> None:
        """The delivery was handed back to the stream (it runs again, here or elsewhere)."""
        self.held.pop((d.queue, d.entry_id), None)

    def lost(self, queue: str, entry_id: str) -> None:
        """Renewal found the entry owned by another worker: its outcome will be discarded."""
        d = self.held.get((queue, entry_id))
        # Reported already, or handed to the completer (which may just have acked it): the
        # complete script's own owner check decides those.
        if d is None or d.lost or d.acking:
            return
        d.lost = True
        self.counters.lost_leases += 1
        log.warning("lease lost on entry %s of %s (another worker took it)", entry_id, queue)
        if not d.started:  # its runner (if it has one yet) returns at once: d.lost
            self.held.pop((queue, entry_id), None)

    # -- acks ------------------------------------------------------------------------------

    def unfinished(self) -> int:
        """Held deliveries not waiting for the completer (running or about to)."""
        return len(self.held) - len(self.done)

    def take_done(self) -> list[Delivery]:
        """Everything handed to the completer since it last took (and a clear signal)."""
        self.done_ready.clear()
        batch, self.done = self.done, []
        return batch

    def acked(self, items: list[Delivery], lost: Iterable[str]) -> None:
        """The completer's script answered for ``items``: all acked, but those in ``lost``
        (entry ids another worker owned by then: their outcome is discarded)."""
        held = self.held
        counters = self.counters
        lost_set = set(lost)
        self.acking -= len(items)
        for d in items:
            if lost_set and d.entry_id in lost_set:
                counters.lost_leases += 1
                log.warning("lease lost on %s: another worker owns it now; outcome discarded",
                            d.task_id, extra={"task_id": d.task_id})
            elif d.status is TaskStatus.SUCCEEDED:
                counters.succeeded += 1
            key = (d.queue, d.entry_id)
            if held.get(key) is d:
                del held[key]
        self.room.set()

    # -- shutdown --------------------------------------------------------------------------

    def unstarted(self) -> list[Delivery]:
        """Stop starting waiting deliveries; those held that never started (to hand back)."""
        self.waiting.clear()
        return [d for d in self.held.values() if not d.started]

    def runners(self) -> list[asyncio.Task[None]]:
        return [d.runner for d in self.held.values() if d.runner is not None]

    def abandon(self, runners: set[asyncio.Task[None]]) -> list[Delivery]:
        """The deliveries of ``runners`` (past the grace period): marked lost, so the outcome of
        their attempt is discarded, and their runners cancelled. Returns them to hand back."""
        late = [d for d in self.held.values() if d.runner in runners]
        for d in late:
            d.lost = True
            d.abandoned = True  # the attempt's outcome is discarded from now on
            if d.runner is not None:
                d.runner.cancel()
        return late

    def acks_pending(self) -> int:
        """Finished deliveries not acked yet (waiting for the completer, or in its call)."""
        return self.acking  # (every delivery in ``done`` is counted in ``acking`` too)
