"""saq: ``queue.enqueue`` (no bulk enqueue: ``map`` waits for results) and ``saq.worker.start``."""

from __future__ import annotations

import os
from typing import Any

from saq import Queue
from saq.worker import start

from bench.peers._common import URL, Producer, job_async

queue = Queue.from_url(URL)


async def noop(ctx: dict[str, Any], *, i: int) -> None:
    await job_async(i)


settings = {"queue": queue, "functions": [noop],
            "concurrency": int(os.environ.get("BENCH_CONCURRENCY", "50"))}


class SaqProducer(Producer):
    async def send(self, i: int) -> None:  # type: ignore[override]
        await queue.enqueue("noop", i=i)

    async def close(self) -> Any:
        await queue.disconnect()


async def make() -> Producer:
    await queue.connect()
    return SaqProducer()


def worker(concurrency: int) -> None:
    settings["concurrency"] = concurrency
    start("bench.peers.saq.settings")
