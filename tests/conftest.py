"""Fixtures: a real Redis (TASKQ_TEST_REDIS_URL or the local one), a key prefix per test so
tests never see each other's keys, workers in the test's loop or as real processes, and the
CLI on the test's prefix."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis as redis_sync
from click.testing import Result
from typer.testing import CliRunner

from taskq import TaskQueue, Worker, WorkerConfig
from taskq.cli import app as cli_app
from tests.apps import cli_app as cli_tasks
from tests.apps.common import build
from tests.helpers import WorkerProcess

pytest_plugins = ("tests.api_fixtures", "tests.scaleout")

REDIS_URL = os.environ.get("TASKQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
T = TypeVar("T")


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis_sync.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis_sync.exceptions.ConnectionError as exc:
        pytest.exit(f"tests need a Redis server at {REDIS_URL}: {exc}", returncode=3)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    client = redis_sync.Redis.from_url(redis_url)
    for pattern in (f"{{{name}:*", f"{name}:*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
    client.close()


@pytest.fixture
async def tq(redis_url: str, prefix: str) -> AsyncIterator[TaskQueue]:
    app = TaskQueue(redis_url, prefix=prefix)
    yield app
    await app.aclose()


@pytest.fixture
async def app(redis_url: str, prefix: str) -> AsyncIterator[TaskQueue]:
    """The TaskQueue of tests/apps/common.py, the one worker subprocesses serve (tests that
    need another app override this fixture)."""
    queue = build(prefix, redis_url)
    yield queue
    await queue.aclose()


@pytest.fixture
async def start_worker() -> AsyncIterator[Callable[..., Worker]]:
    """Start a Worker in the test's event loop; every one is stopped at teardown."""
    running: list[tuple[Worker, asyncio.Task[None]]] = []

    def start(app: TaskQueue, **config: object) -> Worker:
        config.setdefault("queues", tuple(app.queues) or ("default",))
        w = Worker(app, WorkerConfig(**config))  # type: ignore[arg-type]
        running.append((w, asyncio.create_task(w.run())))
        return w

    yield start
    died = [(w, t) for w, t in running if t.done() and not w.stopping]
    for w, _ in running:
        w.stop()
    crashed: list[str] = []
    for w, t in running:
        try:
            await asyncio.wait_for(asyncio.shield(t), 30)
        except TimeoutError:
            stuck = [f"{task.get_name()}: {task.get_stack(limit=1)}"
                     for task in asyncio.all_tasks() if not task.done()]
            crashed.append(f"worker {w.id} did not stop within 30 s of stop(); tasks: {stuck}")
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        except asyncio.CancelledError:
            crashed.append(f"worker {w.id} was cancelled")
        except Exception as exc:  # reported below: the test fails
            crashed.append(f"worker {w.id} crashed: {exc!r}")
        else:
            if (w, t) in died:
                crashed.append(f"worker {w.id} ended before the test stopped it")
    if crashed:
        pytest.fail("; ".join(crashed), pytrace=False)


@pytest.fixture
def worker_process(
    redis_url: str, prefix: str, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``python -m worker APP`` subprocesses with TEST_PREFIX set; killed at teardown."""
    procs: list[WorkerProcess] = []

    def start(app: str, *args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        full_env = {"TEST_PREFIX": prefix, "TASKQ_REDIS_URL": redis_url, **(env or {})}
        p = WorkerProcess(app, full_env, *args, log=tmp_path / f"worker{len(procs)}.log")
        procs.append(p)
        return p

    yield start
    # a process that ended although the test neither signalled, killed nor waited for it died
    # unexpectedly: the test fails (tests that expect an exit call p.expect_exit())
    died = [p for p in procs if p.proc.poll() is not None and not p.exit_expected]
    for p in procs:
        p.kill()
    if died:
        pytest.fail("; ".join(f"worker process {p.pid} exited unexpectedly with code "
                              f"{p.proc.returncode}:\n{p.output()[-2000:]}" for p in died),
                    pytrace=False)


@pytest.fixture
def cli(redis_url: str, prefix: str) -> Callable[..., Result]:
    """Run the ``taskq`` CLI in-process on the test's prefix (modules needing other options
    override this fixture)."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        # one table width whatever the terminal running the tests (xdist workers, CI): tests
        # of narrow terminals pass their own COLUMNS
        return runner.invoke(cli_app, ["--redis-url", redis_url, "--prefix", prefix, *args],
                             input=input, env={"COLUMNS": "160", **(env or {})})
    return invoke


@pytest.fixture
def on_redis(redis_url: str, prefix: str) -> Callable[..., Any]:
    """Run ``fn(tq)`` on a fresh TaskQueue of tests/apps/cli_app.py on the test's prefix (the
    CLI's tests are sync)."""
    def go(fn: Callable[[TaskQueue], Awaitable[T]]) -> T:
        async def main() -> T:
            tq = cli_tasks.build(prefix, redis_url)
            try:
                return await fn(tq)
            finally:
                await tq.aclose()
        return asyncio.run(main())
    return go
