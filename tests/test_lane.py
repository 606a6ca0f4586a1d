"""The producer's auto-pipelined lane (taskq.lane): replies in order, an error reply fails
only its own command, a broken connection fails the round trip and the next one reconnects."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from taskq.lane import Lane


async def test_concurrent_commands_share_round_trips(redis_url: str, prefix: str) -> None:
    client = Redis.from_url(redis_url)
    lane = Lane(client)
    key = f"{prefix}:lane"
    try:
        await client.ping()
        before = (await client.info("stats"))["total_connections_received"]
        replies = await asyncio.gather(*(lane.execute("RPUSH", key, i) for i in range(500)))
        assert replies == list(range(1, 501))  # sent in call order, each got its own reply
        assert [int(x) for x in await client.lrange(key, 0, -1)] == list(range(500))
        after = (await client.info("stats"))["total_connections_received"]
        assert after - before <= 2  # the lane's one connection (others' tests may add one)
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


async def test_a_dropped_connection_fails_then_reconnects(redis_url: str, prefix: str) -> None:
    client = Redis.from_url(redis_url)
    lane = Lane(client)
    key = f"{prefix}:lane"
    try:
        await lane.execute("CLIENT", "SETNAME", "taskq-lane-test")
        ids = [c["id"] for c in await client.client_list() if c.get("name") == "taskq-lane-test"]
        assert len(ids) == 1
        await client.client_kill_filter(_id=ids[0])
        with pytest.raises(RedisConnectionError):
            await lane.execute("RPUSH", key, "lost?")
        assert await lane.execute("RPUSH", key, "after") >= 1  # a new connection
    finally:
        await client.delete(key)
        await lane.aclose()
        await client.aclose()


async def test_closed_lane_refuses(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    lane = Lane(client)
    await lane.aclose()
    with pytest.raises(RedisConnectionError):
        await lane.execute("PING")
    await client.aclose()
