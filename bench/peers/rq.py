"""rq: ``queue.enqueue``, ``queue.enqueue_many`` and ``Worker.work`` (forks a work horse per
job)."""

from __future__ import annotations

from typing import Any

from redis import Redis
from rq import Queue, Worker

from bench.peers._common import QUEUE, URL, Producer, job_sync

WORKER_CLASS: type[Worker] = Worker


def noop(i: int) -> None:
    job_sync(i)


class RqProducer(Producer):
    def __init__(self) -> None:
        self.conn = Redis.from_url(URL)
        self.q = Queue(QUEUE, connection=self.conn)

    def send(self, i: int) -> None:  # type: ignore[override]
        self.q.enqueue(noop, i)

    def send_many(self, ids: list[int]) -> None:  # type: ignore[override]
        self.q.enqueue_many([Queue.prepare_data(noop, args=(i,)) for i in ids])

    def close(self) -> Any:
        self.conn.close()


def make() -> Producer:
    return RqProducer()


def run(worker_class: type[Worker]) -> None:
    conn = Redis.from_url(URL)
    w = worker_class([Queue(QUEUE, connection=conn)], connection=conn)
    w.work(logging_level="WARNING")


def worker(concurrency: int) -> None:
    run(Worker)

