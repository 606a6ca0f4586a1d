"""huey (RedisHuey): calling the task enqueues it (no bulk API); its consumer with threads."""

from __future__ import annotations

from typing import Any

from huey import RedisHuey

from bench.peers._common import QUEUE, URL, Producer, job_sync

huey = RedisHuey(QUEUE, url=URL)


@huey.task(name="noop")
def noop(i: int) -> None:
    job_sync(i)


class HueyProducer(Producer):
    def send(self, i: int) -> None:  # type: ignore[override]
        noop(i)

    def close(self) -> Any:
        return None


def make() -> Producer:
    return HueyProducer()


def worker(concurrency: int) -> None:
    huey.create_consumer(workers=concurrency, worker_type="thread").run()
