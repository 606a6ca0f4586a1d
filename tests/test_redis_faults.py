"""Redis faults (issue 12): malformed and unix:// URLs, a wrong password and a missing ACL
permission (the worker exits 78, the service says so in one line, /ready fails), and a Redis at
maxmemory that recovers once the workers drain it. Each test runs its own redis-server."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from faults.redis_server import RedisServer
from taskq import TaskQueue
from taskq.admin.queues import pause, resume
from taskq.admin.workers import list_workers
from taskq.cli import app as cli_app
from taskq.connection import check_url
from taskq.errors import ConfigError, RedisOutOfMemory, RedisPermissionError, ResultUnavailable
from taskq.handle import TaskHandle
from taskq.keys import worker_alive_key
from taskq.records import TERMINAL_STATUSES, TaskStatus
from tests.api_fixtures import ADMIN, make_app, serve
from tests.apps import memory_tasks
from tests.apps.api_tasks import build
from tests.helpers import ROOT, WorkerProcess, eventually, wait_sync

PASSWORD = "s3cret-faults-pw"
USER_PASSWORD = "s3cret-faults-user"
APP = "tests.apps.api_tasks:tq"
MEMORY_APP = "tests.apps.memory_tasks:tq"
EXIT_CONFIG = 78

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server with a password, a Unix socket, noeviction, and two ACL users:
    ``elsewhere`` (every command, none of the test's keys) and ``noxadd`` (every key, no XADD)."""
    sock = tmp_path / "redis.sock"
    srv = RedisServer(tmp_path / "redis", password=PASSWORD,
                      extra=["--unixsocket", str(sock), "--unixsocketperm", "700",
                             "--maxmemory-policy", "noeviction"])
    srv.start()
    admin = srv.admin()
    admin.execute_command("ACL", "SETUSER", "elsewhere", "on", f">{USER_PASSWORD}",
                          "~elsewhere:*", "&*", "+@all")
    admin.execute_command("ACL", "SETUSER", "noxadd", "on", f">{USER_PASSWORD}", "~*", "&*",
                          "+@all", "-xadd")
    admin.close()
    try:
        yield srv
    finally:
        srv.stop()


def url(srv: RedisServer, auth: str = "") -> str:
    return f"redis://{auth or f':{PASSWORD}@'}127.0.0.1:{srv.port}/0"


def worker(prefix: str, redis_url: str, tmp_path: Path, *args: str,
           app: str = APP) -> WorkerProcess:
    return WorkerProcess(app, {"TEST_PREFIX": prefix, "TASKQ_REDIS_URL": redis_url}, *args,
                         log=tmp_path / f"worker-{len(list(tmp_path.glob('worker-*')))}.log")


# -- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["redis://:6546/0", "redis://host/abc", "redis://h:99999/0",
                                 "http://localhost:6379/0", "unix://", "redis://h/0?db=x"])
