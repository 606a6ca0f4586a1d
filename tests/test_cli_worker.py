"""The CLI against a real worker process: a paused queue is really not consumed; a replayed
dead letter really runs again; a killed worker shows as dead and is cleaned."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

import pytest
import redis
from click.testing import Result
from typer.testing import CliRunner

from taskq.cli import app
from tests.helpers import wait_sync

runner = CliRunner()
APP = "tests.apps.cli_app:tq"


@pytest.fixture
def cli(redis_url: str, prefix: str) -> Callable[..., Any]:
    def invoke(*args: str) -> Any:
        r: Result = runner.invoke(app, ["--redis-url", redis_url, "--prefix", prefix, *args],
                                  env={"TEST_PREFIX": prefix})
        assert r.exit_code == 0, (args, r.exit_code, r.output)
        return json.loads(r.stdout) if "--json" in args else r.stdout
    return invoke


def enqueue(cli: Callable[..., Any], task: str, kwargs: dict[str, Any]) -> str:
    data = cli("enqueue", task, "--app", APP, "--kwargs", json.dumps(kwargs), "--json")
    return str(data["task_id"])


def status(cli: Callable[..., Any], task_id: str) -> str:
    return str(cli("task", task_id, "--json")["status"])


def test_paused_queue_is_not_consumed_by_a_running_worker(
    cli: Callable[..., Any], worker_process: Callable[..., Any]
) -> None:
    w = worker_process(APP, "--queues", "jobs,canary", "--concurrency", "4")
    first = enqueue(cli, "add", {"a": 1, "b": 1})
    wait_sync(lambda: status(cli, first) == "succeeded", 20, what="worker running")
    cli("pause", "jobs", "--json")
    wait_sync(lambda: "paused queues: jobs" in w.output(), 10, what="worker saw the pause")
    # a read issued before the pause may still be in flight: let a canary flush it
    canary = enqueue(cli, "ping", {"n": 1})
    wait_sync(lambda: status(cli, canary) == "succeeded", 10, what="canary ran")
    held = [enqueue(cli, "add", {"a": i, "b": 1}) for i in range(5)]
    # the worker keeps reading (a second canary runs) but takes nothing from the paused queue
    canary2 = enqueue(cli, "ping", {"n": 2})
    wait_sync(lambda: status(cli, canary2) == "succeeded", 10, what="second canary ran")
    info = cli("queue", "jobs", "--json")["queue"]
    assert (info["paused"], info["lag"], info["in_flight"]) == (True, 5, 0)
    assert {status(cli, t) for t in held} == {"queued"}
    cli("resume", "jobs", "--json")
    wait_sync(lambda: all(status(cli, t) == "succeeded" for t in held), 20,
              what="tasks ran after resume")


def test_replay_makes_a_dead_task_run_again(
    cli: Callable[..., Any], worker_process: Callable[..., Any], redis_url: str, prefix: str
) -> None:
    worker_process(APP, "--queues", "jobs")
    task_id = enqueue(cli, "flaky", {"n": 7})
    wait_sync(lambda: status(cli, task_id) == "dead", 20, what="poison dead-lettered")
    letters = cli("dead", "list", "jobs", "--json")["dead_letters"]
    assert [(d["task_id"], d["error"]) for d in letters] == [(task_id, "flaky 7 is broken")]


    client = redis.Redis.from_url(redis_url)
    client.set(f"{prefix}:t:fixed", 1)  # the fix is deployed
    client.close()
    assert cli("dead", "replay", "jobs", "--all", "--yes", "--json")["replayed"] == 1
    wait_sync(lambda: status(cli, task_id) == "succeeded", 20, what="replayed task succeeded")
    rec = cli("task", task_id, "--json")
    assert (rec["result"], rec["attempts"]) == (7, 1)
    assert cli("dead", "list", "jobs", "--json")["dead_letters"] == []


def test_killed_worker_is_shown_dead_then_cleaned(
    cli: Callable[..., Any], worker_process: Callable[..., Any]
) -> None:
    w = worker_process(APP, "--queues", "jobs")
    wait_sync(lambda: cli("workers", "--json", "--keep-dead")["workers"], 20,
              what="worker registered")
    w.signal(signal.SIGKILL)
    w.wait(10)

    def dead() -> bool:
        ws = cli("workers", "--json", "--keep-dead")["workers"]
        return bool(ws) and not ws[0]["alive"]

    wait_sync(dead, 20, interval=0.2, what="heartbeat expired")
    assert "DEAD" in cli("workers", "--keep-dead")
    assert cli("workers", "--json")["cleaned"] == 1
    assert cli("workers", "--json")["workers"] == []
