"""``python -m bench.slot_wake``: how long a concurrency slot stays unused between one task
ending and the next waiting one starting (``concurrency_limit=1``, tasks of 20 ms, all queued
at once, one worker of concurrency 8), and the Redis commands per task (a private
redis-server's ``INFO commandstats``). Prints one JSON object; bounded (a 120 s deadline)."""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.limit_costs import _stats
from bench.polling import until
from faults.redis_server import RedisServer
from taskq import TaskQueue, Worker, WorkerConfig

N = 100
RUN_S = 0.02


async def _case(server: RedisServer, n: int) -> dict[str, Any]:
    tq = TaskQueue(server.url, prefix=f"wake{time.monotonic_ns()}")
    spans: list[tuple[float, float]] = []

    @tq.task(queue="q", concurrency_limit=1)
    async def one(i: int) -> None:
        t0 = time.monotonic()
        await asyncio.sleep(RUN_S)
        spans.append((t0, time.monotonic()))

    before = _stats(server)
    await tq.enqueue_many([one.message(i) for i in range(n)])
    worker = Worker(tq, WorkerConfig(queues=("q",), concurrency=8))
    run = asyncio.create_task(worker.run())
    await until(lambda: len(spans) >= n, time.monotonic() + 120)
    worker.stop()
    await run
    await tq.aclose()
    after = _stats(server)
    skip = {"info", "config|resetstat", "client|setinfo", "hello", "ping"}
    total = sum(after.get(k, 0) - before.get(k, 0) for k in after if k not in skip)
    spans.sort()
    gaps_ms = [(b[0] - a[1]) * 1000 for a, b in itertools.pairwise(spans)]
    q = statistics.quantiles(gaps_ms, n=10)
    return {"tasks": len(spans), "seconds": round(spans[-1][1] - spans[0][0], 2),
            "gap_ms_median": round(statistics.median(gaps_ms), 1),
            "gap_ms_mean": round(statistics.fmean(gaps_ms), 1),
            "gap_ms_p90": round(q[8], 1), "gap_ms_max": round(max(gaps_ms), 1),
            "overlaps": sum(1 for g in gaps_ms if g < 0),
            "commands_per_task": round(total / n, 1)}


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        server = RedisServer(Path(d))
        server.start()
        try:
            print(json.dumps(await _case(server, n)))
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else N))
