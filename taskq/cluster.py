"""Redis Cluster (``redis+cluster://`` URLs): the client, and the lane routed by slot.

Every key of a queue shares one hash tag (:mod:`taskq.keys`), so each queue lives in one slot
on one primary, and every script of a queue runs there. What changes on a Cluster:

- the client is redis-py's :class:`~redis.asyncio.cluster.RedisCluster` (it follows MOVED and
  ASK, and reloads its slot map), raising taskq errors as :class:`taskq.connection.Client` does;
- the auto-pipelined lane (:mod:`taskq.lane`) becomes one lane per primary:
  :class:`ClusterLane` routes each command by its key's slot, follows MOVED (reloading the
  slot map), retries TRYAGAIN, CLUSTERDOWN and a node that cannot be reached with backoff for
  up to ``FAILOVER_S`` (a replica's promotion), and loads a script on the node that lacks it;
- a worker reads each queue separately (a read of several streams in different slots is refused
  with CROSSSLOT): :mod:`taskq.worker.reader` runs one read loop per queue;
- task events use sharded pub/sub when every primary is Redis 7.0+ (:func:`sharded_events`):
  scripts SPUBLISH on the queue's events channel (in the queue's slot), waiters SSUBSCRIBE on
  the primary of that slot (:mod:`taskq.shardsub`); on older nodes classic pub/sub (PUBLISH in
  a script reaches every node of a Cluster), waiters subscribing on one primary
  (:func:`event_client`);
- the server check (:func:`taskq.connection.check_server`) reads ``INFO`` of every primary.

None of this runs for a ``redis://`` URL: the single-Redis path is the one it always was.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, NoReturn

from redis.asyncio import ConnectionPool
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.cluster import ClusterNode as SyncClusterNode
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.crc import key_slot
from redis.exceptions import MovedError, RedisClusterException, RedisError

from taskq.connection import Client, socket_options, translate
from taskq.errors import ConfigError, RedisNotReady, RedisTimeout, RedisUnavailable
from taskq.lane import Lane
from taskq.urls import Target, parse, redact

log = logging.getLogger(__name__)

FAILOVER_S = 20.0
"""How long a command is retried through a Cluster's failover (a primary's replica is promoted
after ``cluster-node-timeout``, 15 s by default) before its error reaches the caller."""

def _where(url: str) -> str:
    return redact(url)


def _raise(exc: BaseException, url: str, command: Any = ()) -> NoReturn:
    error = translate(exc, where=_where(url), command=command)
    if error is exc:
        raise exc
    raise error from exc


_RAISED = (RedisError, OSError, RedisClusterException)


def _forget_lost_node(client: Any) -> None:
    """Undo redis-py 6.4's slip: its Cluster transaction stores a lost connection's error as
    the client's "moved" redirection, and every later command then fails in
    ``_update_moved_slots`` (``'ConnectionError' object has no attribute 'host'``) until the
    slot map is reloaded. Forgotten here: the next command finds the slot's node (or MOVED)."""
    manager = getattr(client, "nodes_manager", None)
    moved = getattr(manager, "_moved_exception", None)
    if moved is not None and not isinstance(moved, MovedError):
        manager._moved_exception = None  # type: ignore[union-attr]


def _raise_redis_py_bug(exc: AttributeError, client: Any, url: str) -> NoReturn:
    """redis-py 6.4 fails with ``AttributeError: 'ConnectionError' object has no attribute
    'host'`` (its ``_update_moved_slots``) when a node is lost during a failover: that is a
    Cluster unavailable for now, retried like the others (:func:`_forget_lost_node`). An
    AttributeError raised elsewhere (not inside redis-py) is a bug, and stays one."""
    _forget_lost_node(client)
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None or f"{os.sep}redis{os.sep}" not in tb.tb_frame.f_code.co_filename:
        raise exc
    raise RedisNotReady(f"Redis Cluster at {_where(url)} is failing over (redis-py lost the "
                        f"node while following a redirection: {exc})",
                        code="CLUSTERDOWN") from exc


