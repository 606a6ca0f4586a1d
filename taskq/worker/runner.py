"""The runner: takes one delivery from admission through its attempt to its outcome (the
coroutine the ledger starts for each delivery it gives a run slot)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from taskq import cluster, codec
from taskq.connection import REDIS_ERRORS
from taskq.context import TaskContext, set_context
from taskq.lifecycle import TaskOutcome, run_after, run_before
from taskq.limits import with_concurrency_key
from taskq.queue import TaskQueue
from taskq.records import TaskStatus, bucket_key
from taskq.worker.admission import Cancelled, Deferred, Expired, Ready, Refused, admit
from taskq.worker.context import OnTransition, WorkerContext
from taskq.worker.execution import (
    Executors,
    PoolRecycled,
    Unstorable,
    encode_result,
    invoke,
    is_plain_async,
)
from taskq.worker.ledger import Delivery, Ledger
from taskq.worker.limiter import Limiter
from taskq.worker.observe import Attempts
from taskq.worker.outcomes import Outcomes
from taskq.worker.texts import PROGRESS_LIMIT, storable

log = logging.getLogger(__name__)

_SELF_CANCELLED = ("the task raised asyncio.CancelledError itself (not a taskq cancel or "
                   "timeout)")


class Runner:
    """Runs the deliveries of one worker (see the module)."""

    def __init__(self, app: TaskQueue, context: WorkerContext, ledger: Ledger,
                 outcomes: Outcomes, executors: Executors,
                 on_transition: OnTransition | None = None,
                 attempts: Attempts | None = None,
                 on_limit: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.state: Any = None  # what the worker lifespan yielded
        self._hooks = app.task_hooks
        self._now_ms = context.clock.now_ms
        self._unknown_grace_ms = int(context.config.unknown_grace_s * 1000)
        self._max_tasks = context.config.max_tasks or 0  # 0: no limit (processed is >= 1)
        self._on_limit = on_limit
        self.id = context.id
        self.keys = context.keys
        self.flags = context.flags
        self.ledger = ledger
        self.counters = ledger.counters
        self.executors = executors
        self.on_transition = on_transition
        self._attempts = attempts  # tracing: wraps each attempt (None: not traced)
        # one attempt: with the app's task hooks around it when it has any (chosen once)
        self._run_one = self._run_hooked if self._hooks else self._run
        self._registry = app.registry
        self._max_payload = app.max_payload_bytes
        # bound once: called per task
        self._finish = outcomes.finish
        self._failed = outcomes.failed
        self._dead = outcomes.dead
        self._release = outcomes.release
        self._defer = outcomes.defer
        self._runner_ended = ledger.runner_ended
        self._limiter = Limiter(app, context, ledger, outcomes)

    async def process(self, d: Delivery) -> None:
        ledger = self.ledger
        try:
            if d.lost or ledger.stopping:
                return
            if d.queue in self.flags.paused:  # paused after it was read: hand it back
                await self._release([d])
                return
            d.started = True
            checked = admit(d.queue, d.entry_id, d.deliveries, d.payload, self._registry,
                            self._max_payload, self.flags.cancels, self._now_ms,
                            self._unknown_grace_ms)
            d.task_id = checked.task_id
            if type(checked) is Ready:
                limits = checked.task.options.limits
                sent = checked.msg.options  # (None for a message sent without options)
                if sent is not None and sent.concurrency_key is not None:
                    limits = with_concurrency_key(limits, sent.concurrency_key)
                if limits is not None and not await self._limiter.admit(d, checked, limits):
                    return  # it waits (rate or concurrency limit): handed back delayed
                if self._attempts is None:
                    await self._run_one(d, checked)
                else:
                    await self._attempts.run(d, checked, self._run_one)
            elif type(checked) is Refused:
                dead = self._dead(d, checked.msg, checked.reason, checked.error_type,
                                  checked.error, attempts=checked.attempts)
                if self._attempts is None:
                    await dead
                else:
                    await self._attempts.refused(d, checked, dead)
            elif type(checked) is Cancelled:
                self._finish(d, checked.msg, checked.task, TaskStatus.CANCELLED, None, "c",
                             checked.attempts)
            elif type(checked) is Expired:
                self._expired(d, checked)
            elif type(checked) is Deferred:
                await self._defer(d, checked.msg, checked.delay_ms)
        except asyncio.CancelledError:
            if not (ledger.stopping or d.lost):
                raise
        except Exception:  # a bug here must never kill the worker or lose the entry
            log.exception("internal error on entry %s of %s; it will be retried after its lease",
                          d.entry_id, d.queue)
        finally:
            self._runner_ended(d)

    async def _run(self, d: Delivery, ready: Ready) -> None:
        _, msg, task, args, kwargs, attempt = ready
        ctx = TaskContext(d.task_id, task.name, d.queue, attempt, task.options.max_attempts,
                          self.id, self._progress, state=self.state)
        if msg.scheduled_ms is not None:  # a periodic schedule's task: the tick it runs for
            ctx.scheduled_ms, ctx.scheduled_tz = msg.scheduled_ms, msg.scheduled_tz
        d.ctx = ctx
        started = int(time.time() * 1000)
        self.counters.processed += 1
        if self.counters.processed == self._max_tasks and self._on_limit is not None:
            self._on_limit(f"ran {self._max_tasks} tasks (--max-tasks)")
        if self._hooks:
            run_before(self._hooks, ctx)
        try:
            if is_plain_async(task):  # the common case, without a coroutine in between
                set_context(ctx)
                value = await task.fn(*args, **kwargs)
            else:
                value = await invoke(task, args, kwargs, ctx, self.executors)
        except asyncio.CancelledError as exc:
            if d.cancel and not self.ledger.stopping:
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                self._finish(d, msg, task, TaskStatus.CANCELLED, None, "c", attempt, started)
                return
            current = asyncio.current_task()
            if current is None or current.cancelling():
                raise  # taskq's own: shutdown, a lost lease
            await self._self_cancelled(d, ready, exc, started)  # nobody cancelled this runner
            return
        except GeneratorExit:  # (this coroutine is being closed: not the task's outcome)
            raise
        except BaseException as exc:
            # Whatever the task raised ends its attempt, never the worker: a SystemExit(78)
            # from task code is not the worker's configuration failure.
            if d.cancel:
                self._finish(d, msg, task, TaskStatus.CANCELLED, None, "c", attempt, started)
                return
            if type(exc) is PoolRecycled:  # killed for another task's timeout: not its fault
                await self._release([d])  # handed back, no attempt used
                return
            if "BrokenProcessPool" in type(exc).__name__:
                self.executors.reset_pool()
            d.error = exc
            await self._failed(d, msg, task, exc, attempt, started)
            return
        if d.cancel:  # a sync task flagged while running: its result is discarded
            self._finish(d, msg, task, TaskStatus.CANCELLED, None, "c", attempt, started)
            return
        if self.on_transition is not None:
            self.on_transition("before_ack")
        flags = "c" if d.task_id in self.flags.cancels else ""  # asked too late: clear it
        try:
            self._finish(d, msg, task, TaskStatus.SUCCEEDED, encode_result(value), flags,
                         attempt, started)
        except Unstorable as exc:  # deterministic: dead-lettered at once, no retry
            d.error = exc
            await self._dead(d, msg, exc.reason, type(exc).__name__, str(exc),
                             attempts=attempt, started=started)

    async def _self_cancelled(self, d: Delivery, ready: Ready, exc: asyncio.CancelledError,
                              started: int) -> None:
        """The task raised asyncio.CancelledError itself (not a taskq cancel or timeout: the
        runner was not cancelled): a failed attempt, not a stop of the worker."""
        log.warning("task %s raised asyncio.CancelledError itself (not a taskq cancel or "
                    "timeout): counted as a failed attempt", d.task_id,
                    extra={"task_id": d.task_id})
        d.error = exc
        await self._failed(d, ready.msg, ready.task, exc, ready.attempt, started,
                           _SELF_CANCELLED)

    async def _run_hooked(self, d: Delivery, ready: Ready) -> None:
        """:meth:`_run` (which calls the hooks' ``before``), then the hooks' ``after`` with
        the attempt's outcome."""
        t0 = time.monotonic()
        error: BaseException | None = None
        try:
            await self._run(d, ready)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if d.ctx is not None:
                status = d.status._value_ if d.acking else "failed"
                if error is None and not d.acking:
                    error = d.error
                run_after(self._hooks, d.ctx, TaskOutcome(status, error, time.monotonic() - t0))

    def _expired(self, d: Delivery, checked: Expired) -> None:
        """Finish an entry whose expiry passed before it started (status ``expired``)."""
        self.counters.expired += 1
        self._finish(d, checked.msg, checked.task, TaskStatus.EXPIRED, None, "",
                     checked.attempts)
        if self._hooks:
            ctx = TaskContext(d.task_id, checked.task.name, d.queue, checked.attempts,
                              checked.task.options.max_attempts, self.id, state=self.state)
            run_before(self._hooks, ctx)
            run_after(self._hooks, ctx, TaskOutcome("expired", None, 0.0))

    async def _progress(self, queue: str, task_id: str, fraction: float, message: str) -> None:
        message = storable(str(message), PROGRESS_LIMIT)  # (task code: bounded, valid UTF-8)
        keys = self.keys.get(queue) or self.app.keys(queue)
        bucket = bucket_key(keys, task_id)
        event = _progress_event(task_id, fraction, message)
        with contextlib.suppress(*REDIS_ERRORS):
            sharded = await cluster.sharded_events(self.app.redis)  # asked once per client
            pipe = self.app.redis.pipeline(transaction=False)
            pipe.hset(bucket, task_id + ":p", codec.pack({"p": fraction, "m": message}))  # type: ignore[arg-type]
            pipe.pexpire(bucket, self.app.result_ttl_ms, gt=True)
            if sharded:  # the channel is in the bucket's slot (the queue's hash tag)
                pipe.execute_command("SPUBLISH", keys.events, event)
            else:
                pipe.publish(keys.events, event)
            await pipe.execute()


def _progress_event(task_id: str, fraction: float, message: str) -> str:
    return json.dumps([[task_id, "running", {"progress": fraction, "message": message}]])
