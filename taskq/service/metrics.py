"""``GET /metrics``: every queue's figures in the Prometheus text format, read from Redis at
scrape time (:func:`taskq.admin.list_queues`; nothing is kept between scrapes), and the task
metrics every worker published to each queue's task metrics hash (:mod:`taskq.taskmetrics`):
``taskq_task_queue_wait_seconds``, ``taskq_task_run_seconds`` (histograms) and
``taskq_task_outcomes_total``, labelled ``queue`` and ``task``.

A read-only (or admin) API key is required, in ``X-API-Key`` or as ``Authorization: Bearer``
(what Prometheus's ``authorization`` scrape option sends), unless ``TASKQ_METRICS_PUBLIC=true``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from fastapi import APIRouter, Header, HTTPException
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from taskq import admin, taskmetrics
from taskq.fastapi import ApiKeys
from taskq.integrations.errors import http_errors
from taskq.queue import TaskQueue

GAUGES = {
    "length": "Entries in the queue's stream (waiting + in flight)",
    "in_flight": "Entries delivered to a worker and not yet finished",
    "lag": "Entries not yet delivered to any worker",
    "delayed": "Scheduled tasks and retries waiting for their time",
    "dead": "Dead letters kept",
    "consumers": "Consumers (workers) in the queue's group",
    "oldest_waiting_age_s": "Age of the oldest undelivered entry in seconds (0: none waits)",
    "completed_last_minute": "Tasks completed over the last 60 s",
    "paused": "1 while the queue is paused",
}
COUNTERS = {
    "completed_total": ("completed", "Tasks completed since the queue was created"),
    "retried_total": ("retried", "Retries scheduled since the queue was created"),
    "dead_total": ("dead_lettered", "Tasks dead-lettered since the queue was created"),
    "lost_total": ("lost", "Outcomes discarded after a lost lease"),
    "expired_total": ("expired", "Tasks that expired before they started"),
    "deferred_total": ("deferred_unknown",
                       "Unknown task names handed back during the deploy grace"),
    "throttled_total": ("throttled", "Times a task waited for its rate or concurrency limit"),
}


class QueueSnapshot(Collector):
    """The figures of ``queues``, read once, as metric families."""

    def __init__(self, queues: Sequence[admin.QueueInfo],
                 tasks: Sequence[tuple[str, dict[str, taskmetrics.TaskSeries]]] = ()) -> None:
        self.queues = [q.to_dict() for q in queues]
        self.tasks = tasks

    def collect(self) -> Iterator[Metric]:
        for field, doc in GAUGES.items():
            gauge = GaugeMetricFamily(f"taskq_queue_{field}", doc, labels=["queue"])
            for q in self.queues:
                gauge.add_metric([q["name"]], float(q[field] or 0))
            yield gauge
        for field, (name, doc) in COUNTERS.items():
            counter = CounterMetricFamily(f"taskq_queue_{name}", doc, labels=["queue"])
            for q in self.queues:
                counter.add_metric([q["name"]], q[field])
            yield counter
        rows = [([queue, task], series) for queue, by_task in self.tasks
                for task, series in sorted(by_task.items())]
        yield from taskmetrics.families("taskq_task", rows, ["queue", "task"])


async def task_metrics(tq: TaskQueue, queues: Sequence[str]
                       ) -> list[tuple[str, dict[str, taskmetrics.TaskSeries]]]:
    """Each queue's published task metrics, read in one round trip."""
    if not queues:
        return []
    pipe = tq.redis.pipeline(transaction=False)
    for q in queues:
        pipe.hgetall(tq.keys(q).task_metrics)
    hashes = await pipe.execute()
    return [(q, taskmetrics.parse(h)) for q, h in zip(queues, hashes, strict=True)]


def _key(x_api_key: str | None, authorization: str | None) -> str | None:
    if x_api_key is not None:
        return x_api_key
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def metrics_router(tq: TaskQueue, keys: ApiKeys, public: bool) -> APIRouter:
    """``GET /metrics``; ``public``: no key needed."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics(x_api_key: str | None = Header(None),
                      authorization: str | None = Header(None)) -> Response:
        if not public and keys.role_of(_key(x_api_key, authorization)) is None:
            raise HTTPException(401, "missing or invalid API key",
                                headers={"WWW-Authenticate": "Bearer"})
        with http_errors():  # Redis unavailable: 503
            queues = await admin.list_queues(tq)
            tasks = await task_metrics(tq, [q.name for q in queues])
            snapshot = QueueSnapshot(queues, tasks)
        return Response(generate_latest(snapshot), media_type=CONTENT_TYPE_LATEST)

    return router
