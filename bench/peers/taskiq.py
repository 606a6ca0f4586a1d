"""taskiq with taskiq-redis's stream broker: ``task.kiq`` (no bulk API) and ``taskiq worker``."""

from __future__ import annotations

from typing import Any

from taskiq_redis import RedisStreamBroker

from bench.peers._common import URL, Producer, exec_module, job_async

broker = RedisStreamBroker(url=URL)


@broker.task(task_name="noop")
async def noop(i: int) -> None:
    await job_async(i)


class TaskiqProducer(Producer):
    async def send(self, i: int) -> None:  # type: ignore[override]
        await noop.kiq(i)

    async def close(self) -> Any:
        await broker.shutdown()


async def make() -> Producer:
    await broker.startup()
    return TaskiqProducer()


def worker(concurrency: int) -> None:
    exec_module("taskiq", "worker", "bench.peers.taskiq:broker", "--workers", "1",
                "--max-async-tasks", str(concurrency), "--log-level", "WARNING")
