"""taskq (runs in the project's virtualenv): ``await noop.enqueue(i)``, ``tq.enqueue_many``,
and the real worker process ``python -m worker bench.peers.taskq:tq``."""

from __future__ import annotations

import os
from typing import Any

from bench.peers._common import QUEUE, URL, Producer, exec_module, job_async
from taskq import TaskQueue

tq = TaskQueue(URL, prefix="bench",
               result_ttl=float(os.environ.get("BENCH_RESULT_TTL_S", "86400")))


@tq.task(queue=QUEUE, name="noop")
async def noop(i: int) -> None:
    await job_async(i)


class TaskqProducer(Producer):
    async def send(self, i: int) -> None:  # type: ignore[override]
        await noop.enqueue(i)

    async def send_many(self, ids: list[int]) -> None:  # type: ignore[override]
        await tq.enqueue_many([noop.message(i) for i in ids])

    async def close(self) -> Any:
        await tq.aclose()


async def make() -> Producer:
    await tq.ready()
    return TaskqProducer()


def worker(concurrency: int) -> None:
    exec_module("worker", "bench.peers.taskq:tq", "--queues", QUEUE,
                "--concurrency", str(concurrency), "--log-level", "WARNING")

