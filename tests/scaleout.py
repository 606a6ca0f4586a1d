"""Shared by the Cluster, Sentinel and TLS tests (a pytest plugin of conftest.py): skip without
redis-server (fail under CI=true), a started topology stopped at the end, the module's Redis
Cluster, TaskQueues closed after the test's workers, and queue names whose slots land on
distinct Cluster primaries."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from faults import topology
from faults.topology import LocalCluster
from taskq import TaskQueue
from taskq.keys import QueueKeys


class Startable(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


S = TypeVar("S", bound=Startable)


def require_redis_server(what: str) -> None:
    """Skip (or fail, under ``CI=true``: CI installs redis-server) when it is missing."""
    missing = topology.available()
    if missing is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} needs {missing}; CI must install it", pytrace=False)
    pytest.skip(f"{what} needs {missing}")


@contextmanager
def started(servers: S) -> Iterator[S]:
    """``servers`` started, and stopped at the end (also when starting failed half-way)."""
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A Redis Cluster (3 primaries, 1 replica each) for the module."""
    require_redis_server("a Redis Cluster test")
    with started(LocalCluster(Path(tmp_path_factory.mktemp("cluster")))) as c:
        yield c


@pytest.fixture
def cprefix() -> str:
    return f"c{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def made() -> AsyncIterator[list[TaskQueue]]:
    """TaskQueues made by the test, closed after its workers stopped (ask for it first)."""
    queues: list[TaskQueue] = []
    yield queues
    for tq in queues:
        await tq.aclose()


def doubling_queue(cluster: LocalCluster, prefix: str, queues: list[str],
                   made: list[TaskQueue]) -> TaskQueue:
    """A TaskQueue on ``cluster`` (closed by ``made``) with a task ``double_<q>`` per queue."""
    tq = TaskQueue(cluster.url, prefix=prefix, default_queue=queues[0])
    made.append(tq)
    for q in queues:
        @tq.task(name=f"double_{q}", queue=q)
        async def double(x: int) -> int:
            return x * 2
    return tq


def inc_queue(url: str, prefix: str, made: list[TaskQueue]) -> TaskQueue:
    """A TaskQueue on ``url`` (closed by ``made``) with one task, ``inc``."""
    tq = TaskQueue(url, prefix=prefix)
    made.append(tq)

    @tq.task(name="inc")
    async def inc(x: int) -> int:
        return x + 1

    return tq


def queues_on_distinct_primaries(cluster: LocalCluster, prefix: str, count: int) -> list[str]:
    """``count`` queue names whose keys live on ``count`` different primaries."""
    chosen: dict[int, str] = {}
    for i in range(200):
        name = f"q{i}"
        port = cluster.primary_of(QueueKeys(prefix, name).stream).port
        chosen.setdefault(port, name)
        if len(chosen) == count:
            return sorted(chosen.values())
    raise AssertionError("no queue names spread over the primaries")
