"""Run every query of docs/grafana/taskq-dashboard.json against a real Prometheus that scrapes
a worker and the API under a bounded load, and report which return data. Optionally renders a
preview of the panels with matplotlib from the same results (not a Grafana screenshot).

    .venv/bin/python -m bench.dashboard_check [--seconds 90] [--preview docs/grafana/preview.png]

Needs ``prometheus`` on PATH (Debian: apt-get install prometheus) and a Redis at
``TASKQ_REDIS_URL`` (default localhost); uses a key prefix of its own and deletes its keys.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "docs" / "grafana" / "taskq-dashboard.json"
RATE = "30s"  # $__rate_interval: at least 4 times the 5 s publication period of task metrics
KEY = "dashboard-check-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def wait_http(url: str, deadline_s: float = 30) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def substitute(expr: str, rate: str) -> str:
    return (expr.replace("$__rate_interval", rate).replace("$queue", ".*")
            .replace("$task", ".*").replace("$worker_job", "taskq-workers"))


async def load(prefix: str, seconds: float) -> int:
    os.environ["DASHBOARD_PREFIX"] = prefix
    from bench.dashboard_app import report, resize, send_email, tq  # noqa: PLC0415

    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end and sent < 20_000:
        await tq.enqueue_many([resize.message(sent + i) for i in range(8)]
                              + [send_email.message(sent + i) for i in range(3)]
                              + [report.message(sent)])
        sent += 12
        await asyncio.sleep(0.1)
    await tq.aclose()
    return sent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=90)
    ap.add_argument("--preview", type=Path)
    args = ap.parse_args()
    if shutil.which("prometheus") is None:
        print("prometheus is not on PATH (Debian: apt-get install prometheus)", file=sys.stderr)
        return 2
    prefix = f"dash{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DASHBOARD_PREFIX": prefix, "TASKQ_METRICS_PUBLIC": "true",
           "TASKQ_API_KEYS": KEY, "PYTHONPATH": str(ROOT)}
    worker_port, api_port, prom_port = free_port(), free_port(), free_port()
    tmp = Path(tempfile.mkdtemp(prefix="dashcheck"))
    (tmp / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\nscrape_configs:\n"
        f"  - job_name: taskq-api\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{api_port}']}}]\n"
        f"  - job_name: taskq-workers\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{worker_port}']}}]\n")
    taskq = str(Path(sys.executable).parent / "taskq")
    procs = [
        subprocess.Popen([taskq, "worker", "bench.dashboard_app:tq", "--queues",
                          "images,reports,emails", "--concurrency", "40", "--metrics-port",
                          str(worker_port)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL),
        subprocess.Popen([taskq, "api", "bench.dashboard_app:tq", "--host", "127.0.0.1",
                          "--port", str(api_port)], env=env, cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
                          f"--storage.tsdb.path={tmp / 'data'}",
                          f"--web.listen-address=127.0.0.1:{prom_port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    prom = f"http://127.0.0.1:{prom_port}"
    try:
        for url in (f"http://127.0.0.1:{worker_port}/metrics",
                    f"http://127.0.0.1:{api_port}/metrics", f"{prom}/-/ready"):
            wait_http(url)
        start = time.time()
        sent = asyncio.run(load(prefix, args.seconds))
        time.sleep(8)  # the last publication (5 s) and scrapes
        end = time.time()
        print(f"enqueued {sent} tasks over {end - start:.0f} s")
        dashboard = json.loads(DASHBOARD.read_text())
        results: dict[int, list[Any]] = {}
        empty = 0
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = substitute(target["expr"], RATE)
                q = urllib.parse.urlencode({"query": expr, "start": start, "end": end,
                                            "step": 2})
                answer = get(f"{prom}/api/v1/query_range?{q}")
                series = answer["data"]["result"] if answer["status"] == "success" else []
                points = sum(len(s["values"]) for s in series)
                empty += points == 0
                results.setdefault(panel["id"], []).append((target, series))
                print(f"{'ok  ' if points else 'EMPTY'} {panel['title'][:45]:45} "
                      f"{len(series):3} series {points:5} points  {target.get('legendFormat', '')}")
        for var in dashboard["templating"]["list"]:
            query = var.get("query")
            if isinstance(query, dict):
                m = re.match(r"label_values\((.*), (\w+)\)", substitute(query["query"], "10s"))
                assert m, query
                values = get(f"{prom}/api/v1/label/{m.group(2)}/values?"
                             + urllib.parse.urlencode({"match[]": m.group(1)}))["data"]
                print(f"variable {var['name']}: {values}")
        if args.preview:
            from bench.dashboard_preview import render  # noqa: PLC0415

            render(dashboard, results, args.preview, start, end)
            print(f"preview written to {args.preview}")
        return 1 if empty else 0
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        import redis  # noqa: PLC0415

        r = redis.Redis.from_url(os.environ.get("TASKQ_REDIS_URL", "redis://127.0.0.1:6379/0"))
        for pattern in (f"{{{prefix}:*", f"{prefix}:*"):
            keys = list(r.scan_iter(match=pattern, count=1000))
            for i in range(0, len(keys), 500):
                r.delete(*keys[i:i + 500])


if __name__ == "__main__":
    sys.exit(main())
