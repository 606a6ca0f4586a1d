"""The HTTP API, the CLI and the dashboard's JSON endpoints on a ``redis+sentinel://`` URL (1
master, 1 replica, 3 Sentinels, started here for the module): enqueue, status, queue lists,
/ready; and /ready and the API keep working after a ``SENTINEL FAILOVER``."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from faults.topology import LocalSentinel
from taskq import TaskQueue, Worker
from taskq.cli import app as cli_app
from tests.api_fixtures import ADMIN, READ, make_app, serve
from tests.apps.api_tasks import build
from tests.helpers import eventually
from tests.scaleout import require_redis_server, started

PASSWORD = "s3ntinel-pw-xyz"


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSentinel]:
    require_redis_server("a Redis Sentinel test")
    with started(LocalSentinel(Path(tmp_path_factory.mktemp("sentinel-api")),
                               password=PASSWORD)) as s:
        yield s


@pytest.fixture
async def stq(sentinel: LocalSentinel) -> AsyncIterator[TaskQueue]:
    tq = build(f"s{uuid.uuid4().hex[:8]}", sentinel.url)
    yield tq
    await tq.aclose()


def cli(sentinel: LocalSentinel, tq: TaskQueue, *args: str) -> Any:
    r = CliRunner().invoke(cli_app, ["--redis-url", sentinel.url, "--prefix", tq.prefix,
                                     "--json", *args])
    assert r.exit_code == 0, r.output
    assert PASSWORD not in r.output
    return json.loads(r.stdout)


async def run_add(http: httpx.AsyncClient, a: int, b: int) -> str:
    """Enqueue ``add`` through the API and wait (through the API) for its result."""
    r = await http.post("/enqueue/add", json={"a": a, "b": b}, headers=ADMIN)
    assert r.status_code in (200, 201, 202), r.text
    task_id = str(r.json()["id"])

    async def done() -> dict[str, Any] | None:
        got = (await http.get(f"/tasks/{task_id}", headers=READ)).json()
        return got if got["status"] == "succeeded" else None

    record = await eventually(done, 30, what="the task to succeed")
    assert record["result"] == a + b, record
    return task_id


async def test_api_cli_and_dashboard_endpoints_on_sentinel(
        stq: TaskQueue, sentinel: LocalSentinel,
        start_worker: Callable[..., Worker]) -> None:
    worker = start_worker(stq)
    async with serve(make_app(stq)) as http:
        assert (await http.get("/ready")).json() == {"status": "ready"}
        task_id = await run_add(http, 2, 3)
        failed = (await http.post("/enqueue/fail", json={"message": "nope"},
                                  headers=ADMIN)).json()["id"]
        await stq.wait(failed, 20)
        # what the dashboard's pages read
        queues = (await http.get("/queues", headers=READ)).json()
        assert "default" in {q["name"] for q in queues}
        one = (await http.get("/queues/default", headers=READ)).json()
        assert one["name"] == "default"
        assert (await http.get("/queues/default/throughput", headers=READ)).status_code == 200
        consumers = (await http.get("/queues/default/consumers", headers=READ)).json()
        assert worker.id in {c["name"] for c in consumers}
        failures = (await http.get("/queues/default/failures", headers=READ)).json()
        assert [f["task_id"] for f in failures] == [failed]
        dead = (await http.get("/queues/default/dead", headers=READ)).json()
        assert [d["task_id"] for d in dead] == [failed]
        done = (await http.get("/queues/default/tasks", params={"status": "succeeded"},
                               headers=READ)).json()
        assert task_id in {t["id"] for t in done}
        workers = (await http.get("/workers", headers=READ)).json()
        assert worker.id in {w["id"] for w in workers}
        assert (await http.get(f"/workers/{worker.id}", headers=READ)).json()["alive"] is True
        assert (await http.get("/registry", headers=READ)).status_code == 200
        assert (await http.get("/whoami", headers=READ)).json()["role"] == "read"
    # the CLI on the same Sentinel URL
    listed = await asyncio.to_thread(cli, sentinel, stq, "queues")
    assert "default" in json.dumps(listed)
    shown = await asyncio.to_thread(cli, sentinel, stq, "task", task_id)
    assert shown["id"] == task_id and shown["status"] == "succeeded", shown


async def test_ready_and_the_api_follow_a_failover(
        stq: TaskQueue, sentinel: LocalSentinel,
        start_worker: Callable[..., Worker]) -> None:
    start_worker(stq)
    async with serve(make_app(stq)) as http:
        await run_add(http, 1, 1)
        before = sentinel.current_master()
        new = await asyncio.to_thread(sentinel.failover)
        assert new is not before
        deadline = time.monotonic() + 60
        while (await http.get("/ready")).status_code != 200:  # a moment of 503 is allowed
            assert time.monotonic() < deadline, "/ready did not come back after the failover"
            await asyncio.sleep(0.2)
        task_id = await run_add(http, 20, 22)
        assert (await http.get("/ready")).json() == {"status": "ready"}
        queues = (await http.get("/queues", headers=READ)).json()
        assert "default" in {q["name"] for q in queues}
    shown = await asyncio.to_thread(cli, sentinel, stq, "task", task_id)
    assert shown["status"] == "succeeded"
    admin = new.admin()
    try:  # it ran on the new master
        assert admin.exists(stq.keys("default").stream)
    finally:
        admin.close()


@pytest.fixture
async def aof_tq(sentinel: LocalSentinel) -> AsyncIterator[TaskQueue]:
    tq = build(f"s{uuid.uuid4().hex[:8]}", sentinel.url, min_replicas=1)
    tq.wait_aof = True
    yield tq
    await tq.aclose()


async def test_wait_aof_on_redis_70_confirms_with_wait(
        aof_tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    """``wait_aof`` through the real clients (async and blocking) on this Redis 7.0: WAIT, so
    the one replica confirms (WAITAOF itself needs 7.2: tests/test_durability_aof.py)."""
    add = aof_tq.registry["add"]
    handles = [await add.enqueue(a=1, b=2),
               await asyncio.to_thread(add.enqueue_sync, a=3, b=4)]
    worker = start_worker(aof_tq)
    assert await handles[0].result(timeout=30) == 3
    assert await asyncio.to_thread(handles[1].result, 30) == 7
    assert worker.completer.unreplicated == 0
