"""A worker subprocess app with one periodic schedule: ``python -m worker
tests.apps.periodic:tq``. ``TEST_EVERY_S`` (default 1) and ``TEST_CATCH_UP`` (default once)
set it; each run of ``tick`` adds its task id to ``<prefix>:t:ran`` and counts itself in
``<prefix>:t:runs``."""

from __future__ import annotations

import os

from taskq import TaskContext, TaskQueue

prefix = os.environ["TEST_PREFIX"]
tq = TaskQueue(prefix=prefix)


@tq.task(name="tick")
async def tick(ctx: TaskContext) -> None:
    await tq.redis.sadd(f"{prefix}:t:ran", ctx.task_id)  # type: ignore[misc]
    await tq.redis.incr(f"{prefix}:t:runs")


tq.schedule(tick.message(), every=float(os.environ.get("TEST_EVERY_S", "1")),
            name="every-second", catch_up=os.environ.get("TEST_CATCH_UP", "once"))
