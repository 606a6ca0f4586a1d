"""Waking the tasks that wait for a concurrency slot, when an attempt frees one.

A task that finds its concurrency limit reached waits in the delayed set for 100-300 ms and
asks again (``lua/throttle.lua``, which also lists it among the slot set's waiters). When an
attempt holding a slot ends, the script that ends it frees the slot, and then this wakes as many
of the earliest waiters of that lane as slots were freed (``lua/wake.lua``: straight to the
stream, so a blocked read takes them at once): the slot is used again within a few ms instead
of at the end of a wait. Best effort: a failed wake leaves the waiters to their own wait.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from taskq.connection import REDIS_ERRORS
from taskq.keys import QueueKeys
from taskq.queue import TaskQueue
from taskq.worker.ledger import Delivery

log = logging.getLogger(__name__)


async def wake_waiters(app: TaskQueue, keys: Mapping[str, QueueKeys],
                       freed: Iterable[Delivery]) -> None:
    """Wake one waiter per slot freed by the ended attempts ``freed`` (each held ``d.slot``)."""
    counts: dict[tuple[str, str], int] = {}
    for d in freed:
        if d.slot:
            counts[(d.queue, d.slot)] = counts.get((d.queue, d.slot), 0) + 1
    for (queue, slots_key), n in counts.items():
        try:
            await app.scripts.wake(keys=keys[queue], slots_key=slots_key, count=n)
        except REDIS_ERRORS as exc:
            log.debug("waking the waiters of %s failed (%s); they ask again after their wait",
                      slots_key, exc)
