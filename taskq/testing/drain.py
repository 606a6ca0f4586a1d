"""drain: run what was queued, inside a test, through the real worker, without waiting.

:func:`drain` runs a real :class:`~taskq.worker.Worker` (admission, execution, retries, the
completer, records and dead letters: the production code) in the caller's event loop with short
timings, one task at a time, until nothing is left to run. Delays and retry backoffs are
fast-forwarded (:mod:`taskq.testing.clock`) instead of waited for. It answers a
:class:`DrainResult`: counts by outcome and the dead letters written meanwhile.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from taskq import deadletter, priority
from taskq.deadletter import DeadEntry
from taskq.errors import TaskqError
from taskq.keys import QueueKeys
from taskq.queue import TaskQueue
from taskq.testing.clock import fast_forward
from taskq.worker import Worker, WorkerConfig

T = TypeVar("T")

POLL_S = 0.005
DEFAULT_TIMEOUT_S = 60.0
GRACE_S = 5.0  # how long a drain that stops early (timeout, max_tasks) waits for a running task
_ENDS = frozenset({"before_ack", "before_retry", "before_dead"})  # one attempt's outcome each


class DrainTimeout(TaskqError, TimeoutError):
    """A drain did not finish in time (a task still running, or a queue paused)."""


class SyncDrainInEventLoop(TaskqError, RuntimeError):
    """``drain_sync`` (or ``Harness.drain_sync``/``status``) called inside a running event
    loop, where it would block the loop its own test runs on: ``await drain(...)`` there."""

    def __init__(self, call: str, instead: str) -> None:
        super().__init__(f"{call} cannot run inside a running event loop (an async test or "
                         f"async code): use `{instead}` there")


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What a drain did: runs and their outcomes, and the dead letters it wrote.

    ``processed``: attempts run (entries refused before running, such as ``invalid_args``,
    are not attempts but are counted in ``dead``); ``failed``: attempts that raised, each then
    ``retried`` or ``dead``; ``succeeded``: tasks that ended successfully; ``expired``: tasks
    not started before their expiry (finished without running, not attempts).
    """

    processed: int
    succeeded: int
    failed: int
    retried: int
    dead: int
    dead_letters: tuple[DeadEntry, ...]
    expired: int = 0

    @property
    def counts(self) -> dict[str, int]:
        """Outcomes by name: succeeded, retried, dead and expired."""
        return {"succeeded": self.succeeded, "retried": self.retried, "dead": self.dead,
                "expired": self.expired}

    def dead_reasons(self) -> dict[str, str]:
        """Each dead-lettered task id with its reason (``max_attempts``, ``invalid_args``...)."""
        return {d.task_id: d.reason for d in self.dead_letters}


class _Watch:
    """The worker's ``on_transition`` hook: counts finished attempts, keeps the first task
    exception (the hook runs while the runner handles it), and stops the worker when asked."""

    def __init__(self, max_tasks: int | None, raise_on_error: bool) -> None:
        self.max_tasks = max_tasks
        self.raise_on_error = raise_on_error
        self.ended = 0
        self.error: BaseException | None = None
        self.worker: Worker | None = None

    def __call__(self, transition: str) -> None:
        if transition not in _ENDS:
            return
        self.ended += 1
        if self.raise_on_error and self.error is None and transition != "before_ack":
            self.error = sys.exc_info()[1]  # None for an entry refused before it ran
            if self.error is not None:
                self._stop()
        if self.max_tasks is not None and self.ended >= self.max_tasks:
            self._stop()

    def _stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()


