"""``python -m bench.priority``: how soon a high-priority task starts behind a low backlog.

One worker (in this process, default settings: concurrency 100, read batch 200) drains 50,000
waiting low-priority no-op tasks; five times while it does, a high-priority task is enqueued
into the same queue. For each: the tasks that started between its enqueue and its own start,
and the time. Prints one JSON object. Bounded: 50,000 tasks, a 120 s deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid

import redis as redis_sync

from bench.polling import until
from taskq import TaskQueue, Worker, WorkerConfig

BACKLOG = 50_000
PROBES = 5


async def main() -> dict[str, object]:
    url = os.environ.get("TASKQ_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"bprio{uuid.uuid4().hex[:8]}"
    tq = TaskQueue(url, prefix=prefix)
    started = 0
    high_at: dict[int, tuple[int, float]] = {}  # probe -> (tasks started before it, time)

    @tq.task(queue="mixed")
    async def noop(n: int) -> None:
        nonlocal started
        if n < 0:
            high_at[-n] = (started, time.monotonic())
        started += 1

    try:
        await (await noop.with_options(priority="high").enqueue(0)).cancel()  # the lane exists
        low = noop.with_options(priority="low")
        for i in range(0, BACKLOG, 5_000):
            await tq.enqueue_many([low.message(n) for n in range(i, i + 5_000)])
        worker = Worker(tq, WorkerConfig(queues=("mixed",)))
        run = asyncio.create_task(worker.run())
        results = []
        deadline = time.monotonic() + 120
        for probe in range(1, PROBES + 1):
            await until(lambda p=probe: started >= p * BACKLOG // (PROBES + 2), deadline)
            before, t0 = started, time.monotonic()
            await noop.with_options(priority="high").enqueue(-probe)
            await until(lambda p=probe: p in high_at, deadline, 0.001)
            n, t1 = high_at[probe]
            results.append({"started_before_it": n - before, "ms": round((t1 - t0) * 1000, 1),
                            "low_waiting": BACKLOG - before})
        worker.stop()
        await run
        return {
            "backlog": BACKLOG, "concurrency": worker.config.concurrency,
            "read_batch": worker.config.batch, "capacity": worker.config.capacity,
            "probes": results,
            "median_started_before": statistics.median(r["started_before_it"] for r in results),
            "max_started_before": max(r["started_before_it"] for r in results),
            "median_ms": statistics.median(r["ms"] for r in results),
        }
    finally:
        await tq.aclose()
        client = redis_sync.Redis.from_url(url)
        for pattern in (f"{{{prefix}:*", f"{prefix}:*"):
            for key in client.scan_iter(match=pattern, count=1000):
                client.delete(key)
        client.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=1))
