"""Issues 12 and 13, CLI: every error is one line on stderr with its documented exit code.
Usage errors (click's) keep only the hint to --help; bad task arguments (too deep, an int
beyond 64 bits, a lone surrogate) exit 2; a server that answers but is not Redis, and any
redis-py error, is one line; ``--json`` works before and after the command."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from click.testing import Result
from redis import exceptions as redis_exceptions
from typer.testing import CliRunner

from taskq import RedisCommandError, RedisUnavailable
from taskq.cli import app
from taskq.connection import translate

runner = CliRunner()
APP = "tests.apps.cli_app:tq"


@pytest.fixture
def cli(redis_url: str, prefix: str) -> Callable[..., Result]:
    def invoke(*args: str) -> Result:
        return runner.invoke(app, ["--redis-url", redis_url, "--prefix", prefix, *args])
    return invoke


def one_line(result: Result, code: int, *texts: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert ("Traceback" not in result.output and result.exception is None) or isinstance(
        result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in texts:
        assert text in result.stderr, (text, result.stderr)


@pytest.mark.parametrize(("args", "text", "hint"), [
    (["queue"], "Missing argument", "taskq queue --help"),
    (["queues", "--bogus"], "No such option: --bogus", "taskq queues --help"),
    (["tasks", "jobs", "--limit", "x"], "Invalid value for '--limit'", "taskq tasks --help"),
    (["tasks", "jobs", "--limit", "0"], "Invalid value for '--limit'", "taskq tasks --help"),
    (["nosuch"], "No such command 'nosuch'", "taskq --help"),
    (["dead", "nosuch"], "No such command 'nosuch'", "taskq dead --help"),
    (["dead", "show", "jobs"], "Missing argument", "taskq dead show --help"),
    (["--redis-url"], "requires an argument", "taskq --help"),
])
def test_usage_errors_are_one_line_with_the_help_hint(args: list[str], text: str,
                                                      hint: str) -> None:
    result = runner.invoke(app, args)
    one_line(result, 2, text, f"(try '{hint}')")
    assert "Usage:" not in result.output


def test_the_bare_command_still_shows_its_help() -> None:
    for args in ([], ["dead"]):
        result = runner.invoke(app, args)
        assert "Usage:" in result.output and "Commands" in result.output, args


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(("kwargs", "text"), [
    ('{"a": ' + nested(30_000) + ', "b": 1}', "--kwargs is nested too deeply"),
    ('{"a": 1180591620717411303424, "b": 1}', "a: integer outside the 64-bit range"),
    ('{"a": -9223372036854775809, "b": 1}', "a: integer outside the 64-bit range"),
    ('{"a": 1, "b": 18446744073709551616}', "b: integer outside the 64-bit range"),
])
def test_bad_arguments_exit_2(cli: Callable[..., Result], kwargs: str, text: str) -> None:
    one_line(cli("enqueue", "add", "--app", APP, "--kwargs", kwargs), 2, text)


def test_deep_args_and_lone_surrogates_exit_2(cli: Callable[..., Result]) -> None:
    one_line(cli("enqueue", "add", "--app", APP, "--args", nested(30_000)), 2,
             "--args is nested too deeply")
    one_line(cli("enqueue", "nap", "--app", APP, "--kwargs", '{"seconds": "\\ud800"}'), 2,
             "invalid arguments for task 'nap'", "seconds")
    one_line(cli("enqueue", "nap", "--app", APP, "--args", '["\\udfff"]'), 2,
             "invalid arguments for task 'nap'")


@pytest.fixture
def not_redis() -> Iterator[int]:
    """A server that answers every connection like an HTTP server would; its port."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                try:
                    conn.settimeout(2)
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(5)
    server.close()


def test_a_server_that_is_not_redis_is_one_line_exit_3(not_redis: int) -> None:
    url = f"redis://127.0.0.1:{not_redis}/0"
    for args in (["queues"], ["queue", "jobs"], ["tasks", "jobs"], ["workers"]):
        one_line(runner.invoke(app, ["--redis-url", url, *args]), 3,
                 f"Redis at {url}", "is it a Redis server?")


def test_every_redis_py_error_becomes_a_taskq_error() -> None:
    where = "redis://h:1/0"
    protocol = translate(redis_exceptions.InvalidResponse('Protocol error, got "H"'),
                         where=where)
    assert isinstance(protocol, RedisUnavailable) and where in str(protocol)
    for raised in (redis_exceptions.PubSubError("no subscription"),
                   redis_exceptions.RedisError("something else")):
        error = translate(raised, where=where)
        assert isinstance(error, RedisCommandError), raised
        assert type(raised).__name__ in str(error) and where in str(error)
    for kept in (redis_exceptions.DataError("bad input"), redis_exceptions.WatchError("w"),
                 redis_exceptions.LockError("l")):  # a wrong call, or the caller's signal
        assert translate(kept, where=where) is kept


def test_json_before_or_after_the_command(cli: Callable[..., Result]) -> None:
    enqueued = cli("--json", "enqueue", "add", "--app", APP, "--kwargs", '{"a": 1, "b": 2}')
    assert enqueued.exit_code == 0, enqueued.output
    task_id = json.loads(enqueued.stdout)["task_id"]
    for args in (["queues"], ["queue", "jobs"], ["tasks", "jobs"], ["task", task_id],
                 ["workers"], ["dead", "list", "jobs"], ["pause", "jobs"], ["resume", "jobs"]):
        before, after = cli("--json", *args), cli(*args, "--json")
        assert before.exit_code == after.exit_code == 0, (args, before.output, after.output)
        shape_before, shape_after = json.loads(before.stdout), json.loads(after.stdout)
        assert shape_before.keys() == shape_after.keys(), args
    assert json.loads(cli("--json", "task", task_id).stdout)["id"] == task_id
    assert json.loads(cli("--json", "queue", "jobs").stdout)["queue"]["lag"] == 1
    one_line(cli("--json", "watch", "--seconds", "0"), 2, "no --json output")
