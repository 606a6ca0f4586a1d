"""taskq through Redis Sentinel (1 master, 1 replica, 3 Sentinels, started here): the master is
found through the Sentinels, and after a failover every client follows the new master."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.connection import Connection
from typer.testing import CliRunner

from faults.redis_server import RedisServer
from faults.topology import LocalSentinel
from taskq import NotReplicated, RedisNotReady, TaskQueue, Worker
from taskq.cli import app as cli_app
from taskq.lane import Lane
from taskq.workflow import Workflow, chain, start, start_sync
from tests.helpers import eventually
from tests.scaleout import inc_queue, require_redis_server, started


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSentinel]:
    require_redis_server("a Redis Sentinel test")
    with started(LocalSentinel(Path(tmp_path_factory.mktemp("sentinel")),
                               password="s3cret-pw")) as s:
        yield s


def make(sentinel: LocalSentinel, made: list[TaskQueue]) -> TaskQueue:
    return inc_queue(sentinel.url, f"s{uuid.uuid4().hex[:8]}", made)


async def test_the_master_is_found_and_followed_through_a_failover(
        made: list[TaskQueue], sentinel: LocalSentinel,
        start_worker: Callable[..., Worker]) -> None:
    tq = make(sentinel, made)
    inc = tq.registry["inc"]
    await tq.ready()
    before = sentinel.current_master()
    start_worker(tq, block_ms=5000)  # blocked in XREADGROUP when the master is demoted
    assert await (await inc.enqueue(x=1)).result(timeout=30) == 2
    new = await asyncio.to_thread(sentinel.failover)
    assert new is not before
    # the same TaskQueue, its lane, its worker and a blocking producer all use the new master
    after = [await inc.enqueue(x=i) for i in range(5)]
    assert [await h.result(timeout=30) for h in after] == [1, 2, 3, 4, 5]
    sync = await asyncio.to_thread(inc.enqueue_sync, x=10)
    assert await asyncio.to_thread(sync.result, 30) == 11
    admin = new.admin()
    try:
        assert admin.xlen(tq.keys("default").stream) == 0  # everything ran and was acked there
        assert int(admin.hget(tq.keys("default").stats, "completed") or 0) >= 7
    finally:
        admin.close()


class _Switching:
    """A connection pool stand-in whose next connection goes to the next of ``ports``, as a
    Sentinel-managed connection asks the Sentinels anew (here: first the replica)."""

    connection_class = Connection

    def __init__(self, ports: list[int], password: str) -> None:
        self.ports = ports
        self.password = password
        self.made = 0

    @property
    def connection_kwargs(self) -> dict[str, Any]:
        port = self.ports[min(self.made, len(self.ports) - 1)]
        self.made += 1
        return {"host": "127.0.0.1", "port": port, "password": self.password,
                "socket_timeout": 5}


async def test_readonly_means_reconnect_and_the_write_did_not_run(
        sentinel: LocalSentinel) -> None:
    master = sentinel.current_master()
    replica = sentinel.replica if master is sentinel.master else sentinel.master
    key = f"s{uuid.uuid4().hex[:8]}:ro"
    # a lane whose connection is on a replica (a demoted master): the XADD is refused with
    # READONLY, the lane reconnects (now to the master) and sends it once more
    pool = _Switching([replica.port, master.port], sentinel.password or "")
    lane = Lane.on_pool(pool)
    try:
        await lane.execute("PING")  # connected to the replica
        pool.made = 1
        entry = await lane.execute("XADD", key, "*", "m", "x")
        assert entry
    finally:
        await lane.aclose()
    admin = master.admin()
    try:
        assert admin.xlen(key) == 1  # once, on the master
        admin.delete(key)
    finally:
        admin.close()
    # a lane that finds only a replica: RedisNotReady, and nothing was written
    lane = Lane.on_pool(_Switching([replica.port], sentinel.password or ""))
    try:
        with pytest.raises(RedisNotReady, match="READONLY") as refused:
            await lane.execute("XADD", key, "*", "m", "x")
        assert refused.value.code == "READONLY"
    finally:
        await lane.aclose()


async def test_min_replicas_confirms_enqueues_and_completions(
        made: list[TaskQueue], sentinel: LocalSentinel,
        start_worker: Callable[..., Worker]) -> None:
    base = make(sentinel, made)
    tq = base.configured()  # (a copy with the same registry, then with the guarantee)
    tq.min_replicas, tq.replicas_timeout_ms = 1, 2000
    made.append(tq)
    inc = tq.registry["inc"]
    handles = await tq.enqueue_many([inc.message(x=i) for i in range(3)])
    handles.append(await tq.enqueue_one(inc.message(x=3)))
    handles += await asyncio.to_thread(tq.enqueue_many_sync, [inc.message(x=4)])
    worker = start_worker(tq)
    assert sorted([await h.result(timeout=30) for h in handles[:4]]) == [1, 2, 3, 4]
    assert worker.completer.unreplicated == 0
    # asking for more replicas than there are: refused in time, yet queued on the master
    strict = base.configured()
    strict.min_replicas, strict.replicas_timeout_ms = 2, 100
    made.append(strict)
    with pytest.raises(NotReplicated, match="only 1 of the 2 replicas") as refused:
        await strict.enqueue_one(inc.message(x=5))
    assert refused.value.replicas == 1
    with pytest.raises(NotReplicated):
        await asyncio.to_thread(strict.enqueue_many_sync, [inc.message(x=6)])
    # tasks with options (a unique key) go through their own script: confirmed the same way
    keyed = strict.registry["inc"]
    with pytest.raises(NotReplicated):
        await strict.enqueue_many([keyed.with_options(key="seven").message(x=7)])  # type: ignore[attr-defined]
    with pytest.raises(NotReplicated):
        await asyncio.to_thread(strict.enqueue_many_sync,
                                [keyed.with_options(key="eight").message(x=8)])  # type: ignore[attr-defined]
    admin = sentinel.current_master().admin()
    try:
        async def both_ran() -> bool:
            return int(admin.hget(tq.keys("default").stats, "completed") or 0) >= 9
        await eventually(both_ran, timeout=30)
    finally:
        admin.close()


async def test_min_replicas_confirms_workflow_starts(
        made: list[TaskQueue], sentinel: LocalSentinel,
        start_worker: Callable[..., Worker]) -> None:
    base = make(sentinel, made)
    inc = base.registry["inc"]
    tq = base.configured()
    tq.min_replicas, tq.replicas_timeout_ms = 1, 2000
    made.append(tq)
    wf = await start(tq, chain(inc.message(x=1), inc.step()))
    sync = await asyncio.to_thread(start_sync, tq, chain(inc.message(x=10), inc.step()))
    # more replicas than there are: refused in time, yet started on the master (as enqueues)
    strict = base.configured()
    strict.min_replicas, strict.replicas_timeout_ms = 2, 100
    made.append(strict)
    with pytest.raises(NotReplicated, match=r"workflow .*only 1 of the 2 replicas"):
        await start(strict, chain(inc.message(x=100), inc.step()))
    with pytest.raises(NotReplicated):
        await asyncio.to_thread(start_sync, strict, chain(inc.message(x=200), inc.step()))
    home = strict.keys("default").workflow("").rpartition(":")[0]
    admin = sentinel.current_master().admin()
    try:
        started = list(admin.scan_iter(match=f"{home}:*"))
        assert len(started) == 4  # every start is stored, the refused ones too
    finally:
        admin.close()
    start_worker(tq)
    assert await wf.result(timeout=30) == 3
    assert await asyncio.to_thread(sync.result, 30) == 12
    results = []
    for key in started:
        wf_id = "default:" + (key.decode() if isinstance(key, bytes) else key).rpartition(":")[2]
        results.append(await Workflow(wf_id, tq).result(timeout=30))
    assert sorted(results) == [3, 12, 102, 202]


def test_a_wrong_sentinel_password_is_one_line_without_secrets(
        sentinel: LocalSentinel) -> None:
    url = f"{sentinel.url}?sentinel_password=s3cretSENT-wrong"
    result = CliRunner().invoke(cli_app, ["--redis-url", url, "queues"])
    assert result.exit_code == 3, result.output
    shown = result.output.strip()
    assert len(shown.splitlines()) == 1, shown
    assert "s3cretSENT" not in shown and "s3cret-pw" not in shown and "Redis(<" not in shown
    assert "No master found for 'taskq'" in shown and "credentials" in shown, shown


async def test_a_read_blocked_on_a_demoted_master_reads_from_the_new_one(
        tmp_path: Path) -> None:
    # A master turned replica (REPLICAOF: a restarted old master demoted by the Sentinels)
    # wakes a blocked XREADGROUP with UNBLOCKED: the lane reconnects (a Sentinel-managed
    # connection asks the Sentinels for the new master: here the pool's next address) and
    # reads again, instead of the worker stopping ("cannot heal by itself").
    old = RedisServer(tmp_path / "old", password="s3cret-pw")
    new = RedisServer(tmp_path / "new", password="s3cret-pw")
    with started(old), started(new):
        for server in (old, new):
            admin = server.admin()
            try:
                admin.xgroup_create("s", "g", id="$", mkstream=True)
            finally:
                admin.close()
        pool = _Switching([old.port, new.port], "s3cret-pw")
        lane = Lane.on_pool(pool, blocking_s=10)
        pool.made = 0  # (the lane read the pool's settings once)
        try:
            await lane.execute("PING")  # connected to the old master
            reading = asyncio.create_task(lane.execute(
                "XREADGROUP", "GROUP", "g", "c", "COUNT", 1, "BLOCK", 10_000, "STREAMS", "s",
                ">"))
            admin = old.admin()
            try:

                async def blocked() -> bool:
                    if reading.done():
                        reading.result()
                    return int(admin.info("clients")["blocked_clients"]) >= 1

                await eventually(blocked, timeout=30, what="the read blocked")
                admin.config_set("masterauth", "s3cret-pw")
                admin.execute_command("REPLICAOF", "127.0.0.1", str(new.port))
            finally:
                admin.close()
            new_admin = new.admin()
            try:
                new_admin.xadd("s", {"m": "x"})
            finally:
                new_admin.close()
            reply = await asyncio.wait_for(reading, 30)
            assert reply and reply[0][1][0][1] == [b"m", b"x"], reply
        finally:
            await lane.aclose()
