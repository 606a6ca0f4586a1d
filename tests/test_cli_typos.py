"""What a new user's slips meet: a mistyped queue name is refused with a suggestion (CLI and
HTTP), pausing a queue before it exists needs --create, short --task names for dead letters,
a replay that matched nothing says so, enqueue's follow-it command works as printed, a queue
used only at high/low priority is one queue, and `taskq task` shows why a task was cancelled."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from taskq import TaskQueue, Worker, admin, codec
from taskq.cli import app
from taskq.cli.tasks import follow_command
from taskq.errors import QueueNotFound
from taskq.records import TaskStatus
from taskq.worker.main import cli as worker_cli
from taskq.worker.main import warn_unused_queues
from tests.api_fixtures import ADMIN
from tests.apps.cli_app import build
from tests.helpers import eventually

T = TypeVar("T")
runner = CliRunner()


@pytest.fixture
def cli(redis_url: str, prefix: str) -> Callable[..., Result]:
    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(app, ["--redis-url", redis_url, "--prefix", prefix, *args],
                             env={"COLUMNS": "160", **(env or {})})
    return invoke


@pytest.fixture
def on_redis(redis_url: str, prefix: str) -> Callable[..., Any]:
    def go(fn: Callable[[TaskQueue], Awaitable[T]]) -> T:
        async def main() -> T:
            tq = build(prefix, redis_url)
            try:
                return await fn(tq)
            finally:
                await tq.aclose()
        return asyncio.run(main())
    return go


def _typo_setup(on_redis: Callable[..., Any]) -> None:
    """Queue ``jobs`` in use; ``jbos`` only as the empty stream a worker started with
    ``--queues jbos`` creates."""
    async def fn(tq: TaskQueue) -> None:
        add = tq.get_task("add")
        assert add is not None
        await tq.enqueue_many([add.message(1, 2)])
        await tq.ensure_groups(["jbos"])
    on_redis(fn)


def test_a_mistyped_queue_is_refused_with_a_suggestion(cli: Callable[..., Result],
                                                       on_redis: Any) -> None:
    _typo_setup(on_redis)
    for args in (["purge", "jbos", "--yes"],
                 ["tasks", "jbos"], ["dead", "list", "jbos"], ["queue", "jbos"],
                 ["dead", "replay", "jbos", "--all", "--yes"]):
        r = cli(*args)
        assert r.exit_code == 1, (args, r.output)
        assert r.stderr.startswith("error: no queue named 'jbos' (known: jobs)"), r.stderr
        assert "did you mean 'jobs'?" in r.stderr and len(r.stderr.splitlines()) == 1
    assert [q["name"] for q in json.loads(cli("queues", "--json").stdout)["queues"]] == ["jobs"]


def test_pausing_a_queue_before_it_exists_works_and_warns(cli: Callable[..., Result],
                                                         on_redis: Any) -> None:
    """Pausing before the deploy that brings a queue's tasks is legitimate: it is done, with a
    warning naming the known queues and the closest one (a typo is seen, nothing refused)."""
    _typo_setup(on_redis)
    r = cli("pause", "jbos")
    assert r.exit_code == 0, r.output
    assert r.stderr.startswith("warning: no queue named 'jbos' (known: jobs"), r.stderr
    assert "did you mean 'jobs'?" in r.stderr and "paused anyway" in r.stderr
    assert cli("resume", "jbos").exit_code == 0
    assert not on_redis(lambda tq: tq.redis.exists(tq.keys("jbos").paused))
    r = cli("pause", "reports", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout) == {"queue": "reports", "paused": True}
    assert "paused anyway" in r.stderr
    info = json.loads(cli("queue", "reports", "--json").stdout)["queue"]  # a queue now
    assert info["paused"] is True
    listed = json.loads(cli("queues", "--json").stdout)["queues"]
    assert [(q["name"], q["paused"]) for q in listed] == [("jbos", False), ("jobs", False),
                                                         ("reports", True)]
    assert cli("resume", "reports").exit_code == 0


async def test_http_unknown_queue_is_404_and_pause_warns(
        client: httpx.AsyncClient, app_tq: TaskQueue) -> None:
    add = app_tq.get_task("add")
    assert add is not None
    await app_tq.enqueue_many([add.message(1, 2)])
    queue = add.options.queue
    await app_tq.ensure_groups([queue + "x"])  # a mistyped worker's empty stream
    r = await client.get(f"/queues/{queue}x", headers=ADMIN)
    assert r.status_code == 404 and r.json()["detail"].startswith(f"no queue named '{queue}x'")
    assert f"did you mean '{queue}'?" in r.json()["detail"]
    for path in ("dead/replay", "dead/purge"):
        r = await client.post(f"/queues/{queue}x/{path}", headers=ADMIN,
                              json={"all": True} if path.startswith("dead") else None)
        assert r.status_code == 404, (path, r.text)
    r = await client.post(f"/queues/{queue}/pause", headers=ADMIN)
    assert r.status_code == 200 and r.json() == {"queue": queue, "paused": True}
    r = await client.post("/queues/later/pause", headers=ADMIN)
    assert r.status_code == 200 and r.json()["paused"] is True
    assert r.json()["warning"].startswith("no queue named 'later'")
    assert (await client.get("/queues/later", headers=ADMIN)).json()["paused"] is True


def _dead(on_redis: Callable[..., Any], names: list[str]) -> None:
    """Dead letters of queue ``jobs`` for tasks of these full names, as a worker writes them."""
    async def fn(tq: TaskQueue) -> None:
        keys = tq.keys("jobs")
        flaky = tq.get_task("flaky")
        assert flaky is not None
        await tq.enqueue_many([flaky.message(0)])  # registers the queue
        await admin.purge_queue(tq, "jobs")
        for n, name in enumerate(names):
            tid = f"jobs:{1000 + n}-0"
            await tq.redis.xadd(keys.dead, {
                "id": tid, "entry": f"{1000 + n}-0", "task": name, "reason": "max_attempts",
                "error_type": "RuntimeError", "error": "no", "attempts": 1,
                "enqueued_ms": 1000, "failed_ms": 2000, "worker": "w",
                "payload": codec.encode(flaky.message(n).with_attempts(1, tid))})
    on_redis(fn)


def test_dead_letter_task_filters_take_a_short_name(cli: Callable[..., Result],
                                                    on_redis: Any) -> None:
    _dead(on_redis, ["myapp.tasks.send_email", "myapp.tasks.send_email", "myapp.tasks.resize"])
    listed = json.loads(cli("dead", "list", "jobs", "--task", "send_email", "--json").stdout)
    assert [d["task"] for d in listed["dead_letters"]] == ["myapp.tasks.send_email"] * 2
    r = cli("dead", "replay", "jobs", "--task", "tasks.resize", "--yes", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["replayed"] == 1
    r = cli("dead", "purge", "jobs", "--task", "send_email", "--yes")
    assert r.exit_code == 0 and "deleted 2 dead letter(s)" in r.stdout


def test_an_ambiguous_short_task_name_lists_the_candidates(cli: Callable[..., Result],
                                                           on_redis: Any) -> None:
    _dead(on_redis, ["myapp.tasks.send_email", "myapp.billing.send_email"])
    for args in (["dead", "list", "jobs"], ["dead", "purge", "jobs", "--yes"],
                 ["dead", "replay", "jobs", "--yes"]):
        r = cli(*args, "--task", "send_email")
        assert r.exit_code == 2, (args, r.output)
        assert "'myapp.billing.send_email', 'myapp.tasks.send_email'" in r.stderr
    assert json.loads(cli("queue", "jobs", "--json").stdout)["queue"]["dead"] == 2


def test_a_replay_or_purge_that_matched_nothing_says_so(cli: Callable[..., Result],
                                                        on_redis: Any) -> None:
    _dead(on_redis, ["myapp.tasks.send_email"])
    r = cli("dead", "replay", "jobs", "--task", "nosuch", "--yes")
    assert r.exit_code == 1 and "queued again" not in r.output
    assert "no dead letter of task 'nosuch' in queue 'jobs' matched" in r.stderr
    r = cli("dead", "purge", "jobs", "--task", "nosuch", "--yes")
    assert r.exit_code == 1 and "nothing was deleted" in r.stderr


def test_enqueue_prints_a_follow_command_that_works(cli: Callable[..., Result],
                                                    redis_url: str, prefix: str) -> None:
    r = cli("enqueue", "add", "--app", "tests.apps.cli_app:tq", "--kwargs", '{"a": 1, "b": 2}')
    assert r.exit_code == 0, r.output
    line = next(s for s in r.stdout.splitlines() if s.startswith("follow it: "))
    command = line.removeprefix("follow it: ").split()
    assert command[0] == "taskq" and "--prefix" in command and prefix in command
    followed = runner.invoke(app, command[1:], env={"TASKQ_REDIS_URL": redis_url,
                                                    "TASKQ_PREFIX": ""})
    assert followed.exit_code == 0, followed.output
    assert "queued" in followed.stdout


def test_the_follow_command_names_what_a_bare_taskq_would_miss(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKQ_REDIS_URL", raising=False)
    monkeypatch.delenv("TASKQ_PREFIX", raising=False)
    assert follow_command("redis://localhost:6379/0", "taskq", "q:1-0") == (
        "taskq task q:1-0", False)
    assert follow_command("redis://h:6380/2", "nu", "q!high:1-0") == (
        "taskq --redis-url redis://h:6380/2 --prefix nu task 'q!high:1-0'", False)
    command, hidden = follow_command("redis://:s3cret@h:6379/0", "taskq", "q:1-0")
    assert hidden and "s3cret" not in command
    assert command == "TASKQ_REDIS_URL='redis://:***@h:6379/0' taskq task q:1-0"
    monkeypatch.setenv("TASKQ_REDIS_URL", "redis://:s3cret@h:6379/0")
    monkeypatch.setenv("TASKQ_PREFIX", "nu")
    assert follow_command("redis://:s3cret@h:6379/0", "nu", "q:1-0") == (
        "taskq task q:1-0", False)


def test_task_shows_why_it_was_cancelled(cli: Callable[..., Result], on_redis: Any) -> None:
    async def fn(tq: TaskQueue) -> str:
        add = tq.get_task("add")
        assert add is not None
        (h,) = await tq.enqueue_many([add.message(1, 2)])
        await tq.cancel(h.id)
        return h.id

    task_id = on_redis(fn)
    r = cli("task", task_id)
    assert r.exit_code == 0, r.output
    assert ": cancelled" not in r.stdout
    row = next(s for s in r.stdout.splitlines() if "cancelled before it ran" in s)
    assert "reason" in row and "error" not in row


async def test_a_queue_used_only_at_high_priority_is_one_queue(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    @tq.task(queue="hi")
    async def job(n: int) -> int:
        return n

    handles = [await job.with_options(priority="high").enqueue(i) for i in range(3)]
    start_worker(tq, queues=("hi",), block_ms=100)
    for h in handles:
        assert (await tq.wait(h.id, timeout=30)).status is TaskStatus.SUCCEEDED

    async def counted() -> bool:
        return (await admin.queue_info(tq, "hi")).completed_total == 3

    await eventually(counted, timeout=20, what="completions of the high lane counted")
    other = TaskQueue(tq.url, prefix=tq.prefix)  # the CLI's view: no registered task
    try:
        assert "hi" in [q.name for q in await admin.list_queues(other)]
        info = await admin.queue_info(other, "hi")
        assert info.consumers == 1 and info.completed_total == 3
        assert sum((await admin.throughput(other, "hi", 3))[1]) == 3
        (consumer,) = await admin.consumers(other, "hi")
        assert consumer.alive
    finally:
        await other.aclose()


async def test_a_lane_only_queue_exists_and_a_typo_does_not(tq: TaskQueue) -> None:
    @tq.task(queue="low-only")
    async def job() -> None: ...

    await job.with_options(priority="low").enqueue()
    view = TaskQueue(tq.url, prefix=tq.prefix)
    try:
        assert (await admin.queue_info(view, "low-only")).priority_waiting["low"] == 1
        with pytest.raises(QueueNotFound) as caught:
            await admin.queue_info(view, "low-onyl")
        assert caught.value.suggestion == "low-only"
    finally:
        await view.aclose()


def test_worker_warns_of_queues_no_task_uses(caplog: pytest.LogCaptureFixture,
                                             prefix: str, redis_url: str) -> None:
    tq = build(prefix, redis_url)
    with caplog.at_level(logging.WARNING, logger="taskq.worker"):
        assert warn_unused_queues(tq, ("jobs", "jbos", "jobs!high")) == ["jbos"]
    (record,) = caplog.records
    assert "no registered task uses queue 'jbos'" in record.getMessage()
    assert "did you mean 'jobs'?" in record.getMessage()


@pytest.mark.parametrize("command", [["worker", "--concurrency", "x"], ["api", "--port", "x"],
                                     ["worker", "--bogus"]])
def test_worker_and_api_usage_errors_are_one_line(command: list[str]) -> None:
    taskq = Path(sys.executable).parent / "taskq"  # the console script, as a user runs it
    r = subprocess.run([str(taskq), *command], check=False, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, r
    assert r.stderr.startswith("error: ") and len(r.stderr.splitlines()) == 1, r.stderr
    assert f"(try 'taskq {command[0]} --help')" in r.stderr
    assert "╭" not in r.stderr


def test_worker_help_shows_flags_as_flags() -> None:
    shown = runner.invoke(worker_cli, ["--help"], prog_name="taskq worker")
    assert shown.exit_code == 0
    assert "<bool>" not in shown.output and "╭" not in shown.output
    line = next(s for s in shown.output.splitlines() if s.strip().startswith("--check"))
    assert line.split()[1] == "healthcheck:"
