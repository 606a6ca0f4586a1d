"""arq: ``pool.enqueue_job`` (no bulk API) and ``arq.worker.run_worker`` (its CLI's own call)."""

from __future__ import annotations

import os
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import func, run_worker

from bench.peers._common import URL, Producer, job_async

SETTINGS = RedisSettings.from_dsn(URL)


async def noop(ctx: dict[str, Any], i: int) -> None:
    await job_async(i)


class WorkerSettings:
    functions = (func(noop, name="noop"),)
    redis_settings = SETTINGS
    max_jobs = int(os.environ.get("BENCH_CONCURRENCY", "50"))


class ArqProducer(Producer):
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def send(self, i: int) -> None:  # type: ignore[override]
        await self.pool.enqueue_job("noop", i)

    async def close(self) -> Any:
        await self.pool.aclose()


async def make() -> Producer:
    return ArqProducer(await create_pool(SETTINGS))


def worker(concurrency: int) -> None:
    run_worker(WorkerSettings, max_jobs=concurrency)  # type: ignore[arg-type]

