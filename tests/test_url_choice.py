"""One Redis URL rule for every entry point (a URL given in code, else TASKQ_REDIS_URL, else
the default), URL and prefix fixed at construction, and a disagreement said once at start."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from taskq import TaskQueue
from taskq.cli import app as cli_app
from taskq.service.app import create_app
from taskq.service.main import cli as api_cli
from taskq.service.settings import ApiSettings
from taskq.url_choice import DEFAULT_URL, ENV, UrlSource, choose
from taskq.worker.main import cli as worker_cli
from tests.helpers import ROOT

ELSEWHERE = "redis://:hunter2@127.0.0.1:1/0"  # nothing answers there; the password must not show


@pytest.fixture(autouse=True)
def no_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets TASKQ_REDIS_URL itself (restored after, also when an entry point set it)."""
    monkeypatch.delenv(ENV, raising=False)


def test_the_rule_code_then_environment_then_default() -> None:
    assert choose("redis://code:1/0", {ENV: "redis://env:1/0"}).url == "redis://code:1/0"
    assert choose("redis://code:1/0", {ENV: "redis://env:1/0"}).source is UrlSource.CODE
    assert choose(None, {ENV: "redis://env:1/0"}).url == "redis://env:1/0"
    assert choose(None, {ENV: "redis://env:1/0"}).source is UrlSource.ENVIRONMENT
    assert choose(None, {ENV: ""}).url == DEFAULT_URL
    assert choose(None, {}).source is UrlSource.DEFAULT
    assert choose("redis://code:1/0", {}).conflict() is None
    assert choose("redis://same:1/0", {ENV: "redis://same:1/0"}).conflict() is None
    conflict = choose("redis://code:1/0", {ENV: ELSEWHERE}).conflict()
    assert conflict is not None and "redis://code:1/0" in conflict and "hunter2" not in conflict


def test_the_library_follows_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TaskQueue().url == DEFAULT_URL
    monkeypatch.setenv(ENV, "redis://env:1/0")
    assert TaskQueue().url == "redis://env:1/0"
    assert TaskQueue("redis://code:1/0").url == "redis://code:1/0"


def test_url_and_prefix_are_read_only_and_configured_makes_a_copy() -> None:
    tq = TaskQueue("redis://code:1/0", prefix="one", max_backlog=7, result_ttl=90)

    @tq.task(name="t")
    async def t() -> None:
        return None

    with pytest.raises(AttributeError):
        tq.url = "redis://other:1/0"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        tq.prefix = "two"  # type: ignore[misc]
    copy = tq.configured(prefix="two")
    assert (copy.url, copy.prefix, tq.prefix) == ("redis://code:1/0", "two", "one")
    assert copy.keys("q").stream == "{two:q}:stream" and tq.keys("q").stream == "{one:q}:stream"
    assert copy.registry is tq.registry and copy.get_task("t") is t
    assert (copy.max_backlog, copy.result_ttl_ms) == (7, 90_000)
    moved = tq.configured(url="redis://other:1/0")
    assert (moved.url, moved.prefix, moved.url_choice.source) == (
        "redis://other:1/0", "one", UrlSource.CODE)


async def test_a_disagreeing_environment_is_said_once_on_the_first_connection(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, redis_url: str
) -> None:
    monkeypatch.setenv(ENV, ELSEWHERE)
    tq = TaskQueue(redis_url)
    with caplog.at_level(logging.WARNING, logger="taskq"):
        await tq.redis.ping()
        await tq.aclose()
        await tq.redis.ping()  # a new client: no second warning
        await tq.aclose()
    warnings = [r.getMessage() for r in caplog.records if ENV in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert redis_url in warnings[0] and "127.0.0.1:1" in warnings[0]
    assert "hunter2" not in caplog.text


async def test_agreeing_or_absent_environment_says_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, redis_url: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="taskq"):
        tq = TaskQueue(redis_url)
        await tq.redis.ping()
        await tq.aclose()
        monkeypatch.setenv(ENV, redis_url)
        tq = TaskQueue(redis_url)
        await tq.redis.ping()
        await tq.aclose()
    assert ENV not in caplog.text


# -- the worker --------------------------------------------------------------------------------


def _start_worker(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "worker", "tests.apps.url_app:tq", *args],
            cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
        )


