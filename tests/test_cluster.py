"""taskq on a Redis Cluster (3 primaries, 1 replica each, started here): the core behaviours.

The Cluster is started once for the module (a few seconds) on free loopback ports and killed at
the end; every test uses its own key prefix.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from faults.topology import LocalCluster
from taskq import TaskQueue, Worker, clients
from taskq.cli import app as cli_app
from taskq.cluster import ClusterLane, is_cluster
from taskq.connection import check_server
from taskq.errors import ConfigError, NotReplicated, TaskFailed, WorkflowError
from taskq.records import TaskStatus
from taskq.workflow import chain, start
from tests.api_fixtures import READ, make_app, serve
from tests.scaleout import doubling_queue, queues_on_distinct_primaries


def make(cluster: LocalCluster, prefix: str, queues: list[str],
         made: list[TaskQueue]) -> TaskQueue:
    tq = doubling_queue(cluster, prefix, queues, made)

    @tq.task(name="fails", queue=queues[-1], max_attempts=2, backoff=0.05)
    async def fails() -> None:
        raise RuntimeError("always")

    return tq


async def test_three_queues_on_three_primaries_through_one_worker(
        made: list[TaskQueue], cluster: LocalCluster, cprefix: str,
        start_worker: Callable[..., Worker]) -> None:
    queues = queues_on_distinct_primaries(cluster, cprefix, 3)
    tq = make(cluster, cprefix, queues, made)
    assert is_cluster(tq.redis) and isinstance(tq.lane, ClusterLane)
    await tq.ready()
    tasks = [tq.registry[f"double_{q}"] for q in queues]
    one = [await t.enqueue(x=i) for i, t in enumerate(tasks)]  # the lane, slot by slot
    many = await tq.enqueue_many([t.message(x=10 + i) for i, t in enumerate(tasks)] * 2)
    sync = await asyncio.to_thread(lambda: [t.enqueue_sync(x=100) for t in tasks])
    start_worker(tq, queues=tuple(queues))
    assert [await h.result(timeout=30) for h in one] == [0, 2, 4]
    assert sorted([await h.result(timeout=30) for h in many]) == [20, 20, 22, 22, 24, 24]
    assert [await asyncio.to_thread(h.result, 30) for h in sync] == [200] * 3
    # the CLI and the API list the queues across the nodes
    r = await asyncio.to_thread(CliRunner().invoke, cli_app, [
        "--redis-url", cluster.url, "--prefix", cprefix, "queues"])
    assert r.exit_code == 0, r.output
    assert all(q in r.output for q in queues), r.output
    async with serve(make_app(tq)) as http:
        assert (await http.get("/ready")).status_code == 200
        listed = await http.get("/queues", headers=READ)
        assert listed.status_code == 200, listed.text
        assert {q["name"] for q in listed.json()} >= set(queues)


async def test_delays_cancels_retries_and_dead_letters(
        made: list[TaskQueue], cluster: LocalCluster, cprefix: str,
        start_worker: Callable[..., Worker]) -> None:
    queues = queues_on_distinct_primaries(cluster, cprefix, 2)
    tq = make(cluster, cprefix, queues, made)
    double = tq.registry[f"double_{queues[0]}"]
    later = await double.with_options(delay=0.3).enqueue(x=4)
    cancelled = await double.with_options(delay=60).enqueue(x=5)
    assert (await tq.status(cancelled.id)).run_at_ms is not None
    assert await tq.cancel(cancelled.id) == "delayed"
    dead = await tq.registry["fails"].enqueue()
    start_worker(tq, queues=tuple(queues))
    assert await later.result(timeout=30) == 8
    with pytest.raises(TaskFailed, match="dead"):
        await dead.result(timeout=30)
    record = await tq.status(dead.id)
    assert record.status is TaskStatus.DEAD and record.attempts == 2
    assert (await tq.status(cancelled.id)).status is TaskStatus.CANCELLED
    r = await asyncio.to_thread(CliRunner().invoke, cli_app, [
        "--redis-url", cluster.url, "--prefix", cprefix, "dead", "list", queues[-1], "--json"])
    assert r.exit_code == 0 and "always" in r.output, r.output


async def test_the_server_check_reads_every_primary(cluster: LocalCluster,
                                                    cprefix: str) -> None:
    tq = TaskQueue(cluster.url, prefix=cprefix)
    last = cluster.live()[0]
    for node in cluster.live():  # the primary the client would ask last
        if node.admin().info("replication")["role"] == "master":
            last = node
    admin = last.admin()
    try:
        await check_server(tq.redis)
        admin.config_set("maxmemory-policy", "allkeys-lru")
        with pytest.raises(ConfigError, match=f"node 127.0.0.1:{last.port} maxmemory-policy"):
            await check_server(tq.redis)
    finally:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.close()
        await tq.aclose()


async def test_min_replicas_waits_on_each_queues_primary(
        made: list[TaskQueue], cluster: LocalCluster, cprefix: str,
        start_worker: Callable[..., Worker]) -> None:
    queues = queues_on_distinct_primaries(cluster, cprefix, 3)
    tq = make(cluster, cprefix, queues, made)
    tq.min_replicas = 1
    tasks = [tq.registry[f"double_{q}"] for q in queues]
    handles = [await t.enqueue(x=1) for t in tasks]
    handles += await tq.enqueue_many([t.message(x=2) for t in tasks])
    sync = await asyncio.to_thread(tq.enqueue_many_sync, [t.message(x=3) for t in tasks])
    worker = start_worker(tq, queues=tuple(queues))
    assert sorted([await h.result(timeout=30) for h in handles]) == [2] * 3 + [4] * 3
    assert [await asyncio.to_thread(h.result, 30) for h in sync] == [6] * 3
    assert worker.completer.unreplicated == 0
    tq.min_replicas, tq.replicas_timeout_ms = 2, 100  # each primary has one replica
    with pytest.raises(NotReplicated, match="only 1 of the 2"):
        await tasks[1].enqueue(x=4)


async def test_a_lane_outlives_the_client_it_was_made_from(cluster: LocalCluster,
                                                           cprefix: str) -> None:
    """An API's lifespan closes the TaskQueue a worker in the same process still reads from:
    the worker's lane goes on, and reopens no closed client that nobody would close again (the
    "Unclosed RedisCluster client" ResourceWarning that failed the next test under -n 2)."""
    tq = TaskQueue(cluster.url, prefix=cprefix)
    client = tq.redis
    lane = clients.lane(client, blocking_s=0.1)
    key = f"{cprefix}:{{q}}:probe"
    try:
        assert await lane.execute("SET", key, "1") in (b"OK", "OK", True)
        await tq.aclose()  # the lifespan's close, the worker still running
        assert await lane.execute("GET", key) == b"1"
        assert isinstance(lane, ClusterLane)
        await lane.refresh()  # a slot map reload after the close
        assert await lane.execute("DEL", key) == 1
    finally:
        await lane.aclose()
        await tq.aclose()
    del lane, client
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert not [w for w in caught if "Unclosed" in str(w.message)], [str(w.message) for w in caught]


async def test_a_workflow_lives_in_one_queue_slot(
        made: list[TaskQueue], cluster: LocalCluster, cprefix: str,
        start_worker: Callable[..., Worker]) -> None:
    queues = queues_on_distinct_primaries(cluster, cprefix, 2)
    tq = make(cluster, cprefix, queues, made)
    one, two = (tq.registry[f"double_{q}"] for q in queues)
    # steps in queues of two slots: a clear error at start, before anything is stored
    with pytest.raises(WorkflowError, match="must share one queue"):
        await start(tq, chain(one.message(x=1), two.step()))
    assert await tq.redis.xlen(tq.keys(queues[0]).stream) == 0
    # one queue and its priority lanes: started, a step cancelled by id ends it, and it runs
    high = one.with_options(priority="high")  # type: ignore[attr-defined]
    wf = await start(tq, chain(one.message(x=1), high.message(x=2), one.step()))
    assert await wf.cancel() == "running"
    wf2 = await start(tq, chain(one.message(x=1), one.step()))
    assert await tq.cancel((await wf2.status()).steps[0].task_id) == "queued"
    assert (await wf2.status()).status == "cancelled"
    wf3 = await start(tq, chain(one.message(x=1), high.message(x=2), one.step()))
    start_worker(tq, queues=(queues[0],))
    assert await wf3.result(timeout=30) == 8
