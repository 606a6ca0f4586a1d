"""The ``taskq`` CLI with Typer's CliRunner against a real Redis: every command, every --json
shape, and the error cases with their exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from click.testing import Result
from typer.testing import CliRunner

from taskq import TaskQueue, admin, codec
from taskq.cli import app
from taskq.keys import worker_alive_key, workers_key
from tests.support import end_lean

runner = CliRunner()

QUEUE_KEYS = {"name", "length", "in_flight", "lag", "delayed", "dead", "consumers",
              "oldest_waiting_age_s", "completed_last_minute", "completed_total",
              "retried_total", "dead_total", "lost_total", "paused", "expired_total",
              "deferred_total", "throttled_total", "priority_waiting"}
RECORD_KEYS = {"id", "queue", "status", "task", "args", "kwargs", "attempts", "enqueued_ms",
               "started_ms", "finished_ms", "run_at_ms", "result", "error_type", "error",
               "traceback", "progress", "progress_message", "worker", "entry_id", "deliveries",
               "result_dropped"}
DEAD_KEYS = {"id", "queue", "task_id", "entry", "task", "reason", "error_type", "error",
             "traceback", "attempts", "enqueued_ms", "failed_ms", "worker", "args", "kwargs",
             "payload_ok"}


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, (result.exit_code, result.output)
    return json.loads(result.stdout)


def enqueue_some(on_redis: Callable[..., Any], n: int = 3, delayed: int = 1) -> list[str]:
    async def fn(tq: TaskQueue) -> list[str]:
        add = tq.get_task("add")
        assert add is not None
        hs = await tq.enqueue_many([add.message(i, 1) for i in range(n)])
        hs += await tq.enqueue_many([add.message(100, 1) for _ in range(delayed)], delay=300)
        return [h.id for h in hs]
    return on_redis(fn)  # type: ignore[no-any-return]


def test_help_everywhere_has_an_example_and_exit_codes() -> None:
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0 and "Exit codes" in top.output and "Example" in top.output
    for cmd in (["queues"], ["queue"], ["tasks"], ["task"], ["dead"], ["dead", "list"],
                ["dead", "show"], ["dead", "replay"], ["dead", "purge"], ["workers"],
                ["pause"], ["resume"], ["purge"], ["cancel"], ["enqueue"], ["watch"],
                ["schedules"], ["schedule"], ["schedule", "pause"], ["schedule", "resume"]):
        r = runner.invoke(app, [*cmd, "--help"])
        assert r.exit_code == 0 and "Example" in r.output, cmd


def test_queues_table_and_json(cli: Callable[..., Result], on_redis: Any) -> None:
    enqueue_some(on_redis)
    r = cli("queues")
    assert r.exit_code == 0 and "jobs" in r.stdout and "waiting" in r.stdout
    data = as_json(cli("queues", "--json"))
    assert [q["name"] for q in data["queues"]] == ["canary", "jobs"] or \
        [q["name"] for q in data["queues"]] == ["jobs"]
    jobs = next(q for q in data["queues"] if q["name"] == "jobs")
    assert set(jobs) == QUEUE_KEYS
    assert (jobs["length"], jobs["lag"], jobs["delayed"], jobs["paused"]) == (3, 3, 1, False)


def test_queue_in_depth(cli: Callable[..., Result], on_redis: Any) -> None:
    enqueue_some(on_redis)
    r = cli("queue", "jobs")
    assert r.exit_code == 0
    for section in ("Consumers", "Next delayed tasks", "Recent failures"):
        assert section in r.stdout
    data = as_json(cli("queue", "jobs", "--json"))
    assert set(data) == {"queue", "consumers", "next_delayed", "recent_failures"}
    assert set(data["queue"]) == QUEUE_KEYS
    assert [set(d) for d in data["next_delayed"]] == [{"task_id", "task", "run_at_ms",
                                                       "attempts"}]


def test_tasks_and_task(cli: Callable[..., Result], on_redis: Any) -> None:
    ids = enqueue_some(on_redis)
    data = as_json(cli("tasks", "jobs", "--status", "queued", "--limit", "10", "--json"))
    assert [t["id"] for t in data["tasks"]] == ids
    assert all(set(t) == RECORD_KEYS and t["status"] == "queued" for t in data["tasks"])
    assert as_json(cli("tasks", "jobs", "--status", "running", "--json"))["tasks"] == []
    r = cli("tasks", "jobs")
    assert r.exit_code == 0 and ids[0] in r.stdout
    one = as_json(cli("task", ids[0], "--json"))
    assert set(one) == RECORD_KEYS
    assert (one["status"], one["task"], one["kwargs"]) == ("queued", "add", {"a": 0, "b": 1})
    r = cli("task", ids[0])
    assert r.exit_code == 0 and "a=0, b=1" in r.stdout and "queued" in r.stdout


def test_a_result_not_kept_for_lack_of_memory_shows(cli: Callable[..., Result],
                                                    on_redis: Any) -> None:
    ids = enqueue_some(on_redis, n=2, delayed=0)
    assert as_json(cli("task", ids[0], "--json"))["result_dropped"] is False

    async def end(tq: TaskQueue) -> None:  # as a worker ends it while Redis is out of memory
        await end_lean(tq, ids[0])
    on_redis(end)
    one = as_json(cli("task", ids[0], "--json"))
    assert (one["status"], one["result"], one["result_dropped"]) == ("succeeded", None, True)
    r = cli("task", ids[0])
    assert r.exit_code == 0 and "succeeded" in r.stdout
    flat = " ".join(r.stdout.replace("│", " ").split())
    assert "result not kept: Redis was out of memory" in flat, r.stdout
    assert "arguments (not kept)" in flat, r.stdout


def test_long_arguments_are_shortened(cli: Callable[..., Result], on_redis: Any) -> None:
    async def fn(tq: TaskQueue) -> str:
        # a raw message with a long value (as an older producer might have sent)
        payload = codec.encode(codec.Message("nap", (), {"seconds": "x" * 500}))
        entry = await tq.redis.xadd(tq.keys("jobs").stream, {"m": payload})
        return f"jobs:{entry.decode()}"

    task_id = on_redis(fn)
    r = cli("task", task_id)
    assert r.exit_code == 0 and "seconds=" in r.stdout and "…" in r.stdout
    assert "x" * 300 not in r.stdout
    full = cli("task", task_id, "--full")
    flat = "".join(full.stdout.split()).replace("│", "")
    assert "x" * 500 in flat


def with_password(url: str, password: str) -> str:
    """The test Redis's URL with ``password`` in place of any credentials it has."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f":{password}@{host}"))


