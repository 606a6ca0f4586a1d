"""docs/grafana/taskq-dashboard.json: a Grafana dashboard whose every query names only metrics
that a worker's /metrics or the API's /metrics serve (taken from live endpoints here)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from taskq import TaskQueue, Worker, WorkerConfig
from taskq.codec import Message
from taskq.worker.metrics import registry_for
from tests.api_fixtures import READ, make_app, serve

DASHBOARD = Path(__file__).parent.parent / "docs" / "grafana" / "taskq-dashboard.json"
METRIC = re.compile(r"\b(?:taskq|process)_[a-z_]+\b")


def sample_names(text: str) -> set[str]:
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


def queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"]
              if isinstance(v.get("query"), dict)]
    return exprs


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    d = json.loads(DASHBOARD.read_text())
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 36
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        taken = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                 for y in range(g["y"], g["y"] + g["h"])}
        assert not taken & cells, f"panel {p['id']} overlaps another"
        cells |= taken
        if p["type"] != "row":
            assert p["targets"] and all(t["expr"] and t["refId"] for t in p["targets"])
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    names = {v["name"] for v in d["templating"]["list"]}
    assert {"datasource", "queue", "task"} <= names
    # every $variable a query uses is defined (or one of Grafana's own)
    for expr in queries(d):
        for var in re.findall(r"\$(\w+)", expr):
            assert var in names or var.startswith("__"), (var, expr)


async def test_every_query_names_metrics_taskq_serves(tq: TaskQueue) -> None:
    @tq.task(name="t")
    async def t() -> None: ...

    await t.enqueue()  # the queue exists: the API lists it
    w = Worker(tq, WorkerConfig(queues=("default",)))
    now = int(time.time() * 1000)
    for outcome, reason in (("succeeded", ""), ("retried", "error"), ("dead", "max_attempts")):
        w.task_metrics.ended("x", Message("t", enqueued_ms=now - 5), "default", outcome, reason,
                             1, now, "", "")
    served = sample_names(generate_latest(registry_for(w)).decode())
    await w.publisher.publish()
    async with serve(make_app(tq)) as client:
        url = f"http://{client.base_url.host}:{client.base_url.port}/metrics"
        r = await client.get(url, headers=READ)
    assert r.status_code == 200
    served |= sample_names(r.text)
    used = {m for expr in queries(json.loads(DASHBOARD.read_text()))
            for m in METRIC.findall(expr)}
    assert used, "no metric found in the dashboard's queries"
    assert used <= served, sorted(used - served)
    # it shows the per-task figures of both kinds and the queue figures
    assert {"taskq_task_queue_wait_seconds_bucket", "taskq_task_run_seconds_bucket",
            "taskq_task_outcomes_total", "taskq_queue_lag"} <= used
