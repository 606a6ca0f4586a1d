"""``python -m bench.scaleout``: ratios for Redis Cluster and the write guarantee (brief).

1. drain: 3 queues of no-op tasks drained by one in-process worker, on a private 3-primary
   Cluster vs on one private Redis (rounds interleaved; the ratio is what is reported);
2. ``min_replicas=1`` vs 0 on a private master with one replica (Sentinel setup): single
   enqueues (one call each, sequential) and the drain of one queue.

Every server is private (free loopback ports) and killed at the end. On a shared 2-core machine
the absolute figures mean little (a Cluster's 6 servers compete with the worker for the same
cores); the ratios are what the run can show.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from faults.redis_server import RedisServer
from faults.topology import LocalCluster, LocalSentinel
from taskq import TaskQueue, Worker, WorkerConfig


def _app(url: str, queues: list[str], min_replicas: int = 0) -> TaskQueue:
    tq = TaskQueue(url, prefix=f"b{uuid.uuid4().hex[:6]}", default_queue=queues[0],
                   min_replicas=min_replicas)
    for q in queues:
        @tq.task(name=f"noop_{q}", queue=q)
        async def noop(i: int) -> None:
            return None
    return tq


async def drain_rate(url: str, queues: list[str], per_queue: int, min_replicas: int = 0) -> float:
    tq = _app(url, queues, min_replicas)
    try:
        for q in queues:
            task = tq.registry[f"noop_{q}"]
            for start in range(0, per_queue, 500):
                await tq.enqueue_many([task.message(i=i) for i in range(start, start + 500)])
        total = per_queue * len(queues)
        worker = Worker(tq, WorkerConfig(queues=tuple(queues), concurrency=64))
        t0 = time.perf_counter()
        run = asyncio.create_task(worker.run())
        while worker.counters.succeeded < total:
            if run.done():
                run.result()
            await asyncio.sleep(0.01)
        rate = total / (time.perf_counter() - t0)
        worker.stop()
        await run
        return rate
    finally:
        await tq.aclose()


async def enqueue_rate(url: str, count: int, min_replicas: int) -> float:
    tq = _app(url, ["e"], min_replicas)
    try:
        task = tq.registry["noop_e"]
        await task.enqueue(i=0)
        t0 = time.perf_counter()
        for i in range(count):
            await task.enqueue(i=i)
        return count / (time.perf_counter() - t0)
    finally:
        await tq.aclose()


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


async def main(rounds: int, per_queue: int, folder: Path) -> dict[str, Any]:
    single = RedisServer(folder / "single")
    single.start()
    cluster = LocalCluster(folder / "cluster")
    sentinel = LocalSentinel(folder / "sentinel")
    out: dict[str, Any] = {"rounds": rounds, "per_queue": per_queue}
    try:
        await asyncio.to_thread(cluster.start)
        await asyncio.to_thread(sentinel.start)
        queues = ["a", "b", "c"]
        one, many = [], []
        plain_enq, waited_enq, plain_drain, waited_drain = [], [], [], []
        for r in range(rounds):
            order = [0, 1] if r % 2 == 0 else [1, 0]
            for which in order:
                if which == 0:
                    one.append(await drain_rate(single.url, queues, per_queue))
                else:
                    many.append(await drain_rate(cluster.url, queues, per_queue))
            for which in order:
                enq = await enqueue_rate(sentinel.url, per_queue, which)
                (plain_enq if which == 0 else waited_enq).append(enq)
                dr = await drain_rate(sentinel.url, ["d"], per_queue, which)
                (plain_drain if which == 0 else waited_drain).append(dr)
        out.update(
            drain_single=one, drain_cluster=many,
            cluster_over_single=round(_median(many) / _median(one), 2),
            enqueue_plain=plain_enq, enqueue_min_replicas_1=waited_enq,
            enqueue_ratio=round(_median(waited_enq) / _median(plain_enq), 2),
            drain_plain=plain_drain, drain_min_replicas_1=waited_drain,
            drain_ratio=round(_median(waited_drain) / _median(plain_drain), 2))
    finally:
        sentinel.stop()
        cluster.stop()
        single.stop()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-queue", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(main(args.rounds, args.per_queue, Path(tmp)))
    print(json.dumps({k: (round(v) if isinstance(v, float) and v > 10 else v)
                      if not isinstance(v, list) else [round(x) for x in v]
                      for k, v in result.items()}, indent=1))