def test_errors_are_one_line_with_exit_codes(cli: Callable[..., Result], on_redis: Any,
                                             prefix: str, redis_url: str) -> None:
    enqueue_some(on_redis)
    wrong_password = with_password(redis_url, "secret")
    cases = [
        (cli("queue", "nope"), 1, "no queue named 'nope'"),
        (cli("task", "jobs:1-1"), 1, "no task with id"),
        (cli("task", "not-a-task-id"), 1, "no task with id"),
        (cli("dead", "show", "jobs", "1-1"), 1, "no dead letter"),
        (cli("tasks", "jobs", "--status", "bogus"), 2, "unknown status"),
        (cli("dead", "replay", "jobs"), 2, "say which dead letters"),
        (runner.invoke(app, ["--redis-url", "redis://127.0.0.1:1/0", "queues"]), 3,
         "cannot reach Redis at redis://127.0.0.1:1/0"),
        (runner.invoke(app, ["--redis-url", wrong_password, "--prefix",
                             prefix, "queues"]), 3, "refused the credentials"),
        (cli("enqueue", "add", "--app", "tests.apps.cli_app:tq", "--args", "[1,"), 2,
         "--args is not valid JSON"),
        (cli("enqueue", "add", "--app", "tests.apps.cli_app:tq", "--kwargs", "[1]"), 2,
         "--kwargs must be a JSON object"),
        (cli("enqueue", "add", "--app", "tests.apps.cli_app:tq", "--kwargs", '{"a": "x"}'), 2,
         "invalid arguments"),
        (cli("enqueue", "nosuch", "--app", "tests.apps.cli_app:tq"), 1, "not registered"),
        (cli("enqueue", "add", "--app", "tests.apps.nosuchmodule:tq"), 2, "cannot import"),
    ]
    for result, code, text in cases:
        assert result.exit_code == code, (text, result.exit_code, result.output)
        assert text in result.stderr, (text, result.stderr)
        assert "Traceback" not in result.output and len(result.stderr.splitlines()) == 1
        assert "secret" not in result.stderr


