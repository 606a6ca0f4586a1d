"""Prometheus metrics of one worker process, served over HTTP by prometheus_client.

No prometheus-client call is made on the hot path: a custom collector reads the worker's live
counters (:class:`taskq.worker.ledger.Counters`), what it holds, and its per-task figures
(:class:`taskq.taskmetrics.TaskMetrics`, plain counts kept per outcome) at each scrape. Every
series is labelled with the worker id (and its queues, or the queue and task), so processes of
one host stay apart.

    taskq_worker_tasks_total{outcome}      processed, succeeded, failed, retried, dead,
                                           lost_leases, reclaimed, deferred, handed_back,
                                           expired, throttled (they overlap: see
                                           docs/metrics.md)
    taskq_worker_in_flight                 entries held (running or prefetched)
    taskq_worker_concurrency               tasks run at once at most
    taskq_worker_up                        1 while the process serves metrics
    taskq_worker_start_time_seconds        when the worker started (Unix time)
    taskq_worker_task_queue_wait_seconds   histogram per queue and task: enqueue to start
    taskq_worker_task_run_seconds          histogram per queue and task: start to outcome
    taskq_worker_task_outcomes_total       per queue, task, outcome and reason
                                           (see :mod:`taskq.taskmetrics`)

The registry also carries prometheus_client's process, platform and GC collectors.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from taskq.taskmetrics import families
from taskq.worker.core import Worker
from taskq.worker.ledger import Counters

log = logging.getLogger(__name__)

LABELS = ("worker", "queues")
OUTCOMES = tuple(f.name for f in dataclasses.fields(Counters))


class WorkerCollector(Collector):
    """Reads ``worker``'s figures at scrape time (from the metrics server's thread: plain
    reads of ints and a dict's length, safe under the GIL)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        w = self.worker
        labels = [w.id, ",".join(w.config.queues)]
        tasks = CounterMetricFamily(
            "taskq_worker_tasks", "Task outcomes counted by this worker since it started "
            "(outcomes overlap: failed = retried + dead-lettered after a run)",
            labels=[*LABELS, "outcome"])
        for outcome in OUTCOMES:
            tasks.add_metric([*labels, outcome], getattr(w.counters, outcome))
        yield tasks
        yield _gauge("taskq_worker_in_flight", "Entries held: running or prefetched",
                     labels, len(w.held))
        yield _gauge("taskq_worker_concurrency", "Tasks run at once at most",
                     labels, w.config.concurrency)
        yield _gauge("taskq_worker_up", "1 while the worker process serves metrics", labels, 1)
        yield _gauge("taskq_worker_start_time_seconds", "When the worker started (Unix time)",
                     labels, w.started_at)
        rows = [([w.id, queue, task], series)
                for (queue, task), series in list(w.task_metrics.series.items())]
        yield from families("taskq_worker_task", rows, ["worker", "queue", "task"])


def _gauge(name: str, doc: str, labels: list[str], value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, doc, labels=list(LABELS))
    gauge.add_metric(labels, value)
    return gauge


def registry_for(worker: Worker) -> CollectorRegistry:
    """A registry of its own (not the global one) with the worker's and the process's metrics."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    registry.register(WorkerCollector(worker))
    return registry


@dataclass(frozen=True, slots=True)
class MetricsServer:
    """A running metrics endpoint; :meth:`close` stops it."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve_metrics(worker: Worker, host: str, port: int) -> MetricsServer:
    """Serve ``worker``'s metrics at ``http://host:port/metrics`` (any path answers) from a
    daemon thread. Raises OSError when the address cannot be bound."""
    server, thread = start_http_server(port, host, registry_for(worker))
    metrics = MetricsServer(server, thread)
    log.info("metrics of worker %s at http://%s:%d/metrics", worker.id, host, metrics.port)
    return metrics
