"""dramatiq: ``actor.send`` (no bulk API) and its CLI, one process with N threads."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.peers._common import QUEUE, URL, Producer, exec_module, job_sync

broker = RedisBroker(url=URL)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, actor_name="noop")
def noop(i: int) -> None:
    job_sync(i)


class DramatiqProducer(Producer):
    def send(self, i: int) -> None:  # type: ignore[override]
        noop.send(i)

    def close(self) -> Any:
        broker.close()


def make() -> Producer:
    return DramatiqProducer()


def worker(concurrency: int) -> None:
    exec_module("dramatiq", "bench.peers.dramatiq", "--processes", "1",
                "--threads", str(concurrency), "--queues", QUEUE)
