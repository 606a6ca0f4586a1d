"""The producer's auto-pipelined lane (taskq.lane): replies in order, an error reply fails
only its own command, a broken connection fails the round trip and the next one reconnects."""

from __future__ import annotations

import asyncio
import socket

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from taskq import lane as lane_module
from taskq.errors import RedisUnavailable
from taskq.lane import Lane


async def test_concurrent_commands_share_round_trips(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """500 commands issued together are all written before any reply is read, and their
    replies come back in a few reads (round trips), not one read per command."""
    reads: list[int] = []  # commands waiting at each read of the lane's connection
    original = lane_module._Replies.data_received

    def counting(self: lane_module._Replies, data: bytes) -> None:
        reads.append(len(self.waiting))
        original(self, data)

    monkeypatch.setattr(lane_module._Replies, "data_received", counting)
    client = Redis.from_url(redis_url)
    lane = Lane(client)
    key = f"{prefix}:lane"
    try:
        name = f"{prefix}-lane"  # connected, and named: later commands go at once
        assert await lane.execute("CLIENT", "SETNAME", name) == b"OK"
        before = [c["id"] for c in await client.client_list() if c.get("name") == name]
        assert len(before) == 1
        reads.clear()
        replies = await asyncio.gather(*(lane.execute("RPUSH", key, i) for i in range(500)))
        assert replies == list(range(1, 501))  # sent in call order, each got its own reply
        assert [int(x) for x in await client.lrange(key, 0, -1)] == list(range(500))
        # the first read found all 500 commands sent and waiting, and a handful of reads
        # (the socket's buffer sizes decide how many) carried all the replies
        assert reads[0] == 500, reads
        assert len(reads) <= 25, reads
        after = [c["id"] for c in await client.client_list() if c.get("name") == name]
        assert after == before  # all on the lane's one connection
    finally:
        await client.delete(key)
        await lane.aclose()
        await client.aclose()


async def test_an_error_reply_fails_only_its_command(redis_url: str, prefix: str) -> None:
    client = Redis.from_url(redis_url)
    lane = Lane(client)
    key = f"{prefix}:lane"
    try:
        await client.set(key, "not a list")
        ok, bad, ok2 = await asyncio.gather(
            lane.execute("GET", key), lane.execute("RPUSH", key, 1), lane.execute("STRLEN", key),
            return_exceptions=True,
        )
        assert ok == b"not a list"
        assert isinstance(bad, ResponseError) and "WRONGTYPE" in str(bad)
        assert ok2 == 10
    finally:
        await client.delete(key)
        await lane.aclose()
        await client.aclose()


async def test_a_dropped_idle_connection_is_reopened(redis_url: str, prefix: str) -> None:
    """Killed before the round trip got any reply (as after a Redis restart): sent again on
    a new connection, once."""
    client = Redis.from_url(redis_url)
    lane = Lane(client)
    key = f"{prefix}:lane"
    try:
        await lane.execute("CLIENT", "SETNAME", "taskq-lane-test")
        ids = [c["id"] for c in await client.client_list() if c.get("name") == "taskq-lane-test"]
        assert len(ids) == 1
        await client.client_kill_filter(_id=ids[0])
        assert await lane.execute("RPUSH", key, "after") == 1
        assert await client.lrange(key, 0, -1) == [b"after"]
        names = [c.get("name") for c in await client.client_list()]
        assert "taskq-lane-test" not in names  # a new connection did it
    finally:
        await client.delete(key)
        await lane.aclose()
        await client.aclose()


async def test_unreachable_redis_fails_fast() -> None:
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=1)
    lane = Lane(client)
    try:
        results = await asyncio.gather(*(lane.execute("PING") for _ in range(3)),
                                       return_exceptions=True)
        assert all(isinstance(r, RedisConnectionError) for r in results), results
    finally:
        await lane.aclose()
        await client.aclose()


async def test_closed_lane_refuses(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    lane = Lane(client)
    await lane.aclose()
    with pytest.raises(RedisConnectionError):
        await lane.execute("PING")
    await client.aclose()


async def test_a_lane_closed_while_connecting_fails_the_command_and_keeps_nothing_open(
        redis_url: str) -> None:
    """A command in flight when the lane is closed (a worker's, when the owner of the
    TaskQueue closed it first) fails like a lost connection, and the connection it was
    opening is closed, not kept by a closed lane that nobody closes again."""
    client = Redis.from_url(redis_url)
    lane = Lane(client)
    try:
        sent = asyncio.create_task(lane.execute("PING"))
        for _ in range(10_000):  # until the command is opening the lane's connection
            if lane._conn is not None or sent.done():
                break
            await asyncio.sleep(0)
        conn = lane._conn
        assert conn is not None and not sent.done()
        await lane.aclose()
        with pytest.raises(RedisUnavailable):
            await sent
        assert getattr(conn, "_writer", None) is None  # closed, not left open
        assert lane._replies is None and lane._conn is None
        with pytest.raises(RedisUnavailable):  # and a later command opens nothing
            await lane.execute("PING")
        assert lane._conn is None
    finally:
        await client.aclose()


async def test_overdue_reply_times_out_and_the_lane_recovers(redis_url: str,
                                                             prefix: str) -> None:
    client = Redis.from_url(redis_url, socket_timeout=0.4)
    lane = Lane(client)
    key = f"{prefix}:lane-empty"
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(RedisTimeoutError):
            await lane.execute("BLPOP", key, 10)  # blocks for 10 s: far past the timeout
        # the watchdog failed it (at about 0.5 s), long before Redis would have replied
        assert asyncio.get_running_loop().time() - started < 5.0
        assert await lane.execute("PING") == b"PONG"  # a new connection
    finally:
        await lane.aclose()
        await client.aclose()


async def test_a_blocking_command_may_block_past_the_socket_timeout(redis_url: str,
                                                                   prefix: str) -> None:
    """A worker's reads block in Redis for up to block_ms: that time is allowed on top."""
    client = Redis.from_url(redis_url, socket_timeout=0.3)
    # the reply is due 0.8 s after sending, 0.5 s past the socket timeout: blocking_s allows
    # that and leaves 3 s more for a loaded machine (without it the reply is overdue)
    lane = Lane(client, blocking_s=3.7)
    key = f"{prefix}:lane-empty"
    try:
        started = asyncio.get_running_loop().time()
        assert await lane.execute("BLPOP", key, 0.8) is None  # longer than the socket timeout
        assert asyncio.get_running_loop().time() - started >= 0.7
    finally:
        await lane.aclose()
        await client.aclose()