class ClusterClient(RedisCluster):
    """redis-py's asyncio Cluster client, raising taskq errors (see :mod:`taskq.connection`)."""

    taskq_url: str = ""
    taskq_sharded: bool | None = None
    """Whether task events use sharded pub/sub (:func:`sharded_events`; None: not known yet)."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except _RAISED as exc:
            _raise(exc, self.taskq_url, args)
        except AttributeError as exc:
            _raise_redis_py_bug(exc, self, self.taskq_url)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        pipe = _ClusterPipeline(self, transaction)
        return pipe


class _ClusterPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True,
                      allow_redirections: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except _RAISED as exc:
            _forget_lost_node(self.cluster_client)
            _raise(exc, getattr(self.cluster_client, "taskq_url", ""))
        except AttributeError as exc:
            _raise_redis_py_bug(exc, self.cluster_client,
                                getattr(self.cluster_client, "taskq_url", ""))


class SyncClusterClient(SyncRedisCluster):
    """redis-py's blocking Cluster client, raising taskq errors (``enqueue_sync``)."""

    taskq_url: str = ""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute_command(*args, **kwargs)  # type: ignore[no-untyped-call]
        except _RAISED as exc:
            _raise(exc, self.taskq_url, args)
        except AttributeError as exc:
            _raise_redis_py_bug(exc, self, self.taskq_url)


def _kwargs(target: Target, options: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "username": target.username, "password": target.password, "ssl": target.tls,
        **target.ssl_kwargs(), "require_full_coverage": True,
        **{k: v for k, v in options.items() if k != "health_check_interval"},
    }
    return kwargs


def connect(target: Target, options: dict[str, Any]) -> ClusterClient:
    """An asyncio Cluster client for ``target`` (a ``redis+cluster://`` URL), not yet
    connected (its first command discovers the Cluster from the seed nodes)."""
    try:
        client = ClusterClient(startup_nodes=[ClusterNode(h, p) for h, p in target.nodes],
                               **_kwargs(target, options))
    except RedisClusterException as exc:
        raise ConfigError(f"Redis Cluster URL {redact(target.url)!r}: {exc}") from None
    client.taskq_url = target.url
    return client


def connect_sync(target: Target, options: dict[str, Any]) -> SyncClusterClient:
    """The blocking twin of :func:`connect` (it connects to a seed node at once)."""
    try:
        client = SyncClusterClient(
            startup_nodes=[SyncClusterNode(h, p)  # type: ignore[no-untyped-call]
                           for h, p in target.nodes],
            **_kwargs(target, options))
    except _RAISED as exc:
        _raise(exc, target.url)
    client.taskq_url = target.url
    return client


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster | SyncRedisCluster)


async def primaries(client: RedisCluster) -> list[ClusterNode]:
    """The Cluster's primaries (discovering the Cluster first if need be)."""
    await _initialized(client)
    return list(client.get_primaries())


async def _initialized(client: RedisCluster) -> None:
    try:
        await client.initialize()
    except _RAISED as exc:
        _raise(exc, getattr(client, "taskq_url", ""))


def _key_of(args: tuple[Any, ...]) -> Any:
    """The key that decides where a command goes (its first key), or None (keyless)."""
    name = args[0].upper() if isinstance(args[0], str) else args[0].decode().upper()
    if name in ("EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO", "FCALL"):
        return args[3] if int(args[2]) > 0 else None
    if name in ("XREADGROUP", "XREAD"):
        words = [a.upper() if isinstance(a, str) else a for a in args]
        return args[words.index("STREAMS") + 1]
    if name in ("SCRIPT", "PING", "TIME", "INFO", "WAIT"):
        return None
    return args[1]


def _slot(key: Any) -> int:
    return key_slot(key.encode() if isinstance(key, str) else key)


