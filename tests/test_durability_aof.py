"""``wait_aof``: WAITAOF on Redis 7.2+, WAIT before (the version switch, with a stand-in lane:
the local Redis is 7.0, so WAITAOF itself is untested against a real 7.2 server here)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from taskq import NotReplicated, TaskQueue, durability
from taskq.durability import WAIT, WaitPlan, confirm, confirm_sync, parse_info, plan
from taskq.errors import RedisCommandError


def test_the_version_and_appendonly_choose_the_command() -> None:
    assert plan({"redis_version": "7.2.4", "aof_enabled": "1"}, aof=False) is WAIT
    assert plan({"redis_version": "7.2.4", "aof_enabled": "1"}, aof=True) == WaitPlan(local=1)
    assert plan({"redis_version": "8.0.0", "aof_enabled": 0}, aof=True) == WaitPlan(local=0)
    assert plan({"redis_version": "7.0.15", "aof_enabled": "1"}, aof=True) is WAIT
    assert plan({"redis_version": "6.2.14"}, aof=True) is WAIT
    assert WaitPlan(local=1).command(2, 500) == ("WAITAOF", 1, 2, 500)
    assert WAIT.command(2, 500) == ("WAIT", 2, 500)
    assert WaitPlan(local=1).confirmed([1, 2]) == 2
    assert WaitPlan(local=1).confirmed([0, 2]) == 0  # the master's own fsync did not happen
    assert WaitPlan(local=0).confirmed([0, 1]) == 1
    assert parse_info(b"# Server\r\nredis_version:7.2.4\r\nos:Linux x\r\n") == {
        "redis_version": "7.2.4", "os": "Linux x"}


class FakeLane:
    """A lane of one Redis whose INFO says ``version`` and ``aof``; records every command."""

    def __init__(self, version: str, aof: int, refuse_waitaof: bool = False) -> None:
        self.version, self.aof, self.refuse = version, aof, refuse_waitaof
        self.sent: list[tuple[Any, ...]] = []

    async def execute(self, *args: Any) -> Any:
        self.sent.append(args)
        if args[0] == "INFO":
            return (f"redis_version:{self.version}\r\n" if args[1] == "server"
                    else f"aof_enabled:{self.aof}\r\n").encode()
        if args[0] == "WAITAOF":
            if self.refuse:
                self.refuse, self.aof = False, 0  # the node changed: AOF is off now
                raise RedisCommandError("ERR WAITAOF cannot be used when numlocal is set but "
                                        "appendonly is disabled.")
            return [args[1], min(args[2], 1)]  # one replica has it
        return 1


async def test_a_lane_waits_with_waitaof_on_72_and_wait_before() -> None:
    new = FakeLane("7.2.4", 1)
    await confirm(new, "k", 1, 100, "x", aof=True)  # type: ignore[arg-type]
    await confirm(new, "k", 1, 100, "y", aof=True)  # type: ignore[arg-type]
    assert [a[0] for a in new.sent] == ["INFO", "INFO", "WAITAOF", "WAITAOF"]  # INFO once
    assert new.sent[-1] == ("WAITAOF", 1, 1, 100)
    old = FakeLane("7.0.15", 1)
    await confirm(old, "k", 1, 100, "x", aof=True)  # type: ignore[arg-type]
    assert old.sent[-1] == ("WAIT", 1, 100)
    plain = FakeLane("7.2.4", 1)
    await confirm(plain, "k", 1, 100, "x")  # type: ignore[arg-type]
    assert plain.sent == [("WAIT", 1, 100)]  # not asked for: no INFO, WAIT as before
    moved = FakeLane("7.2.4", 1, refuse_waitaof=True)
    await confirm(moved, "k", 1, 100, "x", aof=True)  # type: ignore[arg-type]
    assert moved.sent[-1] == ("WAITAOF", 0, 1, 100)  # INFO read again: no local fsync asked
    with pytest.raises(NotReplicated):
        await confirm(FakeLane("7.2.4", 1), "k", 2, 100, "x", aof=True)  # type: ignore[arg-type]


class FakeClient:
    """A blocking client of one Redis 7.2 with AOF."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def info(self, section: str) -> dict[str, Any]:
        return {"redis_version": "7.2.0"} if section == "server" else {"aof_enabled": 1}

    def execute_command(self, *args: Any) -> Any:
        self.sent.append(args)
        return [1, 1]


def test_a_blocking_client_waits_with_waitaof_on_72() -> None:
    client = FakeClient()
    confirm_sync(client, ["k"], 1, 100, "x", aof=True)
    assert client.sent == [("WAITAOF", 1, 1, 100)]


def test_wait_aof_needs_min_replicas() -> None:
    with pytest.raises(ValueError, match="wait_aof needs min_replicas"):
        TaskQueue("redis://127.0.0.1:6379/0", wait_aof=True)
    tq = TaskQueue("redis://127.0.0.1:6379/0", min_replicas=1, wait_aof=True)
    assert tq.configured().wait_aof


async def test_on_70_it_falls_back_to_wait_with_a_warning(
        redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(durability, "_warned", set())  # (warned once per process)
    tq = TaskQueue(redis_url, prefix=prefix, min_replicas=1, replicas_timeout=0.05,
                   wait_aof=True)

    @tq.task(name="noop")
    async def noop() -> None:
        return None

    try:
        info = await tq.redis.info("server")
        if tuple(int(p) for p in str(info["redis_version"]).split(".")[:2]) >= (7, 2):
            pytest.skip("this Redis has WAITAOF")
        with caplog.at_level(logging.WARNING, logger="taskq.durability"), \
                pytest.raises(NotReplicated):  # the shared test Redis has no replica
            await noop.enqueue()
        assert f"Redis {info['redis_version']} has no WAITAOF" in caplog.text
    finally:
        await tq.aclose()
