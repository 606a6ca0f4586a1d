"""rq with its SimpleWorker (runs jobs in the worker process, no fork)."""

from __future__ import annotations

from rq import SimpleWorker

from bench.peers import rq as rq_adapter

make = rq_adapter.make


def worker(concurrency: int) -> None:
    rq_adapter.run(SimpleWorker)


