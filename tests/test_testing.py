"""taskq.testing: memory:// URLs, drain through the real worker, the pytest plugin's fixtures.

Each test runs twice: on a fresh in-memory stand-in, and on the test Redis under a prefix of
its own (the plugin's one setting, ``taskq_redis_url``), so the same test passes on both.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from taskq import ConfigError, TaskQueue, TaskStatus, memory
from taskq.codec import Message, encode
from taskq.fastapi import DurableTasks
from taskq.testing import DrainTimeout, Harness, SyncDrainInEventLoop, bind, drain, enqueued
from taskq.testing.clock import next_due_in_ms
from taskq.url_choice import UrlSource

pytest_plugins = ["pytester"]

ran: list[object] = []
flaky_calls: list[int] = []

app = TaskQueue("redis://127.0.0.1:1/0", prefix="testing")  # never reached: tests rebind it


@app.task(max_attempts=3, backoff=30)
async def always_fails(n: int) -> None:
    raise ValueError(f"no {n}")


@app.task(max_attempts=3, backoff=30)
def flaky(n: int) -> int:
    flaky_calls.append(n)
    if len(flaky_calls) < 3:
        raise RuntimeError("not yet")
    return n * 2


@app.task
async def record(value: int) -> int:
    ran.append(value)
    return value


waiting_on: list[asyncio.Event] = []


@app.task
async def waits() -> None:
    await waiting_on[-1].wait()


@app.task(queue="other")
async def elsewhere(value: str) -> str:
    ran.append(value)
    return value


@pytest.fixture(params=["memory", "redis"])
def taskq_redis_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
def taskq_app() -> Iterator[TaskQueue]:
    ran.clear()
    flaky_calls.clear()
    yield app


async def test_always_failing_task_ends_dead_after_three_attempts_in_one_fast_drain(
        taskq_memory: Harness) -> None:
    handle = await always_fails.enqueue(7)
    started = time.monotonic()
    result = await taskq_memory.drain()
    elapsed = time.monotonic() - started
    assert elapsed < 1.0  # the backoffs (15-30 s, then 30-60 s) were fast-forwarded
    record = await handle.status()
    assert record.status is TaskStatus.DEAD
    assert record.attempts == 3
    assert (result.failed, result.retried, result.dead, result.succeeded) == (3, 2, 1, 0)
    assert result.processed == 3
    [letter] = result.dead_letters
    assert (letter.task_id, letter.reason, letter.attempts) == (handle.id, "max_attempts", 3)
    assert letter.error_type == "ValueError"
    assert result.dead_reasons() == {handle.id: "max_attempts"}


async def test_retry_then_success(taskq_memory: Harness) -> None:
    handle = await flaky.enqueue(21)
    result = await taskq_memory.drain()
    assert flaky_calls == [21, 21, 21]
    assert result.counts == {"succeeded": 1, "retried": 2, "dead": 0, "expired": 0}
    assert await handle.result(timeout=1) == 42
    assert (await handle.status()).attempts == 3


async def test_an_hour_delay_runs_in_drain(taskq_memory: Harness) -> None:
    handle = await record.with_options(delay=timedelta(hours=1)).enqueue(5)
    [waiting] = taskq_memory.enqueued(record)
    assert waiting.run_at_ms is not None and waiting.kwargs == {"value": 5}
    assert await next_due_in_ms(app.redis, [app.keys("default")]) > 3_000_000
    result = await taskq_memory.drain()
    assert ran == [5]
    assert result.succeeded == 1
    assert (await handle.status()).status is TaskStatus.SUCCEEDED


async def test_invalid_arguments_written_by_hand_end_dead_as_invalid_args(
        taskq_memory: Harness) -> None:
    payload = encode(Message(task=record.name, args=("not a number",)))
    entry = await app.redis.xadd(app.keys("default").stream, {"m": payload})
    result = await taskq_memory.drain()
    [letter] = result.dead_letters
    assert letter.reason == "invalid_args"
    assert letter.task_id == f"default:{entry.decode()}"
    assert result.dead == 1 and result.processed == 0 and ran == []


async def test_drain_runs_in_order_and_stops_after_max_tasks(taskq_memory: Harness) -> None:
    for value in range(5):
        await record.enqueue(value)
    result = await taskq_memory.drain(max_tasks=2)
    assert ran == [0, 1]
    assert result.succeeded == 2
    assert [e.kwargs["value"] for e in taskq_memory.enqueued(record)] == [2, 3, 4]
    result = await taskq_memory.drain()
    assert ran == [0, 1, 2, 3, 4]
    assert result.succeeded == 3


async def test_drain_limits_queues(taskq_memory: Harness) -> None:
    await record.enqueue(1)
    await elsewhere.enqueue("x")
    await taskq_memory.drain(queues=["other"])
    assert ran == ["x"]
    assert [e.task for e in taskq_memory.enqueued()] == [record.name]


async def test_raise_on_error_raises_the_tasks_own_exception(taskq_memory: Harness) -> None:
    handle = await always_fails.enqueue(3)
    with pytest.raises(ValueError, match="no 3"):
        await taskq_memory.drain(raise_on_error=True)
    record_ = await handle.status()
    assert record_.status is TaskStatus.FAILED and record_.attempts == 1  # retry scheduled


async def test_enqueued_lists_tasks_with_their_arguments_before_draining(
        taskq_memory: Harness) -> None:
    first = await record.enqueue(value=1)
    await elsewhere.enqueue("a")
    by_task = taskq_memory.enqueued(record)
    assert [(e.task_id, e.args, e.kwargs, e.queue) for e in by_task] == [
        (first.id, (), {"value": 1}, "default")]
    assert [e.task for e in taskq_memory.enqueued()] == [record.name, elsewhere.name]
    assert [e.task for e in enqueued(app, elsewhere.name)] == [elsewhere.name]
    assert ran == []


def test_drain_sync_and_status_in_a_sync_test(taskq_memory: Harness) -> None:
    [handle] = app.enqueue_many_sync([flaky.message(4)])
    result = taskq_memory.drain_sync()
    assert result.counts == {"succeeded": 1, "retried": 2, "dead": 0, "expired": 0}
    assert taskq_memory.status(handle.id).result == 8


async def test_drain_times_out_on_a_task_that_does_not_end(taskq_memory: Harness) -> None:
    release = asyncio.Event()
    await waits.enqueue()
    asyncio.get_running_loop().call_later(1.0, release.set)
    waiting_on.append(release)
    started = time.monotonic()
    with pytest.raises(DrainTimeout, match="1 queued or running"):
        await taskq_memory.drain(timeout_s=0.2)
    assert time.monotonic() - started < 5.0  # the worker stopped once the task ended


def test_each_test_gets_a_fresh_backend_and_the_app_is_restored() -> None:
    url, prefix = app.url, app.prefix
    seen = []
    for _ in range(2):
        with bind(app) as harness:
            assert harness.url.startswith("memory://") and harness.url != url
            seen.append(harness.url)
            assert harness.enqueued() == []
            app.enqueue_many_sync([record.message(1)])
            assert len(harness.enqueued()) == 1
            app.close_sync()
    assert seen[0] != seen[1]
    assert (app.url, app.prefix) == (url, prefix)


async def test_memory_urls_name_their_own_stand_in() -> None:
    one, two = TaskQueue("memory://one-test"), TaskQueue("memory://two-test")
    other_one = TaskQueue("memory://one-test")
    try:
        await one.redis.set("k", "1")
        assert await other_one.redis.get("k") == b"1"
        assert await two.redis.get("k") is None
    finally:
        for q in (one, two, other_one):
            await q.aclose()
        memory.stop("memory://one-test")
        memory.stop("memory://two-test")
    assert "one-test" not in memory._running


def test_memory_url_without_fakeredis_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = memory.importlib.util.find_spec
    monkeypatch.setattr(memory.importlib.util, "find_spec",
                        lambda name, *a: None if name == "lupa" else real(name, *a))
    with pytest.raises(ConfigError, match=r"taskq-streams\[testing\]"):
        memory.redis_url("memory://no-lua")


async def test_parallel_drains_on_separate_stand_ins_do_not_share_state() -> None:
    queues = [TaskQueue(f"memory://par-{i}") for i in range(2)]
    try:
        for i, q in enumerate(queues):
            q.registry.update(app.registry)
            for _ in range(i + 1):
                await q.enqueue_one(record.message(i))
        results = await asyncio.gather(*(drain(q) for q in queues))
        assert [r.succeeded for r in results] == [1, 2]
    finally:
        for i, q in enumerate(queues):
            await q.aclose()
            memory.stop(f"memory://par-{i}")


def _doc_files(text: str) -> dict[str, str]:
    """The files of docs/testing.md's example: fenced blocks whose first line names one."""
    files = {}
    for block in re.findall(r"```(?:python|toml)\n(.*?)```", text, re.S):
        first, _, rest = block.partition("\n")
        name = re.fullmatch(r"# ([\w.]+\.(?:py|toml))", first)
        if name:
            files[name.group(1)] = rest
    return files


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_the_documented_example_passes_in_parallel_with_no_redis_reachable(
        tmp_path: Path) -> None:
    files = _doc_files((Path(__file__).parents[1] / "docs" / "testing.md").read_text())
    assert set(files) == {"tasks.py", "app.py", "pyproject.toml", "test_app.py"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    bin_dir = str(Path(sys.executable).parent)
    assert shutil.which("redis-server", path=bin_dir) is None
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TASKQ_", "PYTEST_", "PYTHON"))}
    env.update(PATH=bin_dir, TASKQ_REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0")
    # Connections left open would show as unraisable ResourceWarnings: errors here.
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-n", "2", "-p", "no:cacheprovider",
         "--timeout", "90",  # (pytest-timeout, of this venv: a hang shows its stacks)
         "-W", "error::ResourceWarning", "-W", "error::pytest.PytestUnraisableExceptionWarning"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=110, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "3 passed" in output, output
    assert "[gw0]" in output and "[gw1]" in output, output  # two processes ran the tests


def test_the_plugin_finds_the_app_by_ini_option_or_command_line(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    monkeypatch.delenv("TASKQ_TEST_REDIS_URL", raising=False)
    monkeypatch.setenv("EXPECTED_URL", "memory://")
    pytester.syspathinsert()
    pytester.makepyfile(myapp="""
        from taskq import TaskQueue
        tq = TaskQueue("redis://127.0.0.1:1/0", prefix="myapp")

        @tq.task
        async def hello(n: int) -> int:
            return n
    """)
    pytester.makepyfile(test_it="""
        import os
        import myapp

        def test_it(taskq_memory):
            assert taskq_memory.tq is myapp.tq
            assert taskq_memory.url.startswith(os.environ["EXPECTED_URL"])
            myapp.hello.enqueue_sync(1)
            assert taskq_memory.drain_sync().succeeded == 1
    """)
    unnamed = pytester.runpytest("-p", "no:asyncio")
    unnamed.assert_outcomes(errors=1)
    unnamed.stdout.fnmatch_lines(["*name the app's TaskQueue for the taskq fixtures*"])
    pytester.runpytest("-p", "no:asyncio", "--taskq-app", "myapp:tq").assert_outcomes(passed=1)
    pytester.makeini("[pytest]\ntaskq_app = myapp:tq\n")
    pytester.runpytest("-p", "no:asyncio").assert_outcomes(passed=1)
    # one setting runs the same test against a real Redis
    monkeypatch.setenv("TASKQ_TEST_REDIS_URL", redis_url)
    monkeypatch.setenv("EXPECTED_URL", redis_url)
    pytester.runpytest("-p", "no:asyncio").assert_outcomes(passed=1)


async def test_an_async_test_calls_a_route_with_httpx_then_drains(
        taskq_memory: Harness) -> None:
    api = FastAPI()

    @api.post("/record/{value}", status_code=202)
    async def enqueue_record(value: int, tasks: DurableTasks) -> dict[str, int]:
        tasks.add_task(record, value)
        return {"value": value}

    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/record/9")).status_code == 202
    [queued] = taskq_memory.enqueued(record)
    assert queued.kwargs == {"value": 9} and ran == []
    result = await taskq_memory.drain()
    assert ran == [9] and result.succeeded == 1
    assert (await app.status(queued.task_id)).status is TaskStatus.SUCCEEDED


async def test_drain_sync_inside_a_running_loop_says_to_await_drain(
        taskq_memory: Harness) -> None:
    await record.enqueue(1)
    with pytest.raises(SyncDrainInEventLoop, match=r"use `await drain\(\.\.\.\)` there"):
        taskq_memory.drain_sync()
    with pytest.raises(SyncDrainInEventLoop, match=r"await tq.status\(task_id\)"):
        taskq_memory.status("default:1-0")
    assert (await taskq_memory.drain()).succeeded == 1  # the queue is untouched


async def test_a_task_not_started_before_its_expiry_is_counted_expired(
        taskq_memory: Harness) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    await record.with_options(expires=past).enqueue(1)
    await record.enqueue(2)
    result = await taskq_memory.drain()
    assert result.counts == {"succeeded": 1, "retried": 0, "dead": 0, "expired": 1}
    assert result.expired == 1


def test_binding_a_test_backend_does_not_warn_about_taskq_redis_url(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The app reads TASKQ_REDIS_URL (production); the harness's memory:// is no conflict."""
    monkeypatch.setenv("TASKQ_REDIS_URL", "redis://127.0.0.1:1/0")
    q = TaskQueue(prefix="nowarn")
    q.registry.update(app.registry)
    with caplog.at_level(logging.WARNING), bind(q) as harness:
        q.enqueue_many_sync([record.message(1)])
        assert harness.drain_sync().succeeded == 1
    assert "is ignored" not in caplog.text, caplog.text
    choice = q.url_choice  # restored as it was
    assert (choice.url, choice.source) == ("redis://127.0.0.1:1/0", UrlSource.ENVIRONMENT)
    # A URL in the app's own code that disagrees still warns (once, at its first connection).
    coded = TaskQueue("memory://nowarn-coded")
    try:
        with caplog.at_level(logging.WARNING):
            coded.enqueue_many_sync([record.message(1)])
        assert "TASKQ_REDIS_URL=redis://127.0.0.1:1/0 is ignored" in caplog.text
    finally:
        coded.close_sync()
        memory.stop("memory://nowarn-coded")