def test_malformed_urls_are_refused_in_one_line(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="malformed Redis URL") as refused:
        TaskQueue(bad)
    assert "\n" not in str(refused.value)
    with pytest.raises(ConfigError):
        check_url(bad)
    r = CliRunner().invoke(cli_app, ["--redis-url", bad, "queues"])
    assert r.exit_code == 2, r.output
    assert "malformed Redis URL" in r.output and "Traceback" not in r.output
    # the worker and the service: one line, their configuration-error exit codes
    env = {**os.environ, "TASKQ_REDIS_URL": bad, "TEST_PREFIX": "p"}
    for cmd, code in ((["-m", "worker", APP], 2), (["-m", "taskq.service", APP], 2)):
        p = subprocess.run([sys.executable, *cmd], check=False, cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == code, (cmd, p.stdout, p.stderr)
        assert "malformed Redis URL" in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_good_urls_are_kept() -> None:
    for good in ("redis://localhost:6379/0", "redis://h", "rediss://u:p@h:1/3",
                 "unix:///run/redis.sock?db=2", "redis://h:6379?db=1"):
        assert check_url(good) == good


async def test_unix_socket_urls_work_for_library_worker_cli_and_api(
        server: RedisServer, tmp_path: Path, prefix: str) -> None:
    sock_url = f"unix://:{PASSWORD}@{tmp_path / 'redis.sock'}?db=0"
    tq = build(prefix, sock_url)
    try:
        handle = await tq.registry["add"].enqueue(a=2, b=3)  # the library (async)
        tq.registry["add"].enqueue_sync(a=1, b=1)  # (blocking)
        w = worker(prefix, sock_url, tmp_path)
        try:
            assert await handle.result(timeout=30) == 5  # a real worker over the socket
        finally:
            w.kill()
        r = await asyncio.to_thread(  # (the CLI runs its own event loop)
            CliRunner().invoke, cli_app, ["--redis-url", sock_url, "--prefix", prefix, "queue",
                                          "default"])
        assert r.exit_code == 0, r.output
        async with serve(make_app(tq)) as http:
            ready = await http.get("/ready")
            assert ready.status_code == 200, ready.text
    finally:
        await tq.aclose()


# -- credentials and permissions --------------------------------------------------------------


def test_a_wrong_password_stops_the_worker_with_78(server: RedisServer, tmp_path: Path,
                                                   prefix: str) -> None:
    w = worker(prefix, url(server, ":wrong-password@"), tmp_path)
    try:
        assert w.wait(60) == EXIT_CONFIG
    finally:
        w.kill()
    assert "authentication failed" in w.output()
    assert "unreachable" not in w.output()


@pytest.mark.parametrize("user", ["elsewhere", "noxadd"])
def test_a_missing_permission_stops_the_worker_with_78(server: RedisServer, tmp_path: Path,
                                                       prefix: str, user: str) -> None:
    admin = server.admin()
    if user == "noxadd":  # the worker starts; promoting a delayed task meets the missing XADD
        tq = build(prefix, url(server))
        tq.registry["add"].with_options(delay=0.2).enqueue_sync(a=1, b=2)
    w = worker(prefix, url(server, f"{user}:{USER_PASSWORD}@"), tmp_path)
    try:
        assert w.wait(60) == EXIT_CONFIG
    finally:
        w.kill()
        admin.close()
    out = w.output()
    assert "permission denied (NOPERM)" in out, out
    assert out.count("NOPERM") <= 3, out  # once, not a retry loop


def test_the_service_start_says_auth_and_acl_failures_in_one_line(
        server: RedisServer, prefix: str) -> None:
    for auth, what in ((":wrong-password@", "authentication failed"),
                       (f"elsewhere:{USER_PASSWORD}@", "NOPERM")):
        env = {**os.environ, "TASKQ_REDIS_URL": url(server, auth), "TEST_PREFIX": prefix,
               "TASKQ_API_KEYS": ADMIN["X-API-Key"], "TASKQ_PORT": "1"}
        p = subprocess.run([sys.executable, "-m", "taskq.service", APP], check=False, cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == EXIT_CONFIG, p.stderr
        assert what in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert PASSWORD not in p.stderr and USER_PASSWORD not in p.stderr


async def test_acl_refusals_fail_ready_and_name_the_permission(
        server: RedisServer, prefix: str) -> None:
    tq = build(prefix, url(server, f"noxadd:{USER_PASSWORD}@"))
    try:
        with pytest.raises(RedisPermissionError, match="'xadd' command"):
            await tq.ready()
        # a delayed task that could never be promoted is not accepted
        with pytest.raises(RedisPermissionError, match=r"'xadd' command.*promoting"):
            await tq.registry["add"].with_options(delay=60).enqueue(a=1, b=2)
        with pytest.raises(RedisPermissionError, match="'xadd' command"):
            tq.registry["add"].with_options(delay=60).enqueue_sync(a=1, b=2)
        admin = server.admin()
        assert admin.exists(tq.keys("default").delayed) == 0
        admin.close()
    finally:
        await tq.aclose()
    # the HTTP API: 503 naming the permission, and /ready 503 saying why
    full = build(prefix, url(server))
    await full.ready()
    async with serve(make_app(full)) as http:
        admin = server.admin()
        admin.execute_command("ACL", "SETUSER", "default", "-xadd")
        try:
            r = await http.post("/enqueue/add", json={"a": 1, "b": 2}, headers=ADMIN)
            assert r.status_code == 503, r.text
            assert "NOPERM" in r.text and "xadd" in r.text.lower(), r.text
            assert PASSWORD not in r.text
            r = await http.post("/enqueue/add?delay=60", json={"a": 1, "b": 2}, headers=ADMIN)
            assert r.status_code == 503, r.text
            ready = await http.get("/ready")
            assert ready.status_code == 503 and "'xadd' command" in ready.text, ready.text
        finally:
            admin.execute_command("ACL", "SETUSER", "default", "+xadd")
            admin.close()
        assert (await http.get("/ready")).status_code == 200
    await full.aclose()


# -- memory pressure --------------------------------------------------------------------------


def _fill(tq: TaskQueue, admin: Any, room: int) -> list[str]:
    """Enqueue until Redis refuses for memory (``room`` bytes over what is used now)."""
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory", used + room)
    size = tq.registry["size"]
    accepted: list[str] = []
    for i in range(100_000):
        try:
            accepted.append(size.enqueue_sync(text=f"{i:08d}" * 64).id)  # 512 characters
        except RedisOutOfMemory:
            return accepted
    raise AssertionError("Redis never ran out of memory")


async def test_a_full_redis_recovers_once_workers_drain_it(
        server: RedisServer, tmp_path: Path, prefix: str) -> None:
    tq = memory_tasks.build(prefix, url(server))
    admin = server.admin()
    # a worker runs all along; its queue is paused while producers fill Redis
    await pause(tq, "default")
    w = worker(prefix, url(server), tmp_path, app=MEMORY_APP)
    try:
        async def registered() -> bool:
            return any(i.alive for i in await list_workers(tq))
        await eventually(registered, timeout=30)
        delayed = await tq.registry["size"].with_options(delay=1).enqueue(text="x" * 42)
        accepted = await asyncio.to_thread(_fill, tq, admin, 600_000)
        assert len(accepted) > 100
        # refused cleanly: the library, the API (503 saying so, Retry-After), /ready, the CLI
        limit = int(admin.config_get("maxmemory")["maxmemory"])
        admin.config_set("maxmemory", 1)  # (even a small write is refused while they look)
        with pytest.raises(RedisOutOfMemory, match="out of memory"):
            await tq.registry["size"].enqueue(text="y")
        async with serve(make_app(tq)) as http:
            r = await http.post("/enqueue/size", json={"text": "z"}, headers=ADMIN)
            assert r.status_code == 503 and "out of memory" in r.text, r.text
            assert r.headers["Retry-After"]
            ready = await http.get("/ready")
            assert ready.status_code == 503 and "out of memory" in ready.text, ready.text
        r2 = await asyncio.to_thread(
            CliRunner().invoke, cli_app, ["--redis-url", url(server), "--prefix", prefix,
                                          "enqueue", "size", "--app", MEMORY_APP,
                                          "--kwargs", '{"text": "z"}'])
        assert r2.exit_code == 1, r2.output  # docs/cli.md: out of memory exits 1
        assert "out of memory" in r2.output and len(r2.output.strip().splitlines()) == 1
        # the worker drains it: every accepted task ends in a terminal record
        admin.config_set("maxmemory", limit)  # full, as when the last enqueue was refused
        await resume(tq, "default")  # (a DEL: allowed at maxmemory)
        async def drained() -> bool:
            return await tq.redis.xlen(tq.keys("default").stream) == 0
        await eventually(drained, timeout=120)
        stats = await tq.redis.hgetall(tq.keys("default").stats)  # type: ignore[misc]
        assert int(stats.get(b"records_lean", 0)) > 0  # finishing work added no memory
        # enqueues succeed again, and the delayed task accepted before is promoted and runs
        async def enqueue_again() -> bool:
            try:
                await tq.registry["size"].enqueue(text="again")
            except RedisOutOfMemory:
                return False
            return True
        await eventually(enqueue_again, timeout=60)
        # (reads in a MULTI are refused at maxmemory too: statuses are read once it has room)
        for task_id in [*accepted[:50], *accepted[-50:]]:
            status = (await tq.status(task_id)).status
            assert status in TERMINAL_STATUSES, (task_id, status)
        # a task that finished while Redis was full says its result was not kept (its int
        # return type would fail to validate the missing result)
        lean = None
        for task_id in accepted:  # the first ones ran while Redis was full
            record = await tq.status(task_id)
            if record.result_dropped:
                lean = record
                break
        assert lean is not None and lean.status is TaskStatus.SUCCEEDED
        with pytest.raises(ResultUnavailable, match="Redis was out of memory"):
            await TaskHandle(lean.id, tq, tq.registry["size"]).result(timeout=5)
        # (its result may not be kept: it may finish while Redis is still full, see the docs)
        assert (await delayed.wait(timeout=60)).status == TaskStatus.SUCCEEDED
        assert (await tq.status(accepted[0])).status == TaskStatus.SUCCEEDED
        assert "out of memory" in w.output()
    finally:
        w.kill()
        admin.config_set("maxmemory", 0)
        admin.close()
        await tq.aclose()


async def test_a_live_worker_is_not_forgotten_while_redis_is_full(
        server: RedisServer, tmp_path: Path, prefix: str) -> None:
    tq = build(prefix, url(server))
    admin = server.admin()
    w = worker(prefix, url(server), tmp_path)
    try:
        async def registered() -> bool:
            return any(i.alive for i in await list_workers(tq))
        await eventually(registered, timeout=30)
        (info,) = await list_workers(tq)
        admin.config_set("maxmemory", 1)
        wait_sync(lambda: "heartbeat kept alive" in w.output(), timeout=30)
        # longer than the heartbeat key's TTL (3 beats + 1 s): it would have expired
        deadline = asyncio.get_running_loop().time() + 9
        while asyncio.get_running_loop().time() < deadline:
            assert await tq.redis.exists(worker_alive_key(prefix, info.id))
            assert [i.alive for i in await list_workers(tq)] == [True]
            await asyncio.sleep(0.5)
        assert w.proc.poll() is None
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
        w.kill()
        await tq.aclose()


# -- an outage during a limit check ----------------------------------------------------------


async def test_an_outage_during_a_limit_check_uses_no_attempt(
        tmp_path: Path, prefix: str, start_worker: Any) -> None:
    """Redis dies (SIGKILL, AOF on) just as a limited task's limit check is sent and comes
    back 19 s later, past the ~17 s a worker used to retry the check before leaving the entry
    to return after its lease (one delivery more: counted as a run, a max_attempts=1 task was
    dead-lettered as worker_lost without running). The task runs once and succeeds."""
    srv = RedisServer(tmp_path / "aof", persistence="always")
    srv.start()
    app = TaskQueue(srv.url, prefix=prefix)
    runs: list[int] = []
    try:
        @app.task(name="limited", queue="lim", concurrency_limit=1, max_attempts=1)
        async def limited(n: int) -> int:
            runs.append(n)
            return n

        throttle = app.scripts.throttle
        outage: list[asyncio.Task[None]] = []

        async def restart_later() -> None:
            await asyncio.sleep(19)  # the outage (fault injection, not a wait for a state)
            await asyncio.to_thread(srv.start)

        async def killing_throttle(**kwargs: Any) -> Any:
            if not outage:  # the first check: Redis dies as it is sent
                await asyncio.to_thread(srv.kill)
                outage.append(asyncio.create_task(restart_later()))
            return await throttle(**kwargs)

        app.scripts.throttle = killing_throttle  # type: ignore[method-assign]
        handle = await limited.enqueue(7)
        start_worker(app, queues=("lim",), lease_ms=30_000, renew_every_ms=10_000,
                     block_ms=200)
        async def went_down() -> bool:
            return bool(outage)

        await eventually(went_down, timeout=30, what="the first limit check")
        await outage[0]  # Redis is back
        record = await handle.wait(timeout=90)
        assert record.status is TaskStatus.SUCCEEDED, record
        assert record.attempts == 1 and runs == [7]
    finally:
        await app.aclose()
        srv.stop()
