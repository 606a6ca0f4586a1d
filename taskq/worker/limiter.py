"""The worker's side of rate and concurrency limits (see :mod:`taskq.limits`).

Only tasks declared with limits come here (the runner tests ``task.options.limits`` once per
task): before its attempt starts, one owner-checked script (``lua/throttle.lua``) either lets it
start, holding a concurrency slot when the task has a concurrency limit, or acks the entry and
puts the same message in the delayed set until the start time it reserved (rate) or for a short
wait (concurrency): no attempt used, no failure recorded; counted as ``throttled`` in the
queue's figures and the worker's metrics. The slot is freed by the script that ends the attempt
(complete, retry, dead, release), renewed with the leases, and lost within a lease when its
worker dies; a freed slot wakes the earliest waiter at once (:mod:`taskq.worker.wakeup`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from typing import Any

from taskq import codec
from taskq.connection import REDIS_ERRORS
from taskq.limits import Limits, key_value, state_name
from taskq.queue import TaskQueue
from taskq.worker.admission import Ready
from taskq.worker.context import WorkerContext
from taskq.worker.ledger import Delivery, Ledger
from taskq.worker.outcomes import Outcomes

log = logging.getLogger(__name__)

CONCURRENCY_WAIT_MS = 200
"""How long a task waits for a free concurrency slot before it asks again (jittered +-50%)."""

LOG_EVERY = 30
"""While Redis does not answer a limit check: a warning on the first failure, then every 30th
(about every 30 s)."""


class Limiter:
    """Decides whether a limited task of one worker may start now (see the module)."""

    def __init__(self, app: TaskQueue, context: WorkerContext, ledger: Ledger,
                 outcomes: Outcomes) -> None:
        self.app = app
        self.id = context.id
        self.keys = context.keys
        self.lease_ms = context.config.lease_ms
        self.ledger = ledger
        self.outcomes = outcomes

    async def admit(self, d: Delivery, ready: Ready, limits: Limits) -> bool:
        """True: start the attempt now (``d.slot`` set when it holds a concurrency slot).
        False: it waits in the delayed set, or the lease was lost, or its limit key could not
        be computed (dead-lettered as ``limit_key``)."""
        _, msg, task, args, kwargs, attempt = ready
        keys = self.keys[d.queue]
        try:
            named = _named(task.signature, args, kwargs)
            rate_key = slots_key = None
            if limits.rate is not None:
                key = None if limits.rate_key is None else key_value(limits.rate_key, named)
                rate_key = keys.limit("rate", state_name(task.name, key))
            if limits.concurrency is not None:
                key = limits.fixed_concurrency_key
                if key is None and limits.concurrency_key is not None:
                    key = key_value(limits.concurrency_key, named)
                slots_key = keys.limit("run", state_name(task.name, key))
        except Exception as exc:
            await self.outcomes.dead(d, msg, "limit_key", type(exc).__name__,
                                     f"the task's limit key could not be computed: {exc}",
                                     attempts=attempt - 1)
            return False
        payload = codec.encode(msg.with_attempts(attempt - 1, d.task_id))
        wait_ms = int(CONCURRENCY_WAIT_MS * (0.5 + random.random()))
        delay, failures = 0.05, 0
        while True:
            try:
                r = await self.app.scripts.throttle(
                    keys=keys, consumer=self.id, entry_id=d.entry_id, deliveries=d.deliveries,
                    task_id=d.task_id, payload=payload, rate_key=rate_key,
                    interval_ms=limits.rate.interval_ms if limits.rate else 0.0,
                    slots_key=slots_key, limit=limits.concurrency or 0,
                    lease_ms=self.lease_ms, wait_ms=wait_ms)
                break
            except REDIS_ERRORS as exc:
                # Never give up while the entry is held: an entry left to return after its
                # lease comes back with one more delivery, which admission must count as a
                # possible run, so a task that never started would lose an attempt (a
                # max_attempts=1 task would be dead-lettered as worker_lost unrun). The lease
                # is renewed meanwhile (the delivery stays in the ledger).
                failures += 1
                if failures == 1 or failures % LOG_EVERY == 0:
                    log.warning("limit check of %s failed %d time(s) (%s); retrying until "
                                "Redis answers", d.task_id, failures, exc,
                                extra={"task_id": d.task_id})
                if d.lost:
                    return False  # another worker owns it now
                if self.ledger.stopping:
                    await self.outcomes.release([d])  # handed back unrun, if Redis answers
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        if failures:
            log.info("limit check of %s answered after %d failure(s)", d.task_id, failures,
                     extra={"task_id": d.task_id})
        if r.start:
            d.slot = slots_key
            return True
        if r.lost:
            self.ledger.counters.lost_leases += 1
            log.warning("lease lost on %s before it started", d.task_id,
                        extra={"task_id": d.task_id})
            return False
        self.ledger.counters.throttled += 1
        log.debug("task %s waits for its %s limit until %d", d.task_id, r.why, r.due_ms,
                  extra={"task_id": d.task_id})
        return False


def _named(signature: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
    """The arguments of an invocation by parameter name (as validated for the call)."""
    if not args:
        return kwargs
    bound = signature._bind_sig.bind(*args, **kwargs)
    return dict(bound.arguments)
