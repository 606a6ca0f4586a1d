"""Clients for every Redis URL (:mod:`taskq.urls`): one Redis, a Sentinel-managed master, a
Cluster. The one place that picks the client by the URL's kind; the rest of taskq asks
:func:`is_cluster` where a Cluster needs another path (the lanes, the reader, the events)."""

from __future__ import annotations

from typing import Any, cast

from redis import Redis as SyncRedis
from redis.asyncio import Redis

from taskq import cluster, connection, sentinel, urls
from taskq.cluster import ClusterLane, is_cluster
from taskq.lane import Commands, Lane

__all__ = ["connect", "connect_sync", "is_cluster", "lane"]


def lane(client: Redis, blocking_s: float = 0.0) -> Commands:
    """The auto-pipelined lane (:mod:`taskq.lane`) for ``client``: one connection, or on a
    Cluster one per primary, routed by slot (:class:`taskq.cluster.ClusterLane`)."""
    if is_cluster(client):
        return ClusterLane(cast(Any, client), blocking_s)
    return Lane(client, blocking_s)


def connect(url: str, *, socket_timeout_s: float = 5.0) -> Redis:
    """An asyncio client for ``url`` (a ConfigError in one line for a malformed one).

    For a Cluster URL it is redis-py's Cluster client (:class:`taskq.cluster.ClusterClient`),
    typed as ``Redis``: it answers the commands taskq sends (keyed commands, pipelines,
    ``INFO`` per node through :func:`taskq.cluster.primaries`), not pub/sub."""
    target = urls.parse(url)
    if not target.scaled:
        return connection.connect(url, socket_timeout_s=socket_timeout_s)
    urls.check_files(target)
    options = connection.socket_options(url, socket_timeout_s)
    if target.kind is urls.Kind.SENTINEL:
        return sentinel.connect(target, options)
    return cast(Redis, cluster.connect(target, options))


def connect_sync(url: str, *, socket_timeout_s: float = 5.0) -> SyncRedis:
    """The blocking twin of :func:`connect` (``enqueue_sync``, test helpers)."""
    target = urls.parse(url)
    if not target.scaled:
        return connection.connect_sync(url, socket_timeout_s=socket_timeout_s)
    urls.check_files(target)
    options: dict[str, Any] = connection.socket_options(url, socket_timeout_s)
    if target.kind is urls.Kind.SENTINEL:
        return cast(SyncRedis, sentinel.connect_sync(target, options))
    return cast(SyncRedis, cluster.connect_sync(target, options))
