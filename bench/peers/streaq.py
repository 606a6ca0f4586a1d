"""streaq: ``task.enqueue``, ``worker.enqueue_many`` and ``Worker.run_sync``."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from streaq import Worker

from bench.peers._common import QUEUE, URL, Producer, job_async

CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "50"))
worker_app: Worker[Any] = Worker(redis_url=URL, queue_name=QUEUE, concurrency=CONCURRENCY)


@worker_app.task(name="noop")
async def noop(i: int) -> None:
    await job_async(i)


class StreaqProducer(Producer):
    def __init__(self, stack: contextlib.AsyncExitStack) -> None:
        self.stack = stack

    async def send(self, i: int) -> None:  # type: ignore[override]
        await noop.enqueue(i)

    async def send_many(self, ids: list[int]) -> None:  # type: ignore[override]
        await worker_app.enqueue_many([noop.enqueue(i) for i in ids])

    async def close(self) -> Any:
        await self.stack.aclose()


async def make() -> Producer:
    stack = contextlib.AsyncExitStack()
    await stack.enter_async_context(worker_app)
    return StreaqProducer(stack)


def worker(concurrency: int) -> None:
    worker_app.run_sync()
