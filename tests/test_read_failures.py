"""What the worker does when Redis refuses a read: refusals that pass are retried, NOGROUP
recreates the groups, anything else stops the worker, which then no longer looks alive."""

from __future__ import annotations

import asyncio

import pytest
from redis import exceptions as redis_exceptions

from taskq import RedisCommandError, RedisNotReady, TaskQueue, Worker, WorkerConfig
from taskq.connection import translate
from taskq.keys import worker_alive_key, workers_key
from tests.helpers import eventually

E = redis_exceptions


@pytest.mark.parametrize(("raised", "code"), [
    (E.ReadOnlyError("You can't write against a read only replica."), "READONLY"),
    (E.ResponseError("READONLY You can't write against a read only replica."), "READONLY"),
    (E.ResponseError("NOREPLICAS Not enough good replicas to write."), "NOREPLICAS"),
    (E.MovedError("3999 127.0.0.1:7001"), "MOVED"),
    (E.ResponseError("MOVED 3999 127.0.0.1:7001"), "MOVED"),
    (E.ResponseError("ASK 3999 127.0.0.1:7001"), "ASK"),
    (E.TryAgainError("Multiple keys request during rehashing of slot"), "TRYAGAIN"),
    (E.ResponseError("CLUSTERDOWN The cluster is down"), "CLUSTERDOWN"),
    (E.ResponseError("MASTERDOWN Link with MASTER is down"), "MASTERDOWN"),
])
def test_refusals_that_pass_are_not_ready_with_their_real_text(raised: Exception,
                                                                code: str) -> None:
    error = translate(raised, where="redis://h:1/0", command=("XADD", "k", "*", "m", "x"))
    assert isinstance(error, RedisNotReady) and error.code == code
    assert code in str(error) and "'k'" in str(error) and "{" not in str(error)


def test_crossslot_is_a_command_error_not_a_vanished_group() -> None:
    error = translate(E.ResponseError("CROSSSLOT Keys in request don't hash to the same slot"),
                      where="redis://h:1/0")
    assert type(error) is RedisCommandError and str(error).startswith("CROSSSLOT")


async def test_a_read_refused_for_good_stops_the_worker_and_its_heartbeat(
        tq: TaskQueue, prefix: str) -> None:
    @tq.task(queue="q")
    async def noop() -> None:
        return None

    worker = Worker(tq, WorkerConfig(queues=("q",), block_ms=200, heartbeat_every_ms=200))
    run = asyncio.create_task(worker.run())
    alive = worker_alive_key(prefix, worker.id)

    async def registered() -> bool:
        return bool(await tq.redis.exists(alive))

    await eventually(registered, timeout=15)
    stream = tq.keys("q").stream
    await tq.redis.delete(stream)
    await tq.redis.set(stream, "not a stream")  # every read and group creation: WRONGTYPE
    with pytest.raises(RedisCommandError, match="WRONGTYPE"):
        await asyncio.wait_for(run, 30)
    assert not await tq.redis.exists(alive)
    assert not await tq.redis.hexists(workers_key(prefix), worker.id)  # type: ignore[misc]
    await tq.redis.delete(stream)