async def drain(
    tq: TaskQueue,
    *,
    queues: Iterable[str] | None = None,
    max_tasks: int | None = None,
    raise_on_error: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> DrainResult:
    """Run every task of ``queues`` (default: the queues of ``tq``'s tasks) that is ready, or
    delayed, or retried meanwhile, through the real worker, until none is left.

    ``max_tasks``: stop after that many attempts (or refused entries). ``raise_on_error``:
    stop at the first exception a task raises and raise it here (the attempt is still
    recorded as a failure, and retried or dead-lettered). Raises DrainTimeout after
    ``timeout_s``.
    """
    names = tuple(queues or tq.queues or (tq.default_queue,))
    keys = [tq.keys(lane) for q in names for lane in priority.lanes(q)]  # their priority lanes
    watch = _Watch(max_tasks, raise_on_error)
    worker = Worker(tq, _config(names), on_transition=watch)
    watch.worker = worker
    marks = await _dead_marks(tq, keys)
    run = asyncio.create_task(worker.run(), name="taskq-drain-worker")
    try:
        await _until_idle(tq, keys, worker, run, time.monotonic() + timeout_s)
    finally:
        worker.stop()
        await run  # the worker's own stop is bounded (taskq.cancelling)
    if watch.error is not None:
        raise watch.error
    c = worker.counters
    return DrainResult(processed=c.processed, succeeded=c.succeeded, failed=c.failed,
                       retried=c.retried, dead=c.dead,
                       dead_letters=await _dead_since(tq, keys, marks, worker.id),
                       expired=c.expired)


def drain_sync(
    tq: TaskQueue,
    *,
    queues: Iterable[str] | None = None,
    max_tasks: int | None = None,
    raise_on_error: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> DrainResult:
    """:func:`drain` for synchronous tests: it runs in an event loop of its own, whose
    connections it closes before returning. Inside a running event loop (an async test) it
    raises :class:`SyncDrainInEventLoop`: ``await drain(...)`` there."""
    return run_sync(tq, drain(tq, queues=queues, max_tasks=max_tasks,
                              raise_on_error=raise_on_error, timeout_s=timeout_s))


def _config(queues: tuple[str, ...]) -> WorkerConfig:
    """The worker's timings in a drain: one task at a time (in order, and ``max_tasks`` is
    exact), quick to notice new and due entries, quick to stop; leases long enough that
    nothing is reclaimed from under a slow test. Periodic schedules are neither synced nor
    fired (a test enqueues a schedule's message itself when it wants it run)."""
    return WorkerConfig(
        queues=queues, concurrency=1, prefetch=0, batch=1, block_ms=20, lease_ms=60_000,
        renew_every_ms=10_000, reclaim_every_ms=1_000, promote_every_ms=5,
        heartbeat_every_ms=60_000, flags_every_ms=100, grace_s=GRACE_S,
        name=f"taskq-drain-{secrets.token_hex(4)}", schedules=False,
        unknown_grace_s=0,  # no rolling deploy in a test: an unknown name is dead at once
    )


def run_sync(tq: TaskQueue, coro: Coroutine[Any, Any, T], *, call: str = "drain_sync()",
             instead: str = "await drain(...)") -> T:
    """Run ``coro`` (which uses ``tq``) in a new event loop, then close ``tq``'s connections
    of that loop (they would outlive it otherwise). Connections ``tq`` has in another loop
    (a TestClient's) are closed first: it then reconnects there when used again. Refused
    inside a running event loop (:class:`SyncDrainInEventLoop`)."""
    if _loop_running():
        coro.close()  # never awaited: no "coroutine was never awaited" warning
        raise SyncDrainInEventLoop(call, instead)
    tq.rebind(tq.url)

    async def _run() -> T:
        try:
            return await coro
        finally:
            await tq.aclose()

    return asyncio.run(_run())


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _until_idle(tq: TaskQueue, keys: list[QueueKeys], worker: Worker,
                      run: asyncio.Task[None], deadline: float) -> None:
    """Wait until nothing of ``keys`` is queued, running or delayed (fast-forwarding the
    delayed tasks whenever nothing else is left), or the worker stops."""
    while not worker.stopping and not run.done():
        queued, delayed = await _left(tq, keys)
        if queued == 0:
            if delayed == 0:
                return
            await fast_forward(tq.redis, keys)
        if time.monotonic() > deadline:
            raise DrainTimeout(f"drain still had {queued} queued or running and {delayed} "
                               f"delayed tasks after its timeout (a task still running, or "
                               f"a paused queue?)")
        await asyncio.sleep(POLL_S)
    if run.done():
        run.result()  # the worker's own failure, if it failed


async def _left(tq: TaskQueue, keys: list[QueueKeys]) -> tuple[int, int]:
    """Entries in the streams (queued or running: finished ones are deleted) and delayed
    tasks, read at one instant (the promote script moves tasks from one to the other)."""
    pipe = tq.redis.pipeline(transaction=True)
    for k in keys:
        pipe.xlen(k.stream)
        pipe.zcard(k.delayed)
    counts = await pipe.execute()
    return sum(counts[0::2]), sum(counts[1::2])


async def _dead_marks(tq: TaskQueue, keys: list[QueueKeys]) -> list[str]:
    """The last dead-letter id of each queue before the drain ("0" for none)."""
    pipe = tq.redis.pipeline(transaction=False)
    for k in keys:
        pipe.xrevrange(k.dead, count=1)
    return [_text(last[0][0]) if last else "0" for last in await pipe.execute()]


async def _dead_since(tq: TaskQueue, keys: list[QueueKeys], marks: list[str],
                      worker: str) -> tuple[DeadEntry, ...]:
    """The dead letters this drain's worker wrote, oldest first."""
    out: list[DeadEntry] = []
    for k, mark in zip(keys, marks, strict=True):
        for entry_id, fields in await tq.redis.xrange(k.dead, min=mark):
            if _text(entry_id) == mark:
                continue
            letter = deadletter.parse(fields)
            if letter.worker == worker:
                out.append(letter)
    return tuple(out)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