def _started(proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> str:
    """The worker's output once its start line is there (it is stopped then)."""
    deadline = time.monotonic() + timeout
    try:
        while "consuming" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no start line: {log.read_text()}"
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(30)
    return log.read_text()


@pytest.fixture
def worker_log(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "worker.log"


def test_the_worker_serves_the_url_given_in_code_and_says_the_environment_disagrees(
    redis_url: str, prefix: str, worker_log: Path
) -> None:
    proc = _start_worker({"TEST_CODE_URL": redis_url, "TEST_PREFIX": prefix, ENV: ELSEWHERE},
                         log=worker_log)
    out = _started(proc, worker_log)
    start = next(line for line in out.splitlines() if "consuming" in line)
    assert "urls" in start and f"{redis_url} (from code)" in start
    warnings = [line for line in out.splitlines() if f"{ENV}=redis://:***@127.0.0.1:1/0" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0], out
    assert "hunter2" not in out


def test_the_worker_serves_the_environment_when_the_code_names_no_url(
    redis_url: str, prefix: str, worker_log: Path
) -> None:
    with open(worker_log, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "tests.apps.cli_app:tq"], cwd=ROOT,
            env={**os.environ, "TEST_PREFIX": prefix, ENV: redis_url}, stdout=log,
            stderr=subprocess.STDOUT,
        )
    out = _started(proc, worker_log)
    start = next(line for line in out.splitlines() if "consuming" in line)
    assert f"{redis_url} (from {ENV})" in start and "jobs" in start
    assert "WARNING" not in out


def test_a_worker_redis_url_option_the_code_overrides_is_an_error() -> None:
    r = CliRunner().invoke(worker_cli, ["--redis-url", ELSEWHERE, "tests.apps.url_app:tq"])
    assert r.exit_code == 2, r.output
    assert "conflicts with the URL the TaskQueue was given in code" in r.output
    assert "hunter2" not in r.output


# -- the API -----------------------------------------------------------------------------------


def test_the_api_start_line_names_its_redis_and_a_disagreeing_environment_is_said(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, redis_url: str
) -> None:
    monkeypatch.setenv(ENV, ELSEWHERE)
    tq = TaskQueue(redis_url)

    @tq.task(name="noop", queue="urls")
    async def noop() -> None:
        return None

    with caplog.at_level(logging.INFO, logger="taskq"):
        create_app(ApiSettings(auth_disabled=True), tq)
    start = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("serving"))
    assert "urls" in start and f"{redis_url} (from code)" in start
    assert [r.levelname for r in caplog.records if ENV in r.getMessage()] == ["WARNING"]
    assert "hunter2" not in caplog.text
    assert tq.url == redis_url  # the service never changes it


def test_an_api_redis_url_option_the_code_overrides_is_an_error() -> None:
    r = CliRunner().invoke(api_cli, ["--redis-url", ELSEWHERE, "tests.apps.url_app:tq"],
                           env={"TASKQ_AUTH_DISABLED": "true"})
    assert r.exit_code == 2, r.output
    assert "conflicts with the URL the TaskQueue was given in code" in r.output


# -- the CLI -----------------------------------------------------------------------------------


def test_cli_enqueue_follows_the_url_in_code_and_refuses_a_redis_url_option_against_it() -> None:
    r = CliRunner().invoke(cli_app, ["--redis-url", ELSEWHERE, "enqueue", "noop",
                                     "--app", "tests.apps.url_app:tq"])
    assert r.exit_code == 2, r.output
    assert "conflicts with the URL the TaskQueue was given in code" in r.output
    assert "hunter2" not in r.output


def test_cli_enqueue_sends_to_the_redis_url_option_when_the_code_names_none(
    redis_url: str, prefix: str
) -> None:
    r = CliRunner().invoke(cli_app, ["--redis-url", redis_url, "--prefix", prefix, "enqueue",
                                     "add", "--app", "tests.apps.cli_app:tq", "--args", "[1, 2]",
                                     "--json"])
    assert r.exit_code == 0, r.output
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.xlen(f"{{{prefix}:jobs}}:stream") == 1
    finally:
        client.close()


@pytest.mark.parametrize(("command", "module"), [("worker", "taskq.worker"),
                                                 ("api", "taskq.service")])
def test_taskq_worker_and_api_pass_redis_url_on_as_their_own_option(
    monkeypatch: pytest.MonkeyPatch, command: str, module: str
) -> None:
    """So the command applies the same rule (and the same error) as when run directly."""
    execs: list[list[str]] = []

    def execv(path: str, argv: list[str]) -> None:
        execs.append(argv)
        raise SystemExit(0)

    monkeypatch.setattr(os, "execv", execv)
    r = CliRunner().invoke(cli_app, ["--redis-url", "redis://x:1/0", command, "app:tq"])
    assert r.exit_code == 0, r.output
    (argv,) = execs
    assert argv[argv.index("-m"):] == ["-m", module, "--redis-url", "redis://x:1/0", "app:tq"]
    assert os.environ.get(ENV) is None
