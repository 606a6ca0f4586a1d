"""The Worker: wires the reader, ledger, runner, outcomes, completer and maintenance of one
worker, and runs them: connect, consume, stop, drain.

Flow: the reader takes batches from the queue streams through the consumer group into the
:mod:`ledger <taskq.worker.ledger>` (bounded by ``concurrency + prefetch`` entries held at once,
not counting finished ones waiting for their ack, up to as many again); the ledger starts the
:mod:`runner <taskq.worker.runner>` of each delivery as run slots free; the runner checks the
entry (:mod:`admission <taskq.worker.admission>`), runs it (:mod:`execution
<taskq.worker.execution>`) and hands its outcome to :mod:`outcomes <taskq.worker.outcomes>`:
completions are batched by the :mod:`completer <taskq.worker.completer>` (group commit),
retries and dead letters go one by one, each through an owner-checked script.
:mod:`Maintenance <taskq.worker.maintenance>` renews leases, reclaims dead consumers' entries,
promotes due delayed tasks, heartbeats and refreshes pause and cancel flags.

Shutdown (:meth:`Worker.stop`): the reader ends after its last read; what never started is
handed back at once; running tasks get ``grace_s``; those still running then are cancelled, their
outcome discarded and their entries handed back; the completer flushes the last acks; then the
loops end and the worker unregisters. Every step but the grace period is bounded in time, and
tasks are cancelled with :func:`~taskq.cancelling.cancel_and_wait` (a cancel swallowed by a
Redis call must not hang the shutdown); the maintenance loops renew leases to the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator

from taskq import lifecycle
from taskq.cancelling import bounded, cancel_and_wait
from taskq.connection import (
    FATAL,
    REDIS_ERRORS,
    check_permissions,
    check_server,
    fatal_config_error,
)
from taskq.errors import ConfigError, RedisFailure, RedisOutOfMemory, WorkerStartupError
from taskq.queue import TaskQueue
from taskq.taskmetrics import TaskMetrics
from taskq.worker.completer import Completer
from taskq.worker.config import WorkerConfig
from taskq.worker.context import Clock, Flags, OnTransition, WorkerContext
from taskq.worker.execution import Executors
from taskq.worker.ledger import Counters, Delivery, Ledger
from taskq.worker.limits import Limits
from taskq.worker.loopwatch import LoopWatch
from taskq.worker.maintenance import Maintenance
from taskq.worker.observe import tracing_parts
from taskq.worker.outcomes import Outcomes
from taskq.worker.publish import Publisher
from taskq.worker.reader import Reader
from taskq.worker.runner import Runner

log = logging.getLogger(__name__)

# Shutdown: after the grace period, each step gets a bounded time (a worker always exits in
# about grace_s + block_ms + the sum of these, even when Redis hangs or a cancel is swallowed).
READER_STOP_S = 2.0  # beyond block_ms, for the reader's last reply
STOP_TASKS_S = 2.0  # for cancelled tasks (late runners, loops) to end
RELEASE_S = 5.0  # to hand back what is left
ACK_WAIT_TRIES = 250  # times ACK_WAIT_S: for the completer to flush the last acks
ACK_WAIT_S = 0.02
UNREGISTER_S = 2.0
_START_ERRORS: tuple[type[Exception], ...] = (RedisOutOfMemory, *REDIS_ERRORS)
CONNECT_RETRY_MAX_S = 2.0  # the longest pause between two tries to reach Redis at start
CONNECT_LOG_EVERY_S = 30.0  # Redis still unreachable at start: logged again this often


class Worker:
    """Consumes ``config.queues`` of ``app`` until :meth:`stop` (graceful) is called.

    ``on_transition``: called with the name of each transition the worker is about to make
    (``after_read``, ``before_ack``, ``before_retry``, ``before_dead``); the fault suite uses it
    to kill the process there. Leave it out in production.
    """

    def __init__(self, app: TaskQueue, config: WorkerConfig | None = None, *,
                 on_transition: OnTransition | None = None) -> None:
        self.app = app
        self.config = config or WorkerConfig(queues=tuple(app.queues) or ("default",))
        host = socket.gethostname()
        self.id = self.config.name or f"{host}:{os.getpid()}:{secrets.token_hex(3)}"
        self.host = host
        self.keys = {q: app.keys(q) for q in self.config.queues}
        self.started_at = time.time()
        self.context = WorkerContext(self.id, host, self.started_at, self.config, self.keys,
                                     Clock(), Flags())
        self.ledger = Ledger(self.config)
        self.counters = self.ledger.counters
        cpu = os.cpu_count() or 2
        cpu_modules = tuple(sorted({t.fn.__module__ for t in app.registry.values()
                                    if t.options.cpu_bound}))
        self.executors = Executors(
            self.config.threads or min(64, self.config.concurrency),
            self.config.processes or cpu,
            cpu_modules,
        )
        # per-task metrics (served by metrics.py, published for the API) and, when the
        # TaskQueue is instrumented, tracing: decided here, once
        self.task_metrics = TaskMetrics(app.registry)
        self.publisher = Publisher(app, self.keys, self.task_metrics)
        attempts, observers = tracing_parts(app, self.id)
        self.outcomes = Outcomes(app, self.context, self.ledger, on_transition,
                                 observers=[self.task_metrics, *observers])
        self.runner = Runner(app, self.context, self.ledger, self.outcomes, self.executors,
                             on_transition, attempts, on_limit=self.stop)
        self.limits = Limits(app, self.context, self.ledger, self.stop)
        self.stop_reason: str | None = None
        self.ledger.runs(self.runner.process)
        self.reader = Reader(app, self.context, self.ledger, on_transition)
        self.completer = Completer(app, self.context, self.ledger)
        self.maintenance = Maintenance(app, self.context, self.ledger)
        self.loop_watch = LoopWatch(app, self.context, self.ledger)
        self._stopping = asyncio.Event()

    @property
    def held(self) -> dict[tuple[str, str], Delivery]:
        """The deliveries held now (running, prefetched, or waiting for their ack)."""
        return self.ledger.held

    @property
    def paused(self) -> set[str]:
        """The queues found paused at the last flags refresh."""
        return self.context.flags.paused

    @property
    def stopping(self) -> bool:
        return self.ledger.stopping

    def stop(self, reason: str | None = None) -> None:
        """Stop reading; running tasks get ``grace_s`` to finish; the rest is handed back.
        ``reason``: why the worker ends on its own (``--burst``, ``--max-tasks``, ...)."""
        if reason is not None and self.stop_reason is None and not self.ledger.stopping:
            self.stop_reason = reason
            log.info("worker %s stops: %s", self.id, reason)
        self.ledger.stop()
        self._stopping.set()

    async def run(self) -> None:
        log.info("worker %s connecting to Redis %s (queues %s)", self.id,
                 self.app.url_choice.describe(), ",".join(self.config.queues))
        if not await self._connect():
            log.info("worker %s stopped before Redis answered", self.id)
            return
        async with self._lifespan():
            self.loop_watch.start()
            loops = [
                asyncio.create_task(self.completer.run(), name="taskq-completer"),
                *(asyncio.create_task(c, name=n) for n, c in self.maintenance.loops()),
                asyncio.create_task(self.publisher.run(), name="taskq-task-metrics"),
                asyncio.create_task(self.loop_watch.beat(), name="taskq-loop-beat"),
            ]
            if cpu_bound(self.app):  # start the process pool now, not with the first task
                loops.append(asyncio.create_task(self._warm_pool(), name="taskq-pool-warm"))
            if self.limits.needed:
                loops.append(asyncio.create_task(self.limits.run(), name="taskq-limits"))
            reader = asyncio.create_task(self.reader.run(), name="taskq-reader")
            log.info("worker %s consuming %s on Redis %s (concurrency %d)", self.id,
                     ",".join(self.config.queues), self.app.url_choice.describe(),
                     self.config.concurrency)
            try:
                try:
                    await self._stopped_or_failed([reader, *loops])
                except ConfigError:
                    raise
                except Exception:  # a part failed (the reader: a refusal that cannot heal):
                    await self._drain(reader)  # the worker stops, handing back what it holds
                    raise
                await self._drain(reader)
            finally:
                await self._close(reader, loops)

    async def _warm_pool(self) -> None:
        try:
            await self.executors.warm()
        except Exception:  # (the first cpu_bound task tries again)
            log.exception("could not start the process pool for cpu_bound tasks")
        await self._stopping.wait()  # (a worker's part ends only when it stops)

    @contextlib.asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        """The app's worker lifespan around the worker's work: its startup before the first
        read (a failure raises WorkerStartupError: exit code 78), its shutdown after the
        drain (a failure is logged). See :mod:`taskq.lifecycle`."""
        if self.app.lifespan is None:
            yield
            return
        try:
            cm = lifecycle.as_context_manager(self.app.lifespan)
            self.runner.state = await cm.__aenter__()
        except Exception as exc:
            log.exception("the worker lifespan failed at startup")
            raise WorkerStartupError(
                f"the worker lifespan failed at startup: {type(exc).__name__}: {exc}") from exc
        try:
            yield
        finally:
            try:
                await cm.__aexit__(None, None, None)
            except Exception:
                log.exception("the worker lifespan failed at shutdown")

    async def _connect(self) -> bool:
        """Check Redis and prepare the queues, retrying until Redis answers (a failure is
        logged at once, then at most every CONNECT_LOG_EVERY_S). False: stopped first."""
        delay = 0.1
        began = time.monotonic()
        logged_at: float | None = None
        failures = 0
        while not self.stopping:
            try:
                await check_server(self.app.redis)
                await self.app.ensure_groups(self.config.queues)
                await self.maintenance.discover_lanes()
                await self.app.scripts.load()
                await check_permissions(self.app.scripts, list(self.keys.values()))
                await self.context.clock.sync(self.app.redis)
                if failures:
                    log.info("Redis answers after %.1f s (%d failed tries)",
                             time.monotonic() - began, failures)
                return True
            except FATAL as exc:  # a wrong password or a missing permission: retrying won't fix it
                raise fatal_config_error(exc) or exc from exc
            except _START_ERRORS as exc:
                # (out of memory: a new queue's stream and group need memory)
                failures += 1
                now = time.monotonic()
                if logged_at is None or now - logged_at >= CONNECT_LOG_EVERY_S:
                    logged_at = now
                    log.warning("cannot start consuming: %s; retrying every %.0f s or less "
                                "until it answers (%.0f s so far)", exc, CONNECT_RETRY_MAX_S,
                                now - began)
            await asyncio.sleep(delay)
            delay = min(delay * 2, CONNECT_RETRY_MAX_S)
        return False

    async def _stopped_or_failed(self, parts: list[asyncio.Task[None]]) -> None:
        """Wait until the worker is stopped, or one of its parts ended: that is a failure
        (e.g. a ConfigError for a refused password or permission), raised here."""
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            done, _ = await asyncio.wait([stopped, *parts], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        for part in done:
            if part is not stopped and not part.cancelled() and part.exception() is not None:
                self.stop()
                part.result()

    async def _drain(self, reader: asyncio.Task[None]) -> None:
        """Hand back what never started; give running tasks the grace period; hand back the
        rest. Every step but the grace period is bounded (see the module)."""
        ledger, outcomes = self.ledger, self.outcomes
        # the reader ends at its next reply (block_ms), unless Redis is slow to answer
        if not reader.done() and not await bounded(
                _awaited(reader), what="the reader's last read",
                timeout_s=self.config.block_ms / 1000 + READER_STOP_S):
            await cancel_and_wait([reader], timeout_s=STOP_TASKS_S, what="reader")
        # A runner that has not started sees `stopping` and returns (runners are never
        # cancelled before their first step: their `finally` keeps the run-slot count).
        await bounded(outcomes.release(ledger.unstarted()), timeout_s=RELEASE_S,
                      what="the hand-back")
        running = ledger.runners()
        late: list[Delivery] = []
        if running:
            log.info("waiting up to %.0f s for %d running tasks", self.config.grace_s, len(running))
            _, pending = await asyncio.wait(running, timeout=self.config.grace_s)
            if pending:
                late = ledger.abandon(pending)
                log.warning("grace period over: handing back %d running tasks", len(late))
                await cancel_and_wait(pending, timeout_s=STOP_TASKS_S, what="runner")
        # the late ones, and what was taken meanwhile (a reclaim answered after the stop)
        late += [d for d in ledger.unstarted() if all(d is not x for x in late)]
        if late:
            await bounded(outcomes.release(late), timeout_s=RELEASE_S, what="the hand-back")
        # let the completer flush the last acks
        for _ in range(ACK_WAIT_TRIES):
            if not ledger.acks_pending():
                break
            await asyncio.sleep(ACK_WAIT_S)
        else:
            log.warning("%d finished tasks still unacknowledged at shutdown: they run again "
                        "after their lease", ledger.acks_pending())

    async def _close(self, reader: asyncio.Task[None], loops: list[asyncio.Task[None]]) -> None:
        """Stop the reader, the completer and the maintenance loops for sure (each ends on its
        own too: a cancel swallowed by a Redis call must not hang the shutdown), unregister."""
        self.ledger.stop()
        self.completer.halt()
        self.maintenance.halt()
        self.loop_watch.halt()
        await cancel_and_wait([reader, *loops], timeout_s=STOP_TASKS_S, what="worker task")
        for t in (reader, *loops):  # retrieve their ends (errors are logged where they happen)
            if t.done() and not t.cancelled():
                t.exception()
        with contextlib.suppress(*REDIS_ERRORS, RedisFailure):
            await bounded(self.publisher.publish(), timeout_s=UNREGISTER_S,
                          what="publishing the last task metrics")
            await bounded(self.maintenance.unregister(), timeout_s=UNREGISTER_S,
                          what="unregistering")
        self.executors.shutdown()
        log.info("worker %s stopped: %s", self.id, summary(self.counters))


def cpu_bound(app: TaskQueue) -> bool:
    """Whether any task of ``app`` runs in the process pool."""
    return any(t.options.cpu_bound for t in app.registry.values())


def summary(c: Counters) -> str:
    """What a worker did, for its last line: attempts run, and how they ended; entries handed
    back unfinished (shutdown, paused queue) or deferred (unknown task) apart."""
    parts = [f"{c.succeeded} succeeded", f"{c.retried} retried", f"{c.dead} dead-lettered"]
    if c.expired:
        parts.append(f"{c.expired} expired")
    if c.handed_back:
        parts.append(f"{c.handed_back} handed back unfinished")
    if c.deferred:
        parts.append(f"{c.deferred} handed back as unknown tasks")
    if c.lost_leases:
        parts.append(f"{c.lost_leases} outcomes discarded (lease lost)")
    return f"{', '.join(parts)} ({c.processed} attempts started)"


async def _awaited(task: asyncio.Task[None]) -> None:
    """Wait for ``task`` to end (raising its error), without cancelling it when the wait is
    cut off."""
    await asyncio.shield(task)
