"""The consume loop of one worker process.

Flow: a reader takes batches from the queue streams through the consumer group (bounded by
``concurrency + prefetch`` entries held at once, not counting finished ones waiting for their
ack, up to as many again); each entry becomes an asyncio task that waits
for a run slot, checks the entry (size, decoding, registered task, delivery count, arguments),
runs it and hands its outcome to one of three owner-checked scripts: completions are batched
(group commit) by the completer, retries and dead letters go one by one. Maintenance
(:mod:`taskq.maintenance`) renews leases, reclaims dead consumers' entries, promotes due delayed
tasks, heartbeats and refreshes pause and cancel flags.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import secrets
import socket
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from redis.exceptions import ResponseError

from taskq import codec, ids, maintenance
from taskq.codec import Message
from taskq.connection import REDIS_ERRORS, check_server
from taskq.context import TaskContext, set_context
from taskq.deadletter import DeadEntry
from taskq.errors import DecodeError, Retry, TaskValidationError
from taskq.execution import Executors, encode_result, invoke, is_plain_async
from taskq.keys import GROUP, QueueKeys
from taskq.lane import Lane
from taskq.queue import TaskQueue
from taskq.records import TaskStatus, bucket_key, bucket_of_entry, encode_record
from taskq.task import Task

log = logging.getLogger(__name__)

GROUP_COMMIT_MIN_RUNNING = 16
GROUP_COMMIT_WAIT_S = 0.002
CRASH_AT = os.environ.get("TASKQ_TEST_CRASH_AT", "")


def crashpoint(name: str) -> None:
    """Test-only: the fault suite sets TASKQ_TEST_CRASH_AT to die at one transition."""
    if name == CRASH_AT:
        os._exit(86)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """How a worker consumes. Times in ms unless named ``_s``."""

    queues: tuple[str, ...] = ("default",)
    concurrency: int = 100
    prefetch: int | None = None  # entries held beyond those running; default concurrency // 4
    batch: int = 200
    block_ms: int = 1_000
    lease_ms: int = 6_000
    renew_every_ms: int = 2_000
    reclaim_every_ms: int = 1_000
    promote_every_ms: int = 100
    heartbeat_every_ms: int = 2_000
    flags_every_ms: int = 500
    grace_s: float = 25.0
    threads: int | None = None
    processes: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.queues:
            raise ValueError("a worker needs at least one queue")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.renew_every_ms * 2 >= self.lease_ms:
            raise ValueError("leases must be renewed at least twice per lease period")

    @property
    def capacity(self) -> int:
        prefetch = self.prefetch if self.prefetch is not None else max(1, self.concurrency // 4)
        return self.concurrency + prefetch


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
    cancel: bool = False
    acking: bool = False  # handed to the completer; it drops the delivery once acked
    ctx: TaskContext | None = None
    runner: asyncio.Task[None] | None = field(default=None, repr=False)
    # set when the outcome is handed to the completer (a Completable for the complete script)
    bucket_key: str = ""
    status: str = ""
    record: bytes = b""
    flags: str = ""
    ttl_ms: int = 0


@dataclass(slots=True)
class Counters:
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead: int = 0
    lost_leases: int = 0
    reclaimed: int = 0


class _Ready(NamedTuple):
    """An entry that passed its checks: what its run needs."""

    msg: Message
    task: Task[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    attempt: int


class _Refusal(NamedTuple):
    """An entry that cannot run: it goes to the dead letters with this reason."""

    msg: Message | None
    reason: str
    error_type: str
    error: str
    attempts: int | None = None


class Worker:
    """Consumes ``config.queues`` of ``app`` until :meth:`stop` (graceful) is called."""

    def __init__(self, app: TaskQueue, config: WorkerConfig | None = None) -> None:
        self.app = app
        self.config = config or WorkerConfig(queues=tuple(app.queues) or ("default",))
        host = socket.gethostname()
        self.id = self.config.name or f"{host}:{os.getpid()}:{secrets.token_hex(3)}"
        self.host = host
        self.keys = {q: app.keys(q) for q in self.config.queues}
        self.held: dict[tuple[str, str], Delivery] = {}
        self.counters = Counters()
        self.paused: set[str] = set()
        self.cancels: set[str] = set()
        self.started_at = time.time()
        self.clock_offset_ms = 0
        self.forgot_consumers_at = time.monotonic()
        self._stopping = asyncio.Event()
        self._stop = False  # the same as _stopping, read on the hot path
        self._room = asyncio.Event()
        self._running = 0  # deliveries with a runner (at most config.concurrency)
        self._waiting: collections.deque[Delivery] = collections.deque()  # read, no runner yet
        self._done: list[Delivery] = []
        self._acking = 0  # held deliveries handed to the completer (finished, not yet acked)
        self._read_threshold = max(1, min(self.config.batch, self.config.capacity // 2))
        self._done_ready = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of run()
        cpu = os.cpu_count() or 2
        self.executors = Executors(
            self.config.threads or min(64, self.config.concurrency),
            self.config.processes or cpu,
        )

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stop

    def stop(self) -> None:
        """Stop reading; running tasks get ``grace_s`` to finish; the rest is handed back."""
        self._stop = True
        self._stopping.set()
        self._room.set()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._connect()
        loops = [
            asyncio.create_task(self._completer(), name="taskq-completer"),
            *(asyncio.create_task(c, name=n) for n, c in maintenance.loops(self)),
        ]
        reader = asyncio.create_task(self._reader(), name="taskq-reader")
        log.info("worker %s consuming %s (concurrency %d)", self.id,
                 ",".join(self.config.queues), self.config.concurrency)
        try:
            await self._stopping.wait()
            await reader
            await self._drain()
        finally:
            reader.cancel()
            for t in loops:
                t.cancel()
            await asyncio.gather(reader, *loops, return_exceptions=True)
            with contextlib.suppress(*REDIS_ERRORS):
                await maintenance.unregister(self)
            self.executors.shutdown()
            log.info("worker %s stopped: %d processed", self.id, self.counters.processed)

    async def _connect(self) -> None:
        delay = 0.1
        while not self.stopping:
            try:
                await check_server(self.app.redis)
                await self.app.ensure_groups(self.config.queues)
                await self.app.scripts.load()
                await self.sync_clock()
                return
            except REDIS_ERRORS as exc:
                log.warning("Redis unreachable (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def sync_clock(self) -> None:
        sec, usec = await self.app.redis.time()
        self.clock_offset_ms = int(sec) * 1000 + int(usec) // 1000 - int(time.time() * 1000)

    def redis_now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    async def _drain(self) -> None:
        """Hand back what never started; give running tasks the grace period; hand back the rest."""
        self._waiting.clear()
        # A runner that has not started sees `stopping` and returns (runners are never
        # cancelled before their first step: their `finally` keeps the run-slot count).
        waiting = [d for d in self.held.values() if not d.started]
        await self._release_all(waiting)
        running = [d.runner for d in self.held.values() if d.runner is not None]
        if running:
            log.info("waiting up to %.0f s for %d running tasks", self.config.grace_s, len(running))
            _, pending = await asyncio.wait(running, timeout=self.config.grace_s)
            if pending:
                late = [d for d in self.held.values() if d.runner in pending]
                log.warning("grace period over: handing back %d running tasks", len(late))
                for d in late:
                    d.lost = True  # the attempt's outcome is discarded from now on
                    if d.runner is not None:
                        d.runner.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                await self._release_all(late)
        # let the completer flush the last acks
        for _ in range(250):
            if not self._done and not self._acking:
                break
            await asyncio.sleep(0.02)
        else:
            log.warning("%d finished tasks still unacknowledged at shutdown: they run again "
                        "after their lease", self._acking)

    async def _release_all(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            payload = d.payload or b""
            task_id = d.task_id or ids.task_id(d.queue, d.entry_id)
            with contextlib.suppress(DecodeError):
                msg = codec.decode(payload)
                payload = codec.encode(msg.with_attempts(msg.attempts, task_id))
            try:
                await self.app.scripts.release(self.keys[d.queue], self.id, d.entry_id,
                                               d.deliveries, task_id, payload)
            except REDIS_ERRORS as exc:
                log.warning("could not hand back %s (%s); it returns after its lease", task_id, exc)
            self.held.pop((d.queue, d.entry_id), None)

    # -- reading ---------------------------------------------------------------------------

    async def _reader(self) -> None:
        # Reads go over a lane of their own (see taskq.lane): hiredis parses the reply into
        # plain lists, and a blocking read never holds up the scripts on the shared lane.
        lane = Lane(self.app.redis, blocking_s=self.config.block_ms / 1000)
        try:
            await self._read_loop(lane)
        finally:
            await lane.aclose()

    def _read_room(self) -> int:
        """Entries the reader may take now. Finished entries waiting for their ack leave room
        already (up to the capacity again, so stalled acks still stop the reads): waiting for
        the group commit's round trip before reading would leave the run slots idle."""
        cap = self.config.capacity
        return cap - len(self.held) + min(self._acking, cap)

    async def _read_loop(self, lane: Lane) -> None:
        delay = 0.05
        # Read again once there is room for a worthwhile batch (or nothing is held, so an idle
        # worker answers at once): small reads would cost a round trip per task under load.
        threshold = self._read_threshold
        while not self.stopping:
            room = self._read_room()
            if room < threshold and self.held:
                self._room.clear()
                await self._room.wait()
                continue
            streams = [k.stream for q, k in self.keys.items() if q not in self.paused]
            if not streams:
                await asyncio.sleep(self.config.flags_every_ms / 1000)
                continue
            try:
                resp = await lane.execute(
                    "XREADGROUP", "GROUP", GROUP, self.id, "COUNT", min(room, self.config.batch),
                    "BLOCK", self.config.block_ms, "STREAMS", *streams, *(">",) * len(streams),
                )
                delay = 0.05
            except ResponseError as exc:
                if "NOGROUP" in str(exc) or "no longer exists" in str(exc):
                    log.error("the stream or consumer group of %s vanished (Redis restarted "
                              "without persistence, or the stream was deleted): tasks queued "
                              "before it are gone; recreating consumer groups",
                              ",".join(self.config.queues))
                else:
                    log.warning("read refused (%s); recreating consumer groups", exc)
                with contextlib.suppress(*REDIS_ERRORS, ResponseError):
                    await self.app.ensure_groups(self.config.queues)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            except REDIS_ERRORS as exc:
                log.warning("read failed (%s: %s); retrying in %.2f s",
                            type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if CRASH_AT:
                crashpoint("after_read")
            for stream, entries in (resp.items() if isinstance(resp, dict) else resp or ()):
                queue = self._queue_of_stream(stream)
                for entry_id, fields in entries:
                    self.accept(queue, entry_id.decode(), _payload(fields), 1)

    def _queue_of_stream(self, stream: bytes | str) -> str:
        name = stream.decode() if isinstance(stream, bytes) else stream
        for q, k in self.keys.items():
            if k.stream == name:
                return q
        raise LookupError(name)

    def accept(self, queue: str, entry_id: str, payload: bytes | None, deliveries: int) -> None:
        """Take an entry delivered to (or reclaimed by) this worker."""
        key = (queue, entry_id)
        held = self.held.get(key)
        if held is not None:  # reclaimed our own entry (renewal stalled): new fencing token
            held.deliveries = deliveries
            return
        d = Delivery(queue, entry_id, deliveries, payload)
        self.held[key] = d
        if self._running < self.config.concurrency:
            self._running += 1
            d.runner = self._spawn(self._process(d))
        else:
            self._waiting.append(d)

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
        waiting = self._waiting
        while waiting and self._running < self.config.concurrency and not self._stop:
            d = waiting.popleft()
            if d.lost or self.held.get((d.queue, d.entry_id)) is not d:
                continue
            self._running += 1
            d.runner = self._spawn(self._process(d))

    # -- processing -----------------------------------------------------------------------

    async def _process(self, d: Delivery) -> None:
        try:
            if d.lost or self._stop:
                return
            if d.queue in self.paused:  # paused after it was read: hand it back
                await self._release_all([d])
                return
            d.started = True
            checked = self._check(d)
            if type(checked) is _Ready:
                await self._run(d, *checked)
            elif type(checked) is _Refusal:
                await self._dead(d, checked.msg, checked.reason, checked.error_type,
                                 checked.error, attempts=checked.attempts)
        except asyncio.CancelledError:
            if not (self._stop or d.lost):
                raise
        except Exception:  # a bug here must never kill the worker or lose the entry
            log.exception("internal error on entry %s of %s; it will be retried after its lease",
                          d.entry_id, d.queue)
        finally:
            self._running -= 1
            key = (d.queue, d.entry_id)
            if not d.acking and (not self._stop or d.started) and self.held.get(key) is d:
                del self.held[key]
                self._room.set()
            if self._waiting:
                self._start_waiting()

    def _check(self, d: Delivery) -> _Ready | _Refusal | None:
        """Everything decided before a run: the entry's checks, in order (no I/O). None when
        the task was cancelled before it ran (its outcome is handed to the completer)."""
        app = self.app
        d.task_id = ids.task_id(d.queue, d.entry_id)
        payload = d.payload
        if payload is None:
            return _Refusal(None, "decode_error", "DecodeError", "entry has no 'm' field")
        if len(payload) > app.max_payload_bytes:
            return _Refusal(None, "payload_too_large", "PayloadTooLarge",
                            f"{len(payload)} bytes > limit {app.max_payload_bytes}")
        try:
            msg = codec.decode(payload)
        except DecodeError as exc:
            return _Refusal(None, "decode_error", "DecodeError", str(exc))
        if msg.task_id is not None:
            if ids.split(msg.task_id)[0] != d.queue:
                return _Refusal(None, "decode_error", "DecodeError",
                                f"task id {msg.task_id!r} belongs to another queue")
            d.task_id = msg.task_id
        task = app.registry.get(msg.task)
        if task is None:
            return _Refusal(msg, "unknown_task", "TaskNotRegistered",
                            f"task {msg.task!r} is not registered with this worker")
        runs_before = msg.attempts + d.deliveries - 1
        if runs_before >= task.options.max_attempts:
            return _Refusal(msg, "worker_lost", "WorkerLost",
                            f"its worker was lost during {d.deliveries - 1} deliveries; "
                            f"{runs_before} of {task.options.max_attempts} attempts used",
                            runs_before)
        if d.task_id in self.cancels:
            self._finish(d, msg, task, TaskStatus.CANCELLED, None, "c", runs_before)
            return None
        try:
            args, kwargs = task.signature.for_call(msg.args, msg.kwargs)
        except TaskValidationError as exc:
            return _Refusal(msg, "invalid_args", "TaskValidationError", str(exc))
        return _Ready(msg, task, args, kwargs, runs_before + 1)

    async def _run(self, d: Delivery, msg: Message, task: Task[Any, Any], args: tuple[Any, ...],
                   kwargs: dict[str, Any], attempt: int) -> None:
        ctx = TaskContext(d.task_id, task.name, d.queue, attempt, task.options.max_attempts,
                          self.id, self._progress)
        d.ctx = ctx
        started = int(time.time() * 1000)
        self.counters.processed += 1
        try:
            if is_plain_async(task):  # the common case, without a coroutine in between
                set_context(ctx)
                value = await task.fn(*args, **kwargs)
            else:
                value = await invoke(task, args, kwargs, ctx, self.executors)
            result = encode_result(value)
        except asyncio.CancelledError:
            if d.cancel and not self.stopping:
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                self._finish(d, msg, task, TaskStatus.CANCELLED, None, "c", attempt, started)
                return
            raise
        except Exception as exc:
            if d.cancel:
                self._finish(d, msg, task, TaskStatus.CANCELLED, None, "c", attempt, started)
                return
            if "BrokenProcessPool" in type(exc).__name__:
                self.executors.reset_pool()
            await self._failed(d, msg, task, exc, attempt, started)
            return
        if d.cancel:  # a sync task flagged while running: its result is discarded
            self._finish(d, msg, task, TaskStatus.CANCELLED, None, "c", attempt, started)
            return
        if CRASH_AT:
            crashpoint("before_ack")
        flags = "c" if d.task_id in self.cancels else ""  # asked too late: clear the request
        self._finish(d, msg, task, TaskStatus.SUCCEEDED, result, flags, attempt, started)

    async def _failed(self, d: Delivery, msg: Message, task: Task[Any, Any], exc: Exception,
                      attempt: int, started: int) -> None:
        self.counters.failed += 1
        policy = task.options.retry
        tb = "".join(traceback.format_exception(exc))
        if isinstance(exc, TimeoutError) and task.options.timeout_s is not None:
            error = f"timed out after {task.options.timeout_s:g} s"
        else:
            error = str(exc) or type(exc).__name__
        retryable = isinstance(exc, Retry) or policy.should_retry(exc)
        if not retryable or attempt >= task.options.max_attempts:
            reason = "max_attempts" if retryable else "not_retryable"
            await self._dead(d, msg, reason, type(exc).__name__, error, tb, attempt, started)
            return
        if isinstance(exc, Retry) and exc.delay is not None:
            delay_s = max(0.0, exc.delay)
        else:
            delay_s = policy.backoff(attempt)
        keys = self.keys[d.queue]
        ttl = self._ttl_ms(task)
        record = encode_record(
            TaskStatus.FAILED, task=msg.task, args=msg.args, kwargs=msg.kwargs, attempts=attempt,
            enqueued_ms=msg.enqueued_ms, started_ms=started, finished_ms=int(time.time() * 1000),
            error_type=type(exc).__name__, error=error, traceback=tb, worker=self.id,
        )
        payload = codec.encode(msg.with_attempts(attempt, d.task_id))
        crashpoint("before_retry")
        due = await self._owned_call(d, lambda: self.app.scripts.retry(
            keys, self.id, d.entry_id, d.deliveries, d.task_id, payload, int(delay_s * 1000),
            bucket_key(keys, d.task_id), record, ttl, keys.events,
        ))
        if due:
            self.counters.retried += 1
            log.info("task %s failed (attempt %d/%d: %s); retry in %.2f s", d.task_id, attempt,
                     task.options.max_attempts, type(exc).__name__, delay_s,
                     extra={"task_id": d.task_id})

    async def _dead(self, d: Delivery, msg: Message | None, reason: str, error_type: str,
                    error: str, tb: str = "", attempts: int | None = None,
                    started: int | None = None) -> None:
        keys = self.keys[d.queue]
        now = int(time.time() * 1000)
        attempts = attempts if attempts is not None else (msg.attempts if msg else 0)
        task = msg.task if msg else ""
        record = encode_record(
            TaskStatus.DEAD, task=task or None, args=msg.args if msg else (),
            kwargs=msg.kwargs if msg else None, attempts=attempts,
            enqueued_ms=msg.enqueued_ms if msg else None, started_ms=started, finished_ms=now,
            error_type=error_type, error=f"{reason}: {error}", traceback=tb or None,
            worker=self.id,
        )
        fields = DeadEntry(
            task_id=d.task_id, entry=d.entry_id, task=task, reason=reason,
            error_type=error_type, error=error, traceback=tb, attempts=attempts,
            enqueued_ms=msg.enqueued_ms if msg else 0, failed_ms=now, worker=self.id,
            payload=d.payload or b"",
        ).fields()
        crashpoint("before_dead")
        dead = await self._owned_call(d, lambda: self.app.scripts.dead(
            keys, self.id, d.entry_id, d.deliveries, d.task_id, bucket_key(keys, d.task_id),
            record, self.app.result_ttl_ms, keys.events, self.app.dead_letter_cap, fields,
        ))
        if dead:
            self.counters.dead += 1
            log.warning("task %s dead-lettered (%s): %s", d.task_id, reason, error[:200],
                        extra={"task_id": d.task_id})

    async def _owned_call(self, d: Delivery, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run an owner-checked script, retrying through connection errors (the script is
        idempotent: once done, the owner check fails); a falsy answer means the lease was
        lost. Gives up after about a minute: the entry then returns after its lease."""
        delay = 0.05
        for _ in range(80):
            try:
                r = await call()
            except REDIS_ERRORS as exc:
                log.warning("finishing %s failed (%s); retrying", d.task_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if not r:
                self.counters.lost_leases += 1
                log.warning("lease lost on %s: another worker owns it now; outcome discarded",
                            d.task_id, extra={"task_id": d.task_id})
            return r
        return None

    def _ttl_ms(self, task: Task[Any, Any] | None) -> int:
        if task is not None and task.options.result_ttl_s is not None:
            return int(task.options.result_ttl_s * 1000)
        return self.app.result_ttl_ms

    def _finish(self, d: Delivery, msg: Message, task: Task[Any, Any], status: TaskStatus,
                result: Any, flags: str, attempts: int, started: int | None = None) -> None:
        """Hand an owned entry to the completer (batched complete script). The delivery stays
        held (its lease renewed) until the completer has acked it."""
        if msg.task_id is not None:
            flags += "e"
        d.record = encode_record(
            status, task=msg.task, args=msg.args, kwargs=msg.kwargs, attempts=attempts,
            enqueued_ms=msg.enqueued_ms, started_ms=started, finished_ms=int(time.time() * 1000),
            result=result, worker=self.id,
            error="cancelled" if status is TaskStatus.CANCELLED else None,
        )
        keys = self.keys[d.queue]
        d.bucket_key = (bucket_of_entry(keys, d.entry_id) if msg.task_id is None
                        else bucket_key(keys, d.task_id))
        d.status = status._value_
        d.flags = flags
        d.ttl_ms = self._ttl_ms(task)
        d.acking = True
        self._acking += 1
        self._done.append(d)
        if len(self._done) == 1:
            self._done_ready.set()
        if self._read_room() >= self._read_threshold:
            self._room.set()  # (the reader may be waiting for room)

    async def _completer(self) -> None:
        """Group commit: one complete script per queue for everything finished meanwhile."""
        while True:
            await self._done_ready.wait()
            # Group commit: when many tasks are running, wait a moment so that those about to
            # finish share the script call; when few are, flush at once (latency first).
            if len(self.held) - len(self._done) >= GROUP_COMMIT_MIN_RUNNING:
                await asyncio.sleep(GROUP_COMMIT_WAIT_S)
            else:
                for _ in range(3):
                    await asyncio.sleep(0)
            self._done_ready.clear()
            batch, self._done = self._done, []
            first = batch[0]
            if all(d.queue == first.queue and d.ttl_ms == first.ttl_ms for d in batch):
                await self._complete_group(self.keys[first.queue], first.ttl_ms, batch)
                continue
            groups: dict[tuple[str, int], list[Delivery]] = {}
            for d in batch:
                groups.setdefault((d.queue, d.ttl_ms), []).append(d)
            for (queue, ttl), items in groups.items():
                await self._complete_group(self.keys[queue], ttl, items)

    async def _complete_group(self, keys: QueueKeys, ttl: int, items: list[Delivery]) -> None:
        minute = self.redis_now_ms() // 60_000
        delay = 0.05
        refused = 0
        while True:
            try:
                lost = await self.app.scripts.complete(
                    keys, self.id, items, keys.done_minute(minute), ttl, keys.events,
                    len(self.held) + len(items) + 16,
                )
                break
            except REDIS_ERRORS as exc:
                log.warning("ack of %d tasks failed (%s); retrying", len(items), exc)
            except Exception:  # a refused script must not stop every later ack
                refused += 1
                log.exception("ack of %d tasks refused by Redis", len(items))
                if refused >= 5:  # give up: the entries return after their lease
                    lost = [d.entry_id for d in items]
                    break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        held = self.held
        lost_set = set(lost)
        self._acking -= len(items)
        for d in items:
            if lost_set and d.entry_id in lost_set:
                self.counters.lost_leases += 1
                log.warning("lease lost on %s: another worker owns it now; outcome discarded",
                            d.task_id, extra={"task_id": d.task_id})
            elif d.status == "succeeded":
                self.counters.succeeded += 1
            key = (d.queue, d.entry_id)
            if held.get(key) is d:
                del held[key]
        self._room.set()

    async def _progress(self, queue: str, task_id: str, fraction: float, message: str) -> None:
        keys = self.keys.get(queue) or self.app.keys(queue)
        bucket = bucket_key(keys, task_id)
        pipe = self.app.redis.pipeline(transaction=False)
        pipe.hset(bucket, task_id + ":p", codec.pack({"p": fraction, "m": message}))  # type: ignore[arg-type]
        pipe.pexpire(bucket, self.app.result_ttl_ms, gt=True)
        pipe.publish(keys.events, _progress_event(task_id, fraction, message))
        with contextlib.suppress(*REDIS_ERRORS):
            await pipe.execute()


def _payload(fields: list[bytes] | None) -> bytes | None:
    """The envelope among an entry's fields (a flat name, value list; taskq writes only it)."""
    if not fields:
        return None
    if fields[0] == codec.FIELD:
        return fields[1] if len(fields) > 1 else None
    for k in range(2, len(fields) - 1, 2):
        if fields[k] == codec.FIELD:
            return fields[k + 1]
    return None


def _progress_event(task_id: str, fraction: float, message: str) -> str:
    return json.dumps([[task_id, "running", {"progress": fraction, "message": message}]])
