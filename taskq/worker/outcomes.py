"""Outcomes: how an attempt ends in Redis: finished (to the completer), retried, dead-lettered,
or handed back; the retry and dead-letter scripts are owner-checked, and retried through
connection errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from taskq import codec, ids
from taskq.codec import Message
from taskq.connection import REDIS_ERRORS
from taskq.deadletter import DeadEntry
from taskq.errors import DecodeError, RedisFailure, Retry
from taskq.queue import TaskQueue
from taskq.records import TaskStatus, encode_record
from taskq.scripts import StepEnd
from taskq.task import Task
from taskq.worker.context import OnTransition, WorkerContext
from taskq.worker.execution import ResultTooLarge, ResultUnencodable, unencodable
from taskq.worker.ledger import Delivery, Ledger
from taskq.worker.observe import Observer, combined
from taskq.worker.tasklog import task_log
from taskq.worker.texts import (
    LOG_LIMIT,
    error_text,
    for_log,
    storable,
    storable_tail,
)
from taskq.worker.unknown import UnknownNames
from taskq.worker.wakeup import wake_waiters
from taskq.workflow.failure import step_failure

log = logging.getLogger(__name__)

RELEASE_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, RedisFailure)


class Outcomes:
    """Writes the outcome of each delivery of one worker (see the module)."""

    def __init__(self, app: TaskQueue, context: WorkerContext, ledger: Ledger,
                 on_transition: OnTransition | None = None,
                 observers: Sequence[Observer] = ()) -> None:
        self.app = app
        self.id = context.id
        self.keys = context.keys
        self.ledger = ledger
        self.counters = ledger.counters
        self.on_transition = on_transition
        # the task log line (unless taskq.tasks logs no INFO), task metrics, tracing: chosen once
        self.observer = combined([task_log(), *observers])
        self.max_result_bytes = app.max_result_bytes
        self.unknown = UnknownNames(context.config.unknown_grace_s)

    def finish(self, d: Delivery, msg: Message, task: Task[Any, Any], status: TaskStatus,
               result: Any, flags: str, attempts: int, started: int | None = None) -> None:
        """Hand an owned entry to the completer (batched complete script). The delivery stays
        held (its lease renewed) until the completer has acked it. A delivery abandoned at
        the end of the grace period (and so handed back) keeps no outcome; one found lost goes
        on to the owner-checked script, which refuses it (and says so). Raises
        :class:`Unstorable` (nothing handed over) when ``result`` cannot be stored: not
        plain data, or larger than the TaskQueue's ``max_result_bytes``."""
        if d.abandoned:
            _discarded(d)
            return
        try:
            step = None
            if msg.workflow is not None:  # (workflow steps always have a task id: flags is set)
                step = StepEnd(msg.workflow, codec.pack(result))
            record = encode_record(
                status, task=msg.task, args=msg.args, kwargs=msg.kwargs, attempts=attempts,
                enqueued_ms=msg.enqueued_ms, started_ms=started,
                finished_ms=int(time.time() * 1000), result=result, worker=self.id,
                error=_ended_error(status, msg),
            )
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise ResultUnencodable(unencodable(result, exc)) from exc
        if len(record) > self.max_result_bytes:  # (the record holds the result and more)
            size = len(codec.pack(result))
            if size > self.max_result_bytes:
                raise ResultTooLarge(f"the task returned {size} bytes (encoded), more than "
                                     f"max_result_bytes ({self.max_result_bytes})")
        if msg.task_id is not None:
            flags += "e"
        if msg.options is not None and msg.options.key is not None:
            d.unique = (msg.options.key, msg.options.unique_for_ms)
        if step is not None:
            d.step = step
        d.record = record
        d.status = status
        d.flags = flags
        d.ttl_ms = self.ttl_ms(task)
        self.ledger.hand_over(d)
        if self.observer is not None:
            self.observer.ended(d.task_id, msg, d.queue, status._value_, "", attempts, started,
                                "", "")

    async def failed(self, d: Delivery, msg: Message, task: Task[Any, Any], exc: BaseException,
                     attempt: int, started: int, error: str | None = None) -> None:
        """The attempt raised ``exc``: retry it (owner-checked, atomic) or dead-letter it, as
        the task's retry policy says. ``error``: the text to store instead of the exception's
        own (bounded and made storable either way)."""
        if d.abandoned:
            _discarded(d)
            return
        self.counters.failed += 1
        policy = task.options.retry
        tb = storable_tail("".join(traceback.format_exception(exc)))
        if error is not None:
            error = storable(error)
        elif isinstance(exc, TimeoutError) and task.options.timeout_s is not None:
            error = f"timed out after {task.options.timeout_s:g} s"
        else:
            error = error_text(exc)
        retryable = isinstance(exc, Retry) or policy.should_retry(exc)
        if not retryable or attempt >= task.options.max_attempts:
            reason = "max_attempts" if retryable else "not_retryable"
            await self.dead(d, msg, reason, type(exc).__name__, error, tb, attempt, started)
            return
        if isinstance(exc, Retry) and exc.delay is not None:
            delay_s = max(0.0, exc.delay)
        else:
            delay_s = policy.backoff(attempt)
        keys = self.keys[d.queue]
        ttl = self.ttl_ms(task)
        record = encode_record(
            TaskStatus.FAILED, task=msg.task, args=msg.args, kwargs=msg.kwargs, attempts=attempt,
            enqueued_ms=msg.enqueued_ms, started_ms=started, finished_ms=int(time.time() * 1000),
            error_type=type(exc).__name__, error=error, traceback=tb, worker=self.id,
        )
        payload = codec.encode(msg.with_attempts(attempt, d.task_id))
        if self.on_transition is not None:
            self.on_transition("before_retry")
        due = await self._owned_call(d, lambda: self.app.scripts.retry(
            keys=keys, consumer=self.id, entry_id=d.entry_id, deliveries=d.deliveries,
            task_id=d.task_id, payload=payload, delay_ms=int(delay_s * 1000), record=record,
            ttl_ms=ttl, slot=d.slot,
        ))
        if due:
            if d.slot:
                await wake_waiters(self.app, self.keys, (d,))
            self.counters.retried += 1
            log.info("task %s failed (attempt %d/%d: %s); retry in %.2f s", d.task_id, attempt,
                     task.options.max_attempts, type(exc).__name__, delay_s,
                     extra={"task_id": d.task_id})
            if self.observer is not None:
                self.observer.ended(d.task_id, msg, d.queue, "retried", _retry_reason(exc, task),
                                    attempt, started, type(exc).__name__, error)

    async def dead(self, d: Delivery, msg: Message | None, reason: str, error_type: str,
                   error: str, tb: str = "", attempts: int | None = None,
                   started: int | None = None) -> None:
        """Dead-letter the entry with ``reason`` (owner-checked, atomic)."""
        if d.abandoned:
            _discarded(d)
            return
        keys = self.keys[d.queue]
        now = int(time.time() * 1000)
        error, tb = storable(error), storable_tail(tb)
        attempts = attempts if attempts is not None else (msg.attempts if msg else 0)
        task = msg.task if msg else ""
        record = encode_record(
            TaskStatus.DEAD, task=task or None, args=msg.args if msg else (),
            kwargs=msg.kwargs if msg else None, attempts=attempts,
            enqueued_ms=msg.enqueued_ms if msg else None, started_ms=started, finished_ms=now,
            error_type=error_type, error=storable(f"{reason}: {error}"),
            traceback=tb or None,
            worker=self.id,
        )
        letter = DeadEntry(
            task_id=d.task_id, entry=d.entry_id, task=task, reason=reason,
            error_type=error_type, error=error, traceback=tb, attempts=attempts,
            enqueued_ms=msg.enqueued_ms if msg else 0, failed_ms=now, worker=self.id,
            payload=d.payload or b"",
        ).bounded()
        step = msg.workflow if msg is not None else None
        wf: dict[str, Any] = {}  # a workflow step: its workflow fails in the same script
        if step is not None:
            wf = {"step": step,
                  "failure": step_failure(step, d.task_id, task, reason, error_type, error)}
        if self.on_transition is not None:
            self.on_transition("before_dead")
        extra: dict[str, Any] = {}
        if msg is not None and msg.options is not None and msg.options.key is not None:
            extra["unique"] = msg.options.key  # released in the same script
        dead = await self._owned_call(d, lambda: self.app.scripts.dead(
            keys=keys, consumer=self.id, entry_id=d.entry_id, deliveries=d.deliveries,
            task_id=d.task_id, record=record, ttl_ms=self.app.result_ttl_ms,
            dead_cap=self.app.dead_letter_cap, letter=letter, slot=d.slot, **extra, **wf,
        ), ran=started is not None)
        if dead:
            if d.slot:
                await wake_waiters(self.app, self.keys, (d,))
            self.counters.dead += 1
            log.warning("task %s dead-lettered (%s): %s", d.task_id, reason, for_log(error),
                        extra={"task_id": d.task_id})
            if self.observer is not None:
                self.observer.ended(d.task_id, msg, d.queue, "dead", reason, attempts, started,
                                    error_type, error)

    async def defer(self, d: Delivery, msg: Message, delay_ms: int) -> None:
        """Hand an entry naming an unknown task back for ``delay_ms`` (no attempt used), with
        the time it was first found unknown in its envelope (the deploy grace)."""
        if d.abandoned:
            _discarded(d)
            return
        # Jitter: workers' reads and promotions run on like periods, and Redis hands a new
        # entry to the reader blocked longest; a fixed delay could give it back to this same
        # worker every time while a worker that knows the name waits.
        delay_ms = int(delay_ms * random.uniform(0.5, 1.0))
        payload = codec.encode(msg.with_attempts(msg.attempts, d.task_id))
        due = await self._owned_call(d, lambda: self.app.scripts.defer(
            keys=self.keys[d.queue], consumer=self.id, entry_id=d.entry_id,
            deliveries=d.deliveries, task_id=d.task_id, payload=payload, delay_ms=delay_ms),
            ran=False)
        if due:
            self.counters.deferred += 1
            unknown = self.unknown
            name = msg.task[:LOG_LIMIT]  # (from a payload: bounded in the log)
            if unknown.due(name):
                since = msg.options.unknown_since_ms if msg.options is not None else None
                now_ms = due - delay_ms  # (Redis's clock, as the deploy grace)
                left_s = unknown.grace_s - ((now_ms - since) / 1000 if since is not None else 0)
                log.warning("%s", unknown.warning(name, left_s), extra={"task_id": d.task_id})
            log.debug("task %s names %r, unknown to worker %s: handed back for %.1f s (deploy "
                      "grace)", d.task_id, name, self.id, delay_ms / 1000,
                      extra={"task_id": d.task_id})
        self.ledger.drop(d)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Hand entries back to their stream unrun (paused queue, shutdown): they run again,
        with the attempts they had, under the id of their task (the one their envelope carries
        when they had moved already, e.g. handed back before)."""
        for d in deliveries:
            payload = d.payload or b""
            task_id = d.task_id or ids.task_id(d.queue, d.entry_id)
            with contextlib.suppress(DecodeError):
                msg = codec.decode(payload)
                task_id = d.task_id or ids.of_entry(d.queue, d.entry_id, msg.task_id)
                payload = codec.encode(msg.with_attempts(msg.attempts, task_id))
            try:
                released = await self.app.scripts.release(
                    keys=self.keys[d.queue], consumer=self.id, entry_id=d.entry_id,
                    deliveries=d.deliveries, task_id=task_id, payload=payload, slot=d.slot)
                if released:
                    self.counters.handed_back += 1
                if released and d.slot:
                    await wake_waiters(self.app, self.keys, (d,))
            except RELEASE_ERRORS as exc:  # (any refusal: the worker is shutting down)
                log.warning("could not hand back %s (%s); it returns after its lease", task_id, exc)
            self.ledger.drop(d)

    async def _owned_call(self, d: Delivery, call: Callable[[], Awaitable[Any]], *,
                          ran: bool = True) -> Any:
        """Run an owner-checked script, retrying through connection errors (the script is
        idempotent: once done, the owner check fails); a falsy answer means the lease was
        lost. After an attempt ran (``ran``) it gives up after about a minute: the entry then
        returns after its lease, its delivery rightly counted as a run. For an entry that did
        not run it never gives up while the entry is held (a returned entry's extra delivery
        would count as an attempt it never made); when the worker stops meanwhile it hands
        the entry back unrun."""
        delay = 0.05
        failures = 0
        while ran is False or failures < 80:
            try:
                r = await call()
            except REDIS_ERRORS as exc:
                failures += 1
                if ran:
                    log.warning("finishing %s failed (%s); retrying", d.task_id, exc)
                elif failures == 1 or failures % 30 == 0:  # (unbounded: not every time)
                    log.warning("handing back %s (not run) failed %d time(s) (%s); retrying "
                                "until Redis answers", d.task_id, failures, exc)
                if not ran and (d.lost or self.ledger.stopping):
                    if not d.lost:
                        await self.release([d])
                    return None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if not r:
                self.counters.lost_leases += 1
                log.warning("lease lost on %s: another worker owns it now; outcome discarded",
                            d.task_id, extra={"task_id": d.task_id})
            return r
        return None

    def ttl_ms(self, task: Task[Any, Any] | None) -> int:
        """How long the task's record is kept after its last change."""
        if task is not None and task.options.result_ttl_s is not None:
            return int(task.options.result_ttl_s * 1000)
        return self.app.result_ttl_ms


def _ended_error(status: TaskStatus, msg: Message) -> str | None:
    if status is TaskStatus.CANCELLED:
        return "cancelled"
    if status is TaskStatus.EXPIRED and msg.options is not None:
        return f"expired: not started before its expiry ({msg.options.expires_ms} ms)"
    return None


def _retry_reason(exc: BaseException, task: Task[Any, Any]) -> str:
    if isinstance(exc, Retry):
        return "retry_requested"
    if isinstance(exc, TimeoutError) and task.options.timeout_s is not None:
        return "timeout"
    return "error"


def _discarded(d: Delivery) -> None:
    log.info("outcome of %s discarded: it ran past the grace period and was handed back",
             d.task_id, extra={"task_id": d.task_id})
