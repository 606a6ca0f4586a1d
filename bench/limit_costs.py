"""``python -m bench.limit_costs``: Redis commands per task with and without priorities and
limits, counted by a private redis-server's ``INFO commandstats`` (commands run inside scripts
included), from the first enqueue to the last ack. Prints one JSON object; bounded (2,000 tasks
per case, a 120 s deadline each)."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.polling import until
from faults.redis_server import RedisServer
from taskq import TaskQueue, Worker, WorkerConfig

N = 2_000


def _stats(server: RedisServer) -> dict[str, int]:
    admin = server.admin()
    try:
        info: dict[str, Any] = admin.info("commandstats")
    finally:
        admin.close()
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}


async def _case(server: RedisServer, name: str, options: dict[str, Any],
                enqueue: dict[str, Any]) -> dict[str, Any]:
    tq = TaskQueue(server.url, prefix=name)
    done = 0

    @tq.task(queue="q", **options)
    async def noop(n: int) -> None:
        nonlocal done
        done += 1

    before = _stats(server)
    t0 = time.monotonic()
    task = noop.with_options(**enqueue) if enqueue else noop
    for i in range(0, N, 500):
        await tq.enqueue_many([task.message(n) for n in range(i, i + 500)])
    worker = Worker(tq, WorkerConfig(queues=("q",), concurrency=16))
    run = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 120
    await until(lambda: done >= N, deadline)
    seconds = time.monotonic() - t0
    worker.stop()
    await run
    await tq.aclose()
    after = _stats(server)
    skip = {"info", "config|resetstat", "client|setinfo", "hello", "ping"}
    diff = {k: after.get(k, 0) - before.get(k, 0) for k in after if k not in skip}
    total = sum(diff.values())
    return {"case": name, "tasks": done, "seconds": round(seconds, 2),
            "commands_per_task": round(total / N, 2),
            "evalsha_per_task": round(diff.get("evalsha", 0) / N, 2),
            "throttled_per_task": round(worker.counters.throttled / N, 2)}


async def main() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder))
        server.start()
        try:
            return [
                await _case(server, "plain", {}, {}),
                await _case(server, "high", {}, {"priority": "high"}),
                await _case(server, "rate_unreached", {"rate_limit": "100000/s"}, {}),
                await _case(server, "rate_500s", {"rate_limit": "500/s"}, {}),
                await _case(server, "concurrency4", {"concurrency_limit": 4}, {}),
            ]
        finally:
            server.stop()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=1))
