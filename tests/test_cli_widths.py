"""Issue 13 item 2: ids are never cut. At 60 to 200 columns every table keeps each task id,
dead letter id and worker id whole on one line (other columns wrap or give way, and no line is
wider than the output), and enqueue's `taskq task <id>` hint is never broken across lines."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result
from rich.cells import cell_len
from typer.testing import CliRunner

from taskq import TaskQueue, TaskStatus, codec
from taskq.cli import app
from taskq.keys import worker_alive_key, workers_key
from taskq.records import bucket_key, encode_record
from tests.apps.cli_app import build

runner = CliRunner()
WIDTHS = (60, 80, 100, 120, 200)
LONG_QUEUE = "notifications-eu-west"  # long ids: "notifications-eu-west:1718000000000-0"


@pytest.fixture(scope="module")
def seeded(redis_url: str) -> Any:
    """One prefix for the module (the reads never change it): tasks with long ids and long
    arguments, delayed ones, a failed record, dead letters and two workers."""
    import uuid  # noqa: PLC0415  (a module-scoped prefix; the `prefix` fixture is per test)

    prefix = f"t{uuid.uuid4().hex[:10]}"

    async def seed() -> dict[str, Any]:
        tq = build(prefix, redis_url)
        try:
            add = tq.get_task("add")
            assert add is not None
            long_ids = [h.id for h in await tq.enqueue_many(
                [add.build((10**15 + i, 7), {}, queue=LONG_QUEUE) for i in range(3)])]
            jobs = [h.id for h in await tq.enqueue_many([add.message(i, 1) for i in range(2)])]
            delayed = [h.id for h in await tq.enqueue_many(
                [add.build((5, 5), {}, queue=LONG_QUEUE)], delay=600)]
            keys = tq.keys(LONG_QUEUE)
            failed_id = long_ids[0]
            await tq.redis.hset(bucket_key(keys, failed_id), failed_id, encode_record(
                TaskStatus.FAILED, task="add", args=[1], kwargs={"b": 2}, attempts=1,
                error_type="RuntimeError", error="connection reset by peer " * 4,
                finished_ms=1_718_000_000_000))
            dead_ids = []
            for n in range(2):
                tid = f"{LONG_QUEUE}:{1_718_000_000_000 + n}-0"
                payload = codec.encode(add.build((n, 1), {}).with_attempts(3, tid))
                dead = await tq.redis.xadd(keys.dead, {
                    "id": tid, "entry": f"{1_718_000_000_000 + n}-0", "task": "add",
                    "reason": "max_attempts", "error_type": "RuntimeError",
                    "error": "the remote end hung up unexpectedly " * 3, "attempts": 3,
                    "enqueued_ms": 1000, "failed_ms": 2000, "worker": "w", "payload": payload})
                dead_ids.append(dead.decode())
            worker = {"id": "worker-host-a-very-long-hostname-example-org-4242-7f3a9c",
                      "host": "host-a.very-long-hostname.example.org", "pid": 4242,
                      "queues": [LONG_QUEUE, "jobs"], "concurrency": 50, "in_flight": 3,
                      "processed": 123456, "failed": 7, "heartbeat": 1}
            await tq.redis.hset(workers_key(prefix), mapping={  # type: ignore[misc]
                worker["id"]: json.dumps(worker)})
            await tq.redis.set(worker_alive_key(prefix, str(worker["id"])), b"1", px=600_000)
            return {"prefix": prefix, "long": long_ids, "jobs": jobs, "delayed": delayed,
                    "dead": dead_ids, "dead_tasks": [f"{LONG_QUEUE}:{1_718_000_000_000 + n}-0"
                                                     for n in range(2)],
                    "worker": worker["id"]}
        finally:
            await tq.aclose()

    data = asyncio.run(seed())
    yield data

    async def clean() -> None:
        tq = TaskQueue(redis_url, prefix=prefix)
        try:
            for pattern in (f"{{{prefix}:*", f"{prefix}:*"):
                found = [k async for k in tq.redis.scan_iter(match=pattern, count=1000)]
                if found:
                    await tq.redis.delete(*found)
        finally:
            await tq.aclose()

    asyncio.run(clean())


def at(width: int, redis_url: str, prefix: str) -> Callable[..., Result]:
    def invoke(*args: str) -> Result:
        result = runner.invoke(app, ["--redis-url", redis_url, "--prefix", prefix, *args],
                               env={"COLUMNS": str(width)})
        assert result.exit_code == 0, (args, result.output)
        return result
    return invoke


def assert_whole(output: str, ids: list[str], width: int, what: object) -> None:
    lines = output.splitlines()
    for ident in ids:
        assert any(ident in line for line in lines), (what, width, ident, output)
    assert all(cell_len(line) <= width for line in lines), (what, width, output)


@pytest.mark.parametrize("width", WIDTHS)
def test_tables_never_cut_ids(seeded: dict[str, Any], redis_url: str, width: int) -> None:
    cli = at(width, redis_url, seeded["prefix"])
    cases: list[tuple[list[str], list[str]]] = [
        (["tasks", LONG_QUEUE], seeded["long"] + seeded["delayed"]),
        (["tasks", LONG_QUEUE, "--status", "queued"], seeded["long"][1:]),
        (["tasks", "jobs"], seeded["jobs"]),
        (["queue", LONG_QUEUE], seeded["delayed"] + seeded["dead_tasks"]),
        (["dead", "list", LONG_QUEUE], seeded["dead"] + seeded["dead_tasks"]),
        (["dead", "show", LONG_QUEUE, seeded["dead"][0]],
         [seeded["dead"][0], seeded["dead_tasks"][0]]),
        (["task", seeded["long"][1]], [seeded["long"][1]]),
        (["task", seeded["long"][0]], [seeded["long"][0]]),
        (["workers", "--keep-dead"], [seeded["worker"]]),
        (["queues"], [LONG_QUEUE, "jobs"]),
    ]
    for args, ids in cases:
        assert_whole(cli(*args).stdout, ids, width, args)


@pytest.mark.parametrize("width", WIDTHS)
def test_narrow_tables_say_which_columns_gave_way(seeded: dict[str, Any], redis_url: str,
                                                  width: int) -> None:
    out = at(width, redis_url, seeded["prefix"])("dead", "list", LONG_QUEUE).stdout
    flat = " ".join(out.split())
    if width >= 160:
        assert "too narrow" not in flat and "hung up" in flat
    if width <= 80:
        assert "too narrow for:" in flat and "error" in flat


@pytest.mark.parametrize("width", (*WIDTHS, 40))
def test_the_enqueue_hint_is_never_broken(redis_url: str, prefix: str, width: int) -> None:
    result = at(width, redis_url, prefix)("enqueue", "add", "--app", "tests.apps.cli_app:tq",
                                          "--kwargs", '{"a": 1, "b": 2}')
    lines = result.stdout.splitlines()
    hint = [line for line in lines if line.startswith("follow it: taskq ")]
    assert len(hint) == 1, result.stdout
    assert " task " in hint[0]  # (with --redis-url and --prefix: the test's Redis and prefix)
    task_id = hint[0].rsplit(" task ", 1)[1].strip()
    assert task_id.startswith("jobs:") and "…" not in task_id
    shown = at(width, redis_url, prefix)("task", task_id, "--json")
    assert json.loads(shown.stdout)["id"] == task_id
