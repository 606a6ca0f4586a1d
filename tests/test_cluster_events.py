"""Task events on a Redis Cluster of 7.0 nodes: sharded pub/sub (SPUBLISH in the scripts,
SSUBSCRIBE on the primary of each queue's slot, taskq/shardsub.py), kept through a failover;
and the API and the CLI against the Cluster.

One Cluster (3 primaries, 1 replica each) for the module; every test uses its own key prefix.
The waiters' slow re-check is set to 120 s, so a waiter woken within the test's timeouts was
woken by an event.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from typer.testing import CliRunner

from faults.topology import LocalCluster
from taskq import RedisNotReady, RedisUnavailable, TaskQueue, Worker, ids
from taskq import cluster as cluster_module
from taskq import queue as queue_module
from taskq.cli import app as cli_app
from taskq.shardsub import ShardSubscriber
from tests.api_fixtures import ADMIN, READ, make_app, serve
from tests.apps.api_tasks import build
from tests.helpers import eventually
from tests.scaleout import doubling_queue, queues_on_distinct_primaries
from tests.test_api_sse import check_order, read_events


@pytest.fixture
def slow_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_module, "RECHECK_S", 120.0)


def shard_subscribers(cluster: LocalCluster, channel: str) -> int:
    """How many connections SSUBSCRIBE ``channel`` on the primary of its slot."""
    client = cluster.primary_of(channel).admin()
    try:
        reply = client.execute_command("PUBSUB", "SHARDNUMSUB", channel)
        return int(reply[1])
    finally:
        client.close()


async def subscribed(tq: TaskQueue, channels: list[str]) -> ShardSubscriber:
    async def check() -> ShardSubscriber | None:
        shards = tq.events.shards
        return shards if shards and all(shards.confirmed(c) for c in channels) else None

    shards: ShardSubscriber = await eventually(check, timeout=30, what="subscriptions confirmed")
    return shards


async def test_waiters_on_three_primaries_are_woken_by_sharded_events(
        made: list[TaskQueue], cluster: LocalCluster, cprefix: str, slow_recheck: None,
        start_worker: Callable[..., Worker]) -> None:
    queues = queues_on_distinct_primaries(cluster, cprefix, 3)
    tq = doubling_queue(cluster, cprefix, queues, made)
    tasks = [tq.registry[f"double_{q}"] for q in queues]
    order = [0, 2, 1, 1, 0, 2, 2]
    handles = await tq.enqueue_many([tasks[q].message(x=i) for i, q in enumerate(order)])
    # one call across three slots: the handles come back in the order of the messages
    assert [ids.split(h.id)[0] for h in handles] == [queues[q] for q in order]
    waiting = [asyncio.create_task(h.result(timeout=40)) for h in handles]
    channels = [tq.keys(q).events for q in queues]
    await subscribed(tq, channels)
    assert len({cluster.primary_of(c).port for c in channels}) == 3
    assert [shard_subscribers(cluster, c) for c in channels] == [1, 1, 1]  # SSUBSCRIBE, there
    start_worker(tq, queues=tuple(queues))
    assert await asyncio.gather(*waiting) == [2 * i for i in range(len(order))]
    assert tq.events.received >= 3  # at least one completion batch per queue


async def test_a_subscription_follows_its_slot_through_a_failover(
        made: list[TaskQueue], cluster: LocalCluster, cprefix: str, slow_recheck: None,
        start_worker: Callable[..., Worker]) -> None:
    [queue] = queues_on_distinct_primaries(cluster, cprefix, 1)
    tq = doubling_queue(cluster, cprefix, [queue], made)
    channel = tq.keys(queue).events
    double = tq.registry[f"double_{queue}"]
    first = await double.enqueue(x=1)
    waiting = asyncio.create_task(first.result(timeout=60))
    shards = await subscribed(tq, [channel])
    before = cluster.primary_of(channel)
    # the replica takes the slot over; the old primary drops the subscription (sunsubscribe)
    after = await asyncio.to_thread(cluster.fail_over, channel)
    assert after is not before
    await eventually(lambda: _moved(shards, channel, 1), timeout=30, what="resubscribed")
    assert shard_subscribers(cluster, channel) == 1
    # a dropped connection: subscribed again on the same node
    admin = after.admin()
    try:
        assert admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 1
    finally:
        admin.close()
    await eventually(lambda: _moved(shards, channel, 2), timeout=30, what="reconnected")
    start_worker(tq, queues=(queue,))
    assert await waiting == 2
    second = await double.enqueue(x=2)
    assert await second.result(timeout=40) == 4


async def _moved(shards: ShardSubscriber, channel: str, moves: int) -> bool:
    return shards.moves >= moves and shards.confirmed(channel)


async def test_the_api_and_the_cli_on_a_cluster(
        made: list[TaskQueue], cluster: LocalCluster, cprefix: str,
        start_worker: Callable[..., Worker]) -> None:
    # tests/apps/api_tasks.py (queue "default"); the API and the worker each have their own
    # TaskQueue, as in two processes (the API's lifespan closes its own at the end)
    tq, api_tq = build(cprefix, cluster.url), build(cprefix, cluster.url)
    made += (tq, api_tq)
    async with serve(make_app(api_tq)) as http:
        r = await http.post("/enqueue/steps", json={"n": 3, "seconds": 0.1}, headers=ADMIN)
        assert r.status_code in (200, 201, 202), r.text
        steps_id = r.json()["id"]
        status = await http.get(f"/tasks/{steps_id}", headers=READ)
        assert status.status_code == 200 and status.json()["status"] == "queued", status.text
        events = await read_events(http, steps_id, lambda: start_worker(tq))
        check_order(events)
        assert events[-1][2]["status"] == "succeeded" and events[-1][2]["result"] == 3
        assert api_tq.events.shards is not None and api_tq.events.received >= 1
        r = await http.post("/enqueue/fail", json={"message": "no, says the cluster"},
                            headers=ADMIN)
        dead_id = r.json()["id"]
        assert (await tq.wait(dead_id, timeout=40)).status == "dead"
        listed = await http.get("/queues", headers=READ)
        assert "default" in {q["name"] for q in listed.json()}, listed.text

    def cli(*args: str) -> str:
        result = CliRunner().invoke(cli_app, ["--redis-url", cluster.url, "--prefix", cprefix,
                                              *args])
        assert result.exit_code == 0, result.output
        return result.output

    shown = json.loads(await asyncio.to_thread(cli, "task", steps_id, "--json"))
    assert shown["status"] == "succeeded" and shown["result"] == 3
    assert "default" in await asyncio.to_thread(cli, "queues")
    letter = json.loads(await asyncio.to_thread(cli, "dead", "show", "default", dead_id,
                                                "--json"))
    assert letter["task_id"] == dead_id and "no, says the cluster" in letter["error"]
    replayed = json.loads(await asyncio.to_thread(cli, "dead", "replay", "default",
                                                  letter["id"], "--yes", "--json"))
    assert replayed["replayed"] == 1, replayed
    again = await tq.wait(dead_id, timeout=40)  # the replay dropped the dead record
    assert again.status == "dead"  # it ran again, and failed again
    listing = json.loads(await asyncio.to_thread(cli, "dead", "list", "default", "--json"))
    assert [d["task_id"] for d in listing["dead_letters"]] == [dead_id]
    assert listing["dead_letters"][0]["id"] != letter["id"]


async def test_a_blocked_reader_survives_a_failover_of_its_primary(
        made: list[TaskQueue], cluster: LocalCluster, cprefix: str,
        start_worker: Callable[..., Worker]) -> None:
    # CLUSTER FAILOVER unblocks an XREADGROUP blocked on the demoted primary with UNBLOCKED:
    # the read goes to the new primary (it used to stop the worker: "cannot heal by itself")
    [queue] = queues_on_distinct_primaries(cluster, cprefix, 1)
    tq = doubling_queue(cluster, cprefix, [queue], made)
    double = tq.registry[f"double_{queue}"]
    worker = start_worker(tq, queues=(queue,), block_ms=5000)
    assert await (await double.enqueue(x=1)).result(timeout=40) == 2  # reading, blocked
    stream = tq.keys(queue).stream
    before = cluster.primary_of(stream)
    after = await asyncio.to_thread(cluster.fail_over, stream)
    assert after is not before
    assert await (await double.enqueue(x=3)).result(timeout=60) == 6
    assert not worker.stopping


async def test_one_primary_down_fails_no_waiter_at_once(
        made: list[TaskQueue], cluster: LocalCluster, cprefix: str,
        monkeypatch: pytest.MonkeyPatch, start_worker: Callable[..., Worker]) -> None:
    # A new process while one primary is down (its INFO fails): the event mode is decided by
    # the primaries that answer, and a status read that fails (the waiter's queue is on the
    # down primary) is tried again within the wait's timeout, not raised at once.
    [queue] = queues_on_distinct_primaries(cluster, cprefix, 1)
    tq = doubling_queue(cluster, cprefix, [queue], made)
    await tq.ready()
    down = sorted(n.name for n in tq.redis.get_primaries())[0]  # type: ignore[attr-defined]
    real_info = tq.redis.info

    async def info(*args: Any, target_nodes: Any = None, **kwargs: Any) -> Any:
        if target_nodes is not None and target_nodes.name == down:
            raise RedisUnavailable(f"cannot reach Redis at {down}: Connection refused")
        return await real_info(*args, target_nodes=target_nodes, **kwargs)

    monkeypatch.setattr(tq.redis, "info", info)
    assert await cluster_module.sharded_events(tq.redis) is True
    assert getattr(tq.redis, "taskq_sharded", None) is None  # asked again next time
    monkeypatch.setattr(tq.redis, "info", real_info)  # (the worker checks every primary)
    real_status, failed = tq.status, []

    async def status(task_id: str) -> Any:
        if len(failed) < 2:
            failed.append(task_id)
            raise RedisUnavailable("cannot reach Redis at the queue's primary")
        return await real_status(task_id)

    monkeypatch.setattr(tq, "status", status)
    handle = await tq.registry[f"double_{queue}"].enqueue(x=5)
    start_worker(tq, queues=(queue,))
    assert await handle.result(timeout=40) == 10
    assert len(failed) == 2


async def test_redis_pys_lost_node_slip_is_not_ready_and_heals(
        made: list[TaskQueue], cluster: LocalCluster, cprefix: str) -> None:
    # redis-py 6.4's Cluster transaction stores a lost connection's error as the "moved"
    # redirection; the next command raised AttributeError ('ConnectionError' object has no
    # attribute 'host'), in a failover seen through status() and the API's /ready
    [queue] = queues_on_distinct_primaries(cluster, cprefix, 1)
    tq = doubling_queue(cluster, cprefix, [queue], made)
    handle = await tq.registry[f"double_{queue}"].enqueue(x=1)
    nodes = tq.redis.nodes_manager  # type: ignore[attr-defined]
    nodes._moved_exception = RedisConnectionError("Connection closed by server.")
    with pytest.raises(RedisNotReady, match="failing over") as refused:
        await tq.status(handle.id)
    assert refused.value.code == "CLUSTERDOWN"
    assert (await tq.status(handle.id)).status == "queued"  # and the next call works
