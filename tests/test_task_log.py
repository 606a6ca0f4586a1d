"""The worker's per-task log line (text or JSON, off below INFO) and its healthcheck."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from taskq.worker.tasklog import task_log
from tests.apps.cli_app import build
from tests.helpers import ROOT, WorkerProcess, eventually

APP = "tests.apps.cli_app:tq"


def task_lines(w: WorkerProcess) -> list[dict[str, Any]]:
    out = []
    for line in w.output().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record["logger"] == "taskq.tasks":
                out.append(record)
    return out


def check(prefix: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", APP, "--check"], cwd=ROOT, capture_output=True,
        text=True, timeout=60, check=False,
        env={**os.environ, "TEST_PREFIX": prefix, "TASKQ_REDIS_URL": redis_url},
    )


@pytest.fixture
def quiet_tasks_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("taskq.tasks")
    level = logger.level
    yield logger
    logger.setLevel(level)


async def test_json_task_lines_name_each_outcome(
    worker_process: Callable[..., WorkerProcess], redis_url: str, prefix: str
) -> None:
    w = worker_process(APP, "--queues", "jobs", "--log-format", "json")
    tq = build(prefix, redis_url)
    try:
        ok = await tq.registry["add"].enqueue(a=1, b=2)
        bad = await tq.registry["flaky"].enqueue(n=7)
        await ok.result(timeout=20)
        await tq.wait(bad.id, timeout=20)
    finally:
        await tq.aclose()
    lines = await eventually(lambda: _async(lambda: len(task_lines(w)) >= 2 and task_lines(w)),
                             timeout=10, what="two per-task lines")
    by_id = {r["task_id"]: r for r in lines}
    assert by_id[ok.id]["outcome"] == "succeeded"
    assert by_id[bad.id]["outcome"] == "dead"
    for r, task in ((by_id[ok.id], "add"), (by_id[bad.id], "flaky")):
        assert r["task"] == task and r["queue"] == "jobs" and r["attempt"] == 1
        assert r["level"] == "INFO" and r["duration_ms"] >= 0
        assert r["message"].startswith(f"task {r['task_id']} {r['outcome']} ")


async def test_text_task_line_and_none_below_info(
    worker_process: Callable[..., WorkerProcess], redis_url: str, prefix: str
) -> None:
    loud = worker_process(APP, "--queues", "jobs")
    tq = build(prefix, redis_url)
    try:
        first = await tq.registry["add"].enqueue(a=1, b=1)
        await first.result(timeout=20)
        await eventually(lambda: _async(lambda: f"task {first.id} succeeded task=add "
                                        "queue=jobs attempt=1 duration_ms=" in loud.output()),
                         what="the text line")
        loud.kill()
        quiet = worker_process(APP, "--queues", "jobs", "--log-level", "warning")
        second = await tq.registry["add"].enqueue(a=2, b=2)
        assert await second.result(timeout=20) == 4
        assert second.id not in quiet.output()  # the line is written before the ack
    finally:
        await tq.aclose()


def test_disabled_task_log_is_none(quiet_tasks_logger: logging.Logger) -> None:
    quiet_tasks_logger.setLevel(logging.WARNING)
    assert task_log() is None  # the hot path then tests `is None` only
    quiet_tasks_logger.setLevel(logging.INFO)
    assert task_log() is not None


async def test_check_is_healthy_only_while_a_worker_of_this_host_heartbeats(
    worker_process: Callable[..., WorkerProcess], redis_url: str, prefix: str
) -> None:
    before = check(prefix, redis_url)
    assert before.returncode == 1 and "no live worker" in before.stderr, before
    w = worker_process(APP, "--queues", "jobs")
    healthy = await eventually(lambda: _async(lambda: check(prefix, redis_url).returncode == 0),
                               timeout=20, interval=0.2, what="a healthy check")
    assert healthy
    w.kill()
    # A killed worker stops heartbeating: unhealthy once its heartbeat key expires.
    after = await eventually(lambda: _async(lambda: check(prefix, redis_url).returncode == 1),
                             timeout=30, interval=0.5, what="an unhealthy check")
    assert after


async def _async(fn: Callable[[], Any]) -> Any:
    return fn()
