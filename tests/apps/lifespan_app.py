"""A worker app with a lifespan: ``python -m worker tests.apps.lifespan_app:tq``. With
``TEST_LIFESPAN_FAIL`` set its startup raises; its shutdown records itself in Redis."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import redis as redis_sync

from taskq import TaskContext, TaskQueue
from tests.apps.common import build, trace_key

prefix = os.environ["TEST_PREFIX"]
tq: TaskQueue = build(prefix)


@tq.worker_lifespan
async def lifespan() -> AsyncIterator[dict[str, str]]:
    if os.environ.get("TEST_LIFESPAN_FAIL"):
        raise RuntimeError("the database is not there")
    yield {"db": "connected"}
    client = redis_sync.Redis.from_url(tq.url)
    client.rpush(trace_key(prefix, "lifespan"), f"shutdown {os.getpid()}")
    client.close()


@tq.task(name="state_of")
async def state_of(ctx: TaskContext) -> str:
    return str(ctx.state["db"])
