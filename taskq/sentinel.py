"""Redis Sentinel (``redis+sentinel://`` URLs): clients of the master that Sentinels name.

The clients here are :class:`taskq.connection.Client` (and its blocking twin) on redis-py's
Sentinel connection pool: every new connection asks the Sentinels where the master of the
service is, so after a failover new connections go to the new master. A connection to a
demoted master answers writes with READONLY: redis-py's pooled connections then disconnect
(the next one looks the master up again), and so does the lane (:mod:`taskq.lane`), which
sends the refused command once more on a new connection. A write refused that way did not run.

TLS (``rediss+sentinel://``): the Sentinels and the master are both reached over TLS, with the
same certificate options (``ssl_ca_certs``, ``ssl_certfile``, ...; :mod:`taskq.urls`).

What Sentinel does not promise: a write acknowledged by the old master just before a failover
can be lost (replication is asynchronous); see ``min_replicas`` on :class:`taskq.TaskQueue`
and docs/reliability.md.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel
from redis.sentinel import Sentinel as SyncSentinel

from taskq.connection import Client, SyncClient
from taskq.urls import Target


class SentinelClient(Client):
    """:class:`taskq.connection.Client` on a Sentinel pool: closing it closes the connections
    to the Sentinels too."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        for client in getattr(manager, "sentinels", ()):
            await client.aclose()


class SyncSentinelClient(SyncClient):
    """The blocking twin of :class:`SentinelClient`."""

    def close(self) -> None:
        super().close()
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        for client in getattr(manager, "sentinels", ()):
            client.close()


def _sentinel_kwargs(target: Target, options: dict[str, Any]) -> dict[str, Any]:
    kwargs = {k: v for k, v in options.items() if k.startswith("socket_")}
    if target.sentinel_password:
        kwargs["password"] = target.sentinel_password
    if target.sentinel_username:
        kwargs["username"] = target.sentinel_username
    kwargs.update(target.ssl_kwargs())  # the same TLS options as the master's
    return kwargs


def _master_kwargs(target: Target, options: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(options)
    kwargs.update(db=target.db, username=target.username, password=target.password)
    kwargs.update(target.ssl_kwargs())
    return kwargs


def connect(target: Target, options: dict[str, Any]) -> Redis:
    """An asyncio client of the master of ``target.service`` (connections made on use)."""
    sentinel = Sentinel(list(target.nodes),  # type: ignore[no-untyped-call]
                        sentinel_kwargs=_sentinel_kwargs(target, options))
    client: Redis = sentinel.master_for(target.service or "", redis_class=SentinelClient,
                                        **_master_kwargs(target, options))
    return client


def connect_sync(target: Target, options: dict[str, Any]) -> Any:
    """The blocking twin of :func:`connect` (``enqueue_sync``)."""
    sentinel = SyncSentinel(list(target.nodes),  # type: ignore[no-untyped-call]
                            sentinel_kwargs=_sentinel_kwargs(target, options))
    return sentinel.master_for(  # type: ignore[no-untyped-call]
        target.service or "", redis_class=SyncSentinelClient,
                               **_master_kwargs(target, options))
