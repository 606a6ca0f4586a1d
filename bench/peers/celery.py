"""celery: ``task.delay`` (no bulk enqueue) and ``app.worker_main`` with a thread pool."""

from __future__ import annotations

from typing import Any

from celery import Celery

from bench.peers._common import QUEUE, URL, Producer, job_sync

app = Celery("bench", broker=URL)
app.conf.update(task_ignore_result=True, task_default_queue=QUEUE,
                worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)


@app.task(name="noop")
def noop(i: int) -> None:
    job_sync(i)


class CeleryProducer(Producer):
    def send(self, i: int) -> None:  # type: ignore[override]
        noop.delay(i)

    def close(self) -> Any:
        app.close()


def make() -> Producer:
    return CeleryProducer()


def worker(concurrency: int) -> None:
    app.worker_main(["worker", "--pool=threads", f"--concurrency={concurrency}",
                     "--loglevel=WARNING", "--without-gossip", "--without-mingle",
                     "--without-heartbeat", "-Q", QUEUE])