class ClusterLane:
    """The lane of :mod:`taskq.lane` on a Cluster: one :class:`~taskq.lane.Lane` per primary,
    each command sent to the primary of its key's slot (see the module for the retries)."""

    def __init__(self, client: RedisCluster, blocking_s: float = 0.0) -> None:
        # The slot map comes from a client of the lane's own, closed with the lane: a lane can
        # outlive the client it was made from (an API's lifespan closes the TaskQueue a worker
        # in the same process still reads from), and redis-py reconnects a closed Cluster
        # client on its next use, which then nobody closes ("Unclosed RedisCluster client").
        self._client: RedisCluster = routing_client(client)
        self._blocking_s = blocking_s
        self._lanes: dict[str, Lane] = {}
        self._refreshing = asyncio.Lock()
        self._refreshed_at = 0.0
        self._closed = False

    def lane_for(self, node: ClusterNode) -> Lane:
        lane = self._lanes.get(node.name)
        if lane is None:
            lane = self._lanes[node.name] = Lane.on_pool(node, self._blocking_s)
        return lane

    async def node_of(self, key: Any) -> ClusterNode:
        """The primary that serves ``key``'s slot now."""
        await self._open()
        return self._client.nodes_manager.get_node_from_slot(_slot(key))

    async def _open(self) -> None:
        # A command still in flight when the lane was closed (a worker's, when an API's
        # lifespan closed the TaskQueue it shares) fails like a lost connection: reloading the
        # slot map would reopen the closed routing client, which nobody would close again.
        if self._closed:
            raise RedisUnavailable("this Redis Cluster lane was closed")
        await _initialized(self._client)

    async def execute(self, *args: Any) -> Any:
        return await self.execute_at(_key_of(args), *args)

    async def execute_at(self, key: Any, *args: Any) -> Any:
        """Run ``args`` on the primary of ``key``'s slot (None: a keyless command), on the same
        connection as every other command on that slot (``WAIT`` after a write)."""
        if key is None:  # keyless: SCRIPT LOAD goes to every primary, the rest to any one
            await self._open()
            nodes = list(self._client.get_primaries())
            if args[0] == "SCRIPT":
                replies = [await self.lane_for(n).execute(*args) for n in nodes]
                return replies[0]
            return await self.lane_for(nodes[0]).execute(*args)
        deadline = time.monotonic() + FAILOVER_S
        delay = 0.05
        while True:
            node = await self.node_of(key)
            try:
                return await self.lane_for(node).execute(*args)
            except RedisNotReady as exc:  # not run: MOVED, TRYAGAIN, CLUSTERDOWN, ...
                if time.monotonic() > deadline:
                    raise
                if exc.code in ("MOVED", "CLUSTERDOWN", "READONLY", "UNBLOCKED"):
                    await self.refresh()
                    if exc.code == "MOVED":
                        continue
            except RedisUnavailable:
                # the command was not sent, or its connection broke before the reply: a
                # primary that is gone is replaced by its replica after the node timeout
                if time.monotonic() > deadline:
                    raise
                await self.refresh()
                if (await self.node_of(key)).name != node.name:
                    continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def refresh(self) -> None:
        """Reload the slot map (at most every 0.2 s, however many callers ask)."""
        async with self._refreshing:
            if self._closed or time.monotonic() - self._refreshed_at < 0.2:
                return
            try:
                await self._client.nodes_manager.initialize()
            except (RedisError, OSError) as exc:
                log.warning("cannot reload the Redis Cluster's slot map: %s", exc)
            self._refreshed_at = time.monotonic()

    async def aclose(self) -> None:
        self._closed = True
        lanes, self._lanes = list(self._lanes.values()), {}
        for lane in lanes:
            await lane.aclose()
        await self._client.aclose()


def routing_client(client: RedisCluster) -> RedisCluster:
    """A new client of ``client``'s Cluster (same URL and socket timeout), not yet connected;
    a lane (and a shard subscriber) uses it only to learn and reload the slot map."""
    url = getattr(client, "taskq_url", "")
    if not url:  # not made by :func:`connect`: share it (its owner closes it)
        return client
    timeout = client.nodes_manager.connection_kwargs.get("socket_timeout") or 5.0
    return connect(parse(url), socket_options(url, float(timeout)))


SHARDED_SINCE = (7, 0)
"""The Redis version of SPUBLISH and SSUBSCRIBE."""


async def sharded_events(client: Any) -> bool:
    """Whether task events on ``client``'s Redis use sharded pub/sub: on a Cluster whose every
    primary is Redis 7.0+ (of those that answer: one that is down does not decide), asked once
    per client (the workers and the waiters of one Cluster
    decide alike). A single Redis or Sentinel: never (classic pub/sub, Redis 6.2 too)."""
    if not is_cluster(client):
        return False
    known: bool | None = getattr(client, "taskq_sharded", None)
    if known is None:
        # Decided by the primaries that answer: one that is down (being failed over) must not
        # fail every waiter, on every queue. Not remembered then: asked again next time.
        versions: list[tuple[int, ...]] = []
        down: RedisUnavailable | RedisTimeout | None = None
        for node in await primaries(client):
            try:
                info = await client.info("server", target_nodes=node)
            except (RedisUnavailable, RedisTimeout) as exc:
                down = exc
                continue
            versions.append(tuple(int(p) for p in
                                  str(info.get("redis_version", "0")).split(".")[:2]))
        if not versions:
            assert down is not None
            raise down
        sharded = all(v >= SHARDED_SINCE for v in versions)
        if down is None:
            client.taskq_sharded = sharded
        return sharded
    return known


async def event_client(client: RedisCluster) -> Client:
    """A plain client on one primary, for classic subscriptions (PUBLISH reaches every node)."""
    node = (await primaries(client))[0]
    return Client(connection_pool=ConnectionPool(connection_class=node.connection_class,
                                                 **node.connection_kwargs))
