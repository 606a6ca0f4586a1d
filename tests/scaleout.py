"""Shared by the Cluster and Sentinel tests: skip without redis-server (fail under CI=true),
and queue names whose slots land on distinct Cluster primaries."""

from __future__ import annotations

import os

import pytest

from faults import topology
from faults.topology import LocalCluster
from taskq.keys import QueueKeys


def require_redis_server(what: str) -> None:
    """Skip (or fail, under ``CI=true``: CI installs redis-server) when it is missing."""
    missing = topology.available()
    if missing is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} needs {missing}; CI must install it", pytrace=False)
    pytest.skip(f"{what} needs {missing}")


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
