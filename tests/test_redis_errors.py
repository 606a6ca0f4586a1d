"""Redis failures reach callers as taskq errors, translated once in taskq.connection: no
password or a wrong one, an ACL user without a command or a key, a full Redis, an unreachable
or slow one. The CLI and the HTTP API map only those (exit codes; 503 with Retry-After)."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis as redis_sync
from redis import exceptions as redis_exceptions
from redis.asyncio.sentinel import MasterNotFoundError
from redis.exceptions import RedisClusterException
from redis.sentinel import MasterNotFoundError as SyncMasterNotFoundError
from typer.testing import CliRunner

from taskq import (
    RedisAuthError,
    RedisCommandError,
    RedisFailure,
    RedisOutOfMemory,
    RedisPermissionError,
    RedisTimeout,
    RedisUnavailable,
    TaskqError,
    TaskQueue,
    TaskStatus,
)
from taskq.cli import app as cli_app
from taskq.connection import describe, redact_url, translate
from taskq.shardsub import ShardSubscriber
from tests.api_fixtures import free_port, make_app, serve
from tests.apps.api_tasks import build
from tests.helpers import eventually, wait_sync

PASSWORD = "s3cret-admin-pw"
USER_PASSWORD = "s3cret-user-pw"
WHERE = "redis://127.0.0.1:6379/0"

# -- the translation itself (no Redis) -------------------------------------------------------


E = redis_exceptions


@pytest.mark.parametrize(("raised", "expected", "also"), [
    (E.ConnectionError("Connection refused"), RedisUnavailable, E.ConnectionError),
    (OSError("network is unreachable"), RedisUnavailable, E.ConnectionError),
    (E.TimeoutError("Timeout reading from socket"), RedisTimeout, E.TimeoutError),
    (TimeoutError(), RedisTimeout, E.TimeoutError),
    (E.AuthenticationError("invalid username-password pair"), RedisAuthError,
     E.AuthenticationError),
    (E.ResponseError("NOAUTH Authentication required."), RedisAuthError, E.AuthenticationError),
    (E.ResponseError("WRONGPASS invalid username-password pair"), RedisAuthError,
     E.AuthenticationError),
    (E.NoPermissionError("this user has no permissions to run the 'xadd' command"),
     RedisPermissionError, E.NoPermissionError),
    (E.ResponseError("NOPERM this user has no permissions to access one of the keys used as "
                     "arguments"), RedisPermissionError, E.NoPermissionError),
    (E.ResponseError("ERR The user executing the script can't run this command or subcommand "
                     "script: abc, on @user_script:1."), RedisPermissionError, E.NoPermissionError),
    (E.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
     RedisOutOfMemory, E.OutOfMemoryError),
    (E.ResponseError("OOM command not allowed when used memory > 'maxmemory'."),
     RedisOutOfMemory, E.OutOfMemoryError),
    (E.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
     RedisCommandError, E.ResponseError),
])
def test_each_failure_becomes_one_taskq_error(raised: Exception, expected: type[Exception],
                                              also: type[Exception]) -> None:
    error = translate(raised, where=WHERE, command=("XADD", "{p:default}:stream", "*"))
    assert type(error) is expected
    assert isinstance(error, TaskqError) and isinstance(error, RedisFailure)
    assert isinstance(error, also)  # code catching redis-py's exceptions still does
    assert "\n" not in str(error) and str(error)
    if expected is not RedisCommandError:
        assert WHERE in str(error)
    if expected is RedisPermissionError:  # always named, even where redis-py cut the code off
        assert "NOPERM" in str(error)


def test_other_error_replies_keep_redis_text_and_noscript_is_left_alone() -> None:
    nogroup = translate(redis_exceptions.ResponseError("NOGROUP No such key"), where=WHERE)
    assert isinstance(nogroup, RedisCommandError) and str(nogroup) == "NOGROUP No such key"
    noscript = redis_exceptions.NoScriptError("No matching script.")
    assert translate(noscript, where=WHERE) is noscript
    lane_noscript = redis_exceptions.ResponseError("NOSCRIPT No matching script.")
    assert translate(lane_noscript, where=WHERE) is lane_noscript
    bad_call = redis_exceptions.DataError("Invalid input of type: 'dict'")
    assert translate(bad_call, where=WHERE) is bad_call
    done = RedisUnavailable("cannot reach Redis")
    assert translate(done, where=WHERE) is done


def test_permission_errors_name_the_command_and_its_keys() -> None:
    denied = redis_exceptions.ResponseError("NOPERM this user has no permissions to access "
                                            "one of the keys used as arguments")
    xadd = translate(denied, where=WHERE, command=("XADD", "{p:q}:stream", "*", "m", b"x"))
    assert "XADD on '{p:q}:stream'" in str(xadd)
    script = translate(denied, where=WHERE,
                       command=("EVALSHA", "ab12", 2, "{p:q}:delayed", b"{p:q}:payloads", 5))
    assert "a script on '{p:q}:delayed', '{p:q}:payloads'" in str(script)
    read = translate(denied, where=WHERE, command=("XREADGROUP", "GROUP", "taskq", "w1", "COUNT",
                                                   10, "STREAMS", "{p:a}:stream", "{p:b}:stream",
                                                   ">", ">"))
    assert "XREADGROUP on '{p:a}:stream', '{p:b}:stream'" in str(read)


def test_where_never_shows_the_password() -> None:
    kwargs = {"host": "cache.internal", "port": 6380, "db": 2, "username": "app",
              "password": PASSWORD}
    assert describe(kwargs) == "redis://app:***@cache.internal:6380/2"
    assert describe(kwargs, tls=True).startswith("rediss://app:***@")
    assert describe({"path": "/run/redis.sock", "password": PASSWORD}) == \
        "unix://:***@/run/redis.sock?db=0"
    assert describe({"host": "localhost", "port": 6379, "db": 0}) == "redis://localhost:6379/0"
    assert redact_url(f"rediss://app:{PASSWORD}@cache:6380/2") == "rediss://app:***@cache:6380/2"
    assert redact_url("redis://cache:6380/2") == "redis://cache:6380/2"


# -- against a private redis-server with a password and ACL users ----------------------------


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A redis-server of this module's own (password, ACL users, maxmemory changes)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    folder: Path = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder), "--requirepass", PASSWORD,
         "--maxmemory-policy", "noeviction"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    admin = redis_sync.Redis(port=port, password=PASSWORD)
    try:
        wait_sync(lambda: _answers(admin), timeout=15, what="private redis-server")
        # elsewhere: every command, none of the queue's keys (but the queue list);
        # noxadd: every key, every command but XADD
        admin.execute_command("ACL", "SETUSER", "elsewhere", "on", f">{USER_PASSWORD}",
                              "~elsewhere:*", "~errs:queues", "&*", "+@all")
        admin.execute_command("ACL", "SETUSER", "noxadd", "on", f">{USER_PASSWORD}", "~*",
                              "&*", "+@all", "-xadd")
        yield port
    finally:
        admin.close()
        proc.terminate()
        proc.wait(15)


def _answers(client: redis_sync.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis_exceptions.ConnectionError:
        return False


@pytest.fixture
async def queue_at(private_redis: int) -> AsyncIterator[Any]:
    made: list[TaskQueue] = []

    def make(auth: str) -> TaskQueue:
        tq = build("errs", f"redis://{auth}127.0.0.1:{private_redis}/0", socket_timeout=1)
        made.append(tq)
        return tq

    yield make
    for tq in made:
        await tq.aclose()


async def test_no_password_and_a_wrong_one_are_auth_errors(queue_at: Any) -> None:
    for auth in ("", f":wrong-{USER_PASSWORD}@"):
        tq = queue_at(auth)
        add = tq.registry["add"]
        with pytest.raises(RedisAuthError, match="refused the credentials") as enqueue:
            await add.enqueue(a=1, b=2)  # the lane
        with pytest.raises(RedisAuthError):
            await tq.status("default:1-1")  # the client
        with pytest.raises(RedisAuthError):
            add.enqueue_sync(a=1, b=2)  # the blocking client
        assert USER_PASSWORD not in str(enqueue.value)
        assert isinstance(enqueue.value, redis_exceptions.AuthenticationError)


async def test_acl_refusals_name_the_command_and_key(queue_at: Any) -> None:
    tq = queue_at(f"elsewhere:{USER_PASSWORD}@")
    add = tq.registry["add"]
    stream, delayed = tq.keys("default").stream, tq.keys("default").delayed
    with pytest.raises(RedisPermissionError) as scripted:
        await add.enqueue(a=1, b=2)  # a new queue: the enqueue script, through the lane
    assert f"a script on '{stream}'" in str(scripted.value)
    assert USER_PASSWORD not in str(scripted.value) and "elsewhere:***@" in str(scripted.value)
    assert isinstance(scripted.value, redis_exceptions.NoPermissionError)
    with pytest.raises(RedisPermissionError, match=f"a script on '{delayed}'"):
        await add.with_options(delay=60).enqueue(a=1, b=2)
    with pytest.raises(RedisPermissionError, match="a script on"):
        add.with_options(delay=60).enqueue_sync(a=1, b=2)  # redis-py's Script
    with pytest.raises(RedisPermissionError, match=f"XADD on '{stream}'"):
        await tq.lane.execute("XADD", stream, "*", "m", "x")
    with pytest.raises(RedisPermissionError):
        await tq.status("default:1-1")  # the client
    no_xadd = queue_at(f"noxadd:{USER_PASSWORD}@")
    with pytest.raises(RedisPermissionError, match="xadd"):
        await no_xadd.lane.execute("XADD", stream, "*", "m", "x")
    # XADD inside the script: the script names the refused command (Redis 7.0 does not)
    with pytest.raises(RedisPermissionError,
                       match=f"a script on '{stream}'.*no permissions to run the 'xadd' command"):
        await no_xadd.registry["add"].enqueue(a=1, b=2)


async def test_a_full_redis_is_out_of_memory_and_the_api_answers_503(
        queue_at: Any, private_redis: int) -> None:
    tq = queue_at(f":{PASSWORD}@")
    add = tq.registry["add"]
    await add.enqueue(a=1, b=2)  # the scripts load, the queue is known
    admin = redis_sync.Redis(port=private_redis, password=PASSWORD)
    admin.config_set("maxmemory", 1)
    try:
        with pytest.raises(RedisOutOfMemory, match="out of memory"):
            await add.enqueue(a=1, b=2)
        with pytest.raises(RedisOutOfMemory):
            await add.with_options(delay=60).enqueue(a=1, b=2)
        with pytest.raises(RedisOutOfMemory):
            add.enqueue_sync(a=1, b=2)
        async with serve(make_app(tq)) as http:
            r = await http.post("/enqueue/add", json={"a": 1, "b": 2},
                                headers={"X-API-Key": "admin-key-0123456789abcdef"})
            assert r.status_code == 503, r.text
            assert r.headers["Retry-After"] == "2"
            assert "maxmemory" not in r.text  # the details are logged, not sent
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
    await add.enqueue(a=1, b=2)


async def test_scripts_reload_after_a_flush(queue_at: Any, private_redis: int) -> None:
    """NOSCRIPT is not translated: the wrappers load the script and call it again."""
    tq = queue_at(f":{PASSWORD}@")
    add = tq.registry["add"].with_options(delay=60)
    await add.enqueue(a=1, b=2)
    add.enqueue_sync(a=1, b=2)
    delayed = tq.keys("default").delayed
    before = await tq.redis.zcard(delayed)
    admin = redis_sync.Redis(port=private_redis, password=PASSWORD)
    try:
        admin.script_flush()
    finally:
        admin.close()
    h1 = await add.enqueue(a=1, b=2)  # the lane's wrapper
    h2 = add.enqueue_sync(a=1, b=2)  # redis-py's Script
    # both ran their (reloaded) script: two more delayed tasks, each with its record
    assert await tq.redis.zcard(delayed) == before + 2
    for h in (h1, h2):
        assert (await tq.status(h.id)).status is TaskStatus.QUEUED


async def test_unreachable_and_slow_redis() -> None:
    port = free_port()
    tq = TaskQueue(f"redis://:{PASSWORD}@127.0.0.1:{port}/0", socket_timeout=1)
    try:
        with pytest.raises(RedisUnavailable, match=f"cannot reach Redis at redis://:\\*\\*\\*@"
                                                   f"127.0.0.1:{port}/0") as lane:
            await tq.lane.execute("PING")
        with pytest.raises(RedisUnavailable):
            await tq.redis.ping()
        assert PASSWORD not in str(lane.value)
        assert isinstance(lane.value, redis_exceptions.ConnectionError)
    finally:
        await tq.aclose()


async def test_a_reply_overdue_is_a_timeout(redis_url: str, prefix: str) -> None:
    tq = TaskQueue(redis_url, prefix=prefix, socket_timeout=0.3)
    try:
        with pytest.raises(RedisTimeout):
            await tq.lane.execute("BLPOP", f"{prefix}:empty", 2)
        with pytest.raises(RedisTimeout):
            await tq.redis.blpop([f"{prefix}:empty"], 2)  # type: ignore[misc]
    finally:
        await tq.aclose()


def test_the_cli_maps_acl_refusals_to_exit_3(private_redis: int) -> None:
    url = f"redis://elsewhere:{USER_PASSWORD}@127.0.0.1:{private_redis}/0"
    result = CliRunner().invoke(cli_app, ["--redis-url", url, "queues"])
    assert result.exit_code == 3, result.output
    assert "refused SMEMBERS on 'taskq:queues' to its ACL user (NOPERM" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert USER_PASSWORD not in result.output and "Traceback" not in result.output


def test_no_master_found_is_one_line_without_the_sentinels_passwords() -> None:
    client = ("<redis.asyncio.client.Redis(<redis.asyncio.connection.ConnectionPool("
              "<redis.asyncio.connection.Connection(host=127.0.0.1,port=26379,db=0,"
              "username=None,password=s3cretSENT,socket_timeout=5)>)>)>")
    for cls in (MasterNotFoundError, SyncMasterNotFoundError):
        raised = cls(f"No master found for 'mymaster' : {client} - AuthenticationError("
                     f"'invalid username-password pair or user is disabled.'), {client} - "
                     f"AuthenticationError('invalid username-password pair or user is "
                     f"disabled.')")
        error = translate(raised, where="the master of Sentinel service 'mymaster'")
        assert type(error) is RedisUnavailable
        text = str(error)
        assert "s3cretSENT" not in text and "Redis(<" not in text and "\n" not in text
        assert "No master found for 'mymaster'" in text
        assert "refused the credentials" in text and "invalid username-password" in text
    down = translate(MasterNotFoundError("No master found for 'mymaster'"), where="S")
    assert "do not know it" in str(down)


def test_an_unreachable_cluster_is_one_line_and_exit_3(redis_url: str) -> None:
    error = translate(RedisClusterException("Redis Cluster cannot be connected. Please "
                                            "provide at least one reachable node: ..."),
                      where="redis+cluster://127.0.0.1:1/")
    assert type(error) is RedisUnavailable and "cannot reach Redis Cluster" in str(error)
    # a dead seed, and a node that is not in a Cluster (the tests' Redis), from the CLI
    for url in (f"redis+cluster://:{PASSWORD}@127.0.0.1:{free_port()}/",
                "redis+cluster://" + urlsplit(redis_url).netloc + "/"):
        result = CliRunner().invoke(cli_app, ["--redis-url", url, "queues"])
        assert result.exit_code == 3, result.output
        assert "Traceback" not in result.output and PASSWORD not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


async def test_a_worker_on_a_dead_cluster_seed_retries(
        caplog: pytest.LogCaptureFixture, start_worker: Any) -> None:
    tq = TaskQueue(f"redis+cluster://127.0.0.1:{free_port()}/", socket_timeout=1)
    try:
        with caplog.at_level(logging.WARNING, logger="taskq"):
            worker = start_worker(tq)

            async def retrying() -> bool:
                return "cannot start consuming: cannot reach Redis Cluster" in caplog.text

            await eventually(retrying, timeout=30, what="the worker retries")
            assert not worker.stopping  # it waits for the Cluster, as for Sentinel
            worker.stop()
    finally:
        await tq.aclose()


async def test_a_shard_subscriber_warns_once_a_minute_while_a_node_is_down(
        caplog: pytest.LogCaptureFixture) -> None:
    tq = TaskQueue(f"redis+cluster://127.0.0.1:{free_port()}/", socket_timeout=1)
    shards = ShardSubscriber(tq.redis, lambda channel, data: None)  # type: ignore[arg-type]
    try:
        with caplog.at_level(logging.DEBUG, logger="taskq.shardsub"):
            for _ in range(3):  # what it does every second or so while the node is down
                await shards._reload()
        warned = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1, caplog.text
        assert len([r for r in caplog.records if "slot map" in r.getMessage()]) == 3
    finally:
        await shards.aclose()
        await tq.aclose()
