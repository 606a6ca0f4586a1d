"""Publishing a worker's task metrics to Redis, where the API's ``/metrics`` reads them: every
``PERIOD_S``, what was counted since the last time goes to each queue's task metrics hash in
one script call per queue (none when nothing changed), and once more when the worker stops.

Counting stays in memory between publications: a worker killed by SIGKILL loses at most its
last ``PERIOD_S`` of figures (metrics only; its tasks are safe). A publication that fails is
tried again with the next one: only an answered call marks its increments as published (a
connection lost after Redis ran the script but before it answered counts them twice).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from taskq.connection import REDIS_ERRORS
from taskq.errors import RedisFailure
from taskq.keys import QueueKeys
from taskq.queue import TaskQueue
from taskq.taskmetrics import MAX_FIELDS, TaskMetrics

log = logging.getLogger(__name__)

PERIOD_S = 5.0
_FAILURES: tuple[type[Exception], ...] = (*REDIS_ERRORS, RedisFailure)


class Publisher:
    def __init__(self, app: TaskQueue, keys: Mapping[str, QueueKeys],
                 metrics: TaskMetrics) -> None:
        self.app = app
        self.keys = keys
        self.metrics = metrics
        self._failing = False  # a failure is logged as a warning once, until one works again

    async def publish(self) -> None:
        """Send what changed since the last publication (errors are logged, not raised)."""
        for queue, increments in self.metrics.increments().items():
            keys = self.keys.get(queue) or self.app.keys(queue)
            try:
                refused = await self.app.scripts.task_metrics(
                    keys=keys, increments=increments, max_fields=MAX_FIELDS)
            except _FAILURES as exc:
                (log.debug if self._failing else log.warning)(
                    "task metrics of queue %s not published (%s); trying again in %.0f s",
                    queue, exc, PERIOD_S)
                self._failing = True
                continue
            self._failing = False
            self.metrics.flushed(queue, increments)
            if refused:
                log.warning("task metrics of queue %s: %d figures refused (the hash holds "
                            "%d fields at most)", queue, refused, MAX_FIELDS)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(PERIOD_S)
            await self.publish()