def test_enqueue_validates_with_the_app(cli: Callable[..., Result], on_redis: Any,
                                        prefix: str) -> None:
    data = as_json(cli("enqueue", "add", "--app", "tests.apps.cli_app:tq", "--args", "[2]",
                       "--kwargs", '{"b": 3}', "--json", env={"TEST_PREFIX": prefix}))
    assert set(data) == {"task_id", "task", "queue"} and data["queue"] == "jobs"
    rec = as_json(cli("task", data["task_id"], "--json"))
    assert rec["kwargs"] == {"a": 2, "b": 3} and rec["status"] == "queued"
    later = as_json(cli("enqueue", "add", "--app", "tests.apps.cli_app:tq", "--kwargs",
                        '{"a": 1, "b": 1}', "--delay", "60", "--json"))
    assert as_json(cli("task", later["task_id"], "--json"))["run_at_ms"] is not None


def test_pause_resume_purge_cancel(cli: Callable[..., Result], on_redis: Any,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ids = enqueue_some(on_redis, n=4, delayed=1)
    # answers typed at a terminal (without one, confirmations refuse: test_cli_confirm.py)
    monkeypatch.setattr("taskq.cli.common.interactive", lambda: True)
    assert as_json(cli("pause", "jobs", "--json")) == {"queue": "jobs", "paused": True}
    assert as_json(cli("queues", "--json"))["queues"][-1]["paused"] is True
    assert "paused" in cli("queues").stdout
    assert as_json(cli("resume", "jobs", "--json")) == {"queue": "jobs", "paused": False}
    declined = cli("cancel", ids[0], input="n\n")
    assert declined.exit_code == 1 and "nothing was changed" in declined.stderr
    assert as_json(cli("cancel", ids[0], "--yes", "--json")) == {"task_id": ids[0],
                                                                 "outcome": "queued"}
    assert as_json(cli("task", ids[0], "--json"))["status"] == "cancelled"
    again = cli("cancel", ids[0], "--yes")
    assert again.exit_code == 1 and "already ended" in again.stderr
    no = cli("purge", "jobs", input="n\n")
    assert no.exit_code == 1
    assert as_json(cli("queue", "jobs", "--json"))["queue"]["lag"] == 3
    r = cli("purge", "jobs", input="y\n")
    assert r.exit_code == 0 and "purged 4 waiting tasks" in r.stdout
    q = as_json(cli("queue", "jobs", "--json"))["queue"]
    assert (q["length"], q["lag"], q["delayed"]) == (0, 0, 0)
    assert as_json(cli("purge", "jobs", "--yes", "--json")) == {"queue": "jobs", "purged": 0}


def test_dead_letters_list_show_replay_purge(cli: Callable[..., Result], on_redis: Any) -> None:
    async def fn(tq: TaskQueue) -> list[str]:
        keys = tq.keys("jobs")
        flaky = tq.get_task("flaky")
        assert flaky is not None
        await tq.enqueue_many([flaky.message(0)])  # registers the queue
        await admin.purge_queue(tq, "jobs")
        out = []
        for n in range(3):  # dead letters as a worker writes them
            msg = flaky.message(n)
            tid = f"jobs:{1000 + n}-0"
            payload = codec.encode(msg.with_attempts(1, tid))
            dead_id = await tq.redis.xadd(keys.dead, {
                "id": tid, "entry": f"{1000 + n}-0", "task": "flaky", "reason": "max_attempts",
                "error_type": "RuntimeError", "error": f"flaky {n} is broken",
                "traceback": "Traceback (most recent call last):\nRuntimeError", "attempts": 1,
                "enqueued_ms": 1000, "failed_ms": 2000, "worker": "w", "payload": payload})
            out.append(dead_id.decode())
        return out

    dead_ids = on_redis(fn)
    listing = as_json(cli("dead", "list", "jobs", "--json"))
    assert [d["id"] for d in listing["dead_letters"]] == dead_ids[::-1]
    assert all(set(d) == DEAD_KEYS for d in listing["dead_letters"])
    assert as_json(cli("dead", "list", "jobs", "--task", "add", "--json")) == {"dead_letters": []}
    table = cli("dead", "list", "jobs")
    assert table.exit_code == 0 and "flaky 2 is broken" in table.stdout
    shown = as_json(cli("dead", "show", "jobs", dead_ids[0], "--json"))
    assert shown["kwargs"] == {"n": 0} and shown["reason"] == "max_attempts"
    by_task = cli("dead", "show", "jobs", "jobs:1001-0")
    assert by_task.exit_code == 0 and "RuntimeError" in by_task.stdout
    refused = cli("dead", "replay", "jobs", dead_ids[0])  # no terminal, no --yes
    assert refused.exit_code == 1
    assert as_json(cli("dead", "replay", "jobs", dead_ids[0], "--yes", "--json")) == {
        "queue": "jobs", "replayed": 1, "workflow_steps": [], "kept": []}
    rec = as_json(cli("task", "jobs:1000-0", "--json"))
    assert (rec["status"], rec["attempts"], rec["kwargs"]) == ("queued", 0, {"n": 0})
    assert as_json(cli("dead", "purge", "jobs", "--task", "flaky", "--yes", "--json")) == {
        "queue": "jobs", "purged": 2}
    assert as_json(cli("queue", "jobs", "--json"))["queue"]["dead"] == 0


def test_workers_dead_shown_then_cleaned(cli: Callable[..., Result], on_redis: Any,
                                         prefix: str) -> None:
    info = {"id": "w-dead", "host": "h1", "pid": 11, "queues": ["jobs"], "concurrency": 8,
            "in_flight": 2, "processed": 40, "failed": 3, "heartbeat": 1}

    async def fn(tq: TaskQueue) -> None:
        await tq.redis.hset(workers_key(prefix), mapping={  # type: ignore[misc]
            "w-dead": json.dumps(info), "w-live": json.dumps({**info, "id": "w-live"})})
        await tq.redis.set(worker_alive_key(prefix, "w-live"), b"1", px=60_000)

    on_redis(fn)
    shown = cli("workers", "--keep-dead")
    assert shown.exit_code == 0 and "DEAD" in shown.stdout and "w-dead" in shown.stdout
    data = as_json(cli("workers", "--json"))
    assert [(w["id"], w["alive"]) for w in data["workers"]] == [("w-live", True),
                                                                ("w-dead", False)]
    assert data["cleaned"] == 1
    assert set(data["workers"][0]) == {"id", "host", "pid", "queues", "concurrency",
                                       "in_flight", "processed", "succeeded", "failed",
                                       "retried", "dead", "reclaimed", "started_ms",
                                       "heartbeat_ms", "stopping", "alive"}
    assert [w["id"] for w in as_json(cli("workers", "--json"))["workers"]] == ["w-live"]


def test_watch_is_bounded(cli: Callable[..., Result], on_redis: Any) -> None:
    enqueue_some(on_redis)
    r = cli("watch", "--seconds", "0.3", "--interval", "0.1")
    assert r.exit_code == 0, r.output
    assert "jobs" in r.stdout and "Workers" in r.stdout
