"""The naive plain loop (the floor before issue 19, kept as a second row): redis-py, XADD to
enqueue (pipelined for bulk); the worker reads a batch with XREADGROUP, runs it concurrently,
acknowledges it with one XACK, and only then reads again. Slower than :mod:`bench.peers.plain`
(the floor): it waits for its slowest job and its ack before each read."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from bench.peers._common import QUEUE, URL, Producer, job_async

STREAM = f"plain:{QUEUE}"
GROUP = "g"


class PlainProducer(Producer):
    def __init__(self) -> None:
        self.r = aioredis.Redis.from_url(URL)

    async def send(self, i: int) -> None:  # type: ignore[override]
        await self.r.xadd(STREAM, {"i": i})

    async def send_many(self, ids: list[int]) -> None:  # type: ignore[override]
        pipe = self.r.pipeline(transaction=False)
        for i in ids:
            pipe.xadd(STREAM, {"i": i})
        await pipe.execute()

    async def close(self) -> Any:
        await self.r.aclose()


async def make() -> Producer:
    return PlainProducer()


async def worker(concurrency: int) -> None:
    r = aioredis.Redis.from_url(URL)
    with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
        await r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    name = f"c{os.getpid()}"
    while not stop.is_set():
        resp = await r.xreadgroup(GROUP, name, {STREAM: ">"}, count=concurrency, block=1000)
        for _, entries in resp or ():
            await asyncio.gather(*(job_async(int(f[b"i"])) for _, f in entries))
            await r.xack(STREAM, GROUP, *(eid for eid, _ in entries))

