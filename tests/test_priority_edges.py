"""Priorities at the edges: ``taskq enqueue --priority``, ``POST /v1/enqueue/{task}?priority=``,
the worker's ``--queue-order``, and ``taskq queue`` showing the levels and waits."""

from __future__ import annotations

import json

import httpx
from typer.testing import CliRunner

from taskq import TaskQueue
from taskq.cli import app as cli_app
from taskq.worker.main import cli as worker_cli
from tests.api_fixtures import READ

runner = CliRunner()


def test_cli_enqueue_with_a_priority_and_queue_shows_levels(redis_url: str,
                                                            prefix: str) -> None:
    base = ["--redis-url", redis_url, "--prefix", prefix]
    env = {"TEST_PREFIX": prefix}
    r = runner.invoke(cli_app, [*base, "enqueue", "add", "--app", "tests.apps.cli_app:tq",
                                "--kwargs", '{"a": 1, "b": 2}', "--priority", "high",
                                "--json"], env=env)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["queue"] == "jobs!high" and data["task_id"].startswith("jobs!high:")
    r = runner.invoke(cli_app, [*base, "enqueue", "add", "--app", "tests.apps.cli_app:tq",
                                "--kwargs", '{"a": 1, "b": 2}', "--json"], env=env)
    assert r.exit_code == 0, r.output
    info = json.loads(runner.invoke(cli_app, [*base, "queue", "jobs", "--json"]).stdout)
    queue = info.get("queue", info)
    assert queue["priority_waiting"] == {"high": 1, "normal": 1, "low": 0}
    shown = runner.invoke(cli_app, [*base, "queue", "jobs"]).stdout
    assert "by priority" in shown and "rate/concurrency limit" in shown
    bad = runner.invoke(cli_app, [*base, "enqueue", "add", "--app", "tests.apps.cli_app:tq",
                                  "--priority", "urgent"], env=env)
    assert bad.exit_code != 0


async def test_api_enqueue_with_a_priority(client: httpx.AsyncClient, app_tq: TaskQueue) -> None:
    r = await client.post("/enqueue/add", params={"priority": "high"}, json={"a": 2, "b": 3},
                          headers=READ)
    assert r.status_code == 202, r.text
    assert r.json()["queue"] == "default!high"
    status = await client.get(f"/tasks/{r.json()['id']}", headers=READ)
    assert status.json()["status"] == "queued"
    bad = await client.post("/enqueue/add", params={"priority": "urgent"},
                            json={"a": 2, "b": 3}, headers=READ)
    assert bad.status_code == 422


def test_worker_refuses_an_unknown_queue_order() -> None:
    r = runner.invoke(worker_cli, ["tests.apps.basic:tq", "--queue-order", "random"])
    assert r.exit_code != 0 and "queue-order" in r.output
