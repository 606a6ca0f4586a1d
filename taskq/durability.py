"""The opt-in write guarantee: ``TaskQueue(..., min_replicas=N)``.

Redis replicates asynchronously: a write the master acknowledged can be lost when a replica
that never received it is promoted (a Sentinel or Cluster failover). With ``min_replicas=N``
every enqueue is followed by ``WAIT N timeout`` on the connection that wrote it, and succeeds
only when at least N replicas have it; otherwise it raises :class:`~taskq.errors.NotReplicated`
(the task *is* queued on the master and will run unless a failover loses it: the producer
decides whether to retry, which may run it twice). Completions are confirmed the same way, so
that a failover cannot bring finished work back; a completion that is not confirmed is logged
and counted, not retried (at worst the task runs again).

What WAIT does not promise (redis.io): the write may still be lost in some failovers (a
replica that has it is not the one promoted), and a failed WAIT does not undo the write. Costs:
one more command per enqueue call (and per completed batch), and the time the replicas take to
acknowledge (the connection waits meanwhile). Commands on one queue share one connection, so
WAIT covers every write sent before it on that connection.

``wait_aof=True`` (opt-in, with ``min_replicas``) asks for more than "the replicas received
it": on Redis 7.2+ the confirmation is ``WAITAOF numlocal N timeout``, which returns once the
write is fsynced to the append-only file of the master (``numlocal`` 1, when the master has
``appendonly yes``; 0 otherwise) and of N replicas (a replica without AOF never counts). It is
not the default because it changes what ``min_replicas`` counts (replicas without AOF stop
counting) and waits for disks. On Redis older than 7.2, which has no WAITAOF, it falls back to
WAIT with one warning. Which command a connection uses is read from ``INFO`` once per lane
(or blocking client) and node, and read again when Redis refuses WAITAOF (after a failover to
a server without AOF).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskq.cluster import ClusterLane, is_cluster
from taskq.errors import NotReplicated, RedisCommandError
from taskq.lane import Commands

log = logging.getLogger(__name__)

WAITAOF_SINCE = (7, 2)
"""The first Redis version with ``WAITAOF``."""


@dataclass(frozen=True, slots=True)
class WaitPlan:
    """How one node confirms writes: ``WAIT`` (``local`` None) or ``WAITAOF local``."""

    local: int | None = None

    def command(self, replicas: int, timeout_ms: int) -> tuple[Any, ...]:
        if self.local is None:
            return ("WAIT", replicas, timeout_ms)
        return ("WAITAOF", self.local, replicas, timeout_ms)

    def confirmed(self, reply: Any) -> int:
        """How many replicas confirmed (0 when WAITAOF's local fsync did not happen in time)."""
        if self.local is None:
            return int(reply)
        local, replicas = (int(v) for v in reply)
        return replicas if local >= self.local else 0


WAIT = WaitPlan()


def plan(info: Mapping[str, Any], aof: bool) -> WaitPlan:
    """The confirmation a node whose ``INFO`` (server and persistence sections) is ``info``
    gets: WAITAOF on 7.2+ when ``aof`` is asked for, else WAIT (see the module)."""
    if not aof:
        return WAIT
    version = tuple(int(p) for p in str(info.get("redis_version", "0")).split(".")[:2])
    if version < WAITAOF_SINCE:
        _warn_once(str(info.get("redis_version")))
        return WAIT
    return WaitPlan(local=1 if str(info.get("aof_enabled", "0")) == "1" else 0)


_warned: set[str] = set()


def _warn_once(version: str) -> None:
    if version not in _warned:
        _warned.add(version)
        log.warning("wait_aof: Redis %s has no WAITAOF (7.2+): writes are confirmed with WAIT "
                    "(the replicas received them; not that they reached a disk)", version)


def parse_info(text: Any) -> dict[str, str]:
    """The ``name:value`` lines of a raw ``INFO`` reply."""
    raw = text.decode() if isinstance(text, bytes) else str(text)
    return dict(line.split(":", 1) for line in raw.splitlines() if ":" in line
                and not line.startswith("#"))


_plans: weakref.WeakKeyDictionary[Any, dict[str, WaitPlan]] = weakref.WeakKeyDictionary()
"""Per lane or blocking client: the plan of each node (``""``: the one node)."""


async def _lane_plan(lane: Commands, key: str, aof: bool) -> WaitPlan:
    if not aof:
        return WAIT
    node = (await lane.node_of(key)).name if isinstance(lane, ClusterLane) else ""
    known = _plans.setdefault(lane, {})
    if node not in known:
        info: dict[str, str] = {}
        for section in ("server", "persistence"):
            info.update(parse_info(await _execute(lane, key, "INFO", section)))
        known[node] = plan(info, aof)
    return known[node]


async def _execute(lane: Commands, key: str, *args: Any) -> Any:
    if isinstance(lane, ClusterLane):
        return await lane.execute_at(key, *args)
    return await lane.execute(*args)


async def replicated(lane: Commands, key: str, replicas: int, timeout_ms: int,
                     aof: bool = False) -> int:
    """``WAIT replicas timeout_ms`` (or ``WAITAOF``, see the module) on the connection of
    ``lane`` that writes ``key``: how many replicas confirmed every write sent on it before."""
    chosen = await _lane_plan(lane, key, aof)
    try:
        return chosen.confirmed(await _execute(lane, key, *chosen.command(replicas, timeout_ms)))
    except RedisCommandError:
        if chosen.local is None:
            raise
        _plans.pop(lane, None)  # the node changed (a failover): read its INFO again, once
        chosen = await _lane_plan(lane, key, aof)
        return chosen.confirmed(await _execute(lane, key, *chosen.command(replicas, timeout_ms)))


async def confirm(lane: Commands, key: str, replicas: int, timeout_ms: int, what: str,
                  aof: bool = False) -> None:
    """Raise :class:`NotReplicated` unless ``replicas`` replicas have the writes on ``key``."""
    got = await replicated(lane, key, replicas, timeout_ms, aof)
    if got < replicas:
        raise NotReplicated(what, got, replicas, timeout_ms)


def _sync_plan(client: Any, node: Any, aof: bool) -> WaitPlan:
    if not aof:
        return WAIT
    name = node.name if node is not None else ""
    known = _plans.setdefault(client, {})
    if name not in known:
        target = {"target_nodes": node} if node is not None else {}
        info: dict[str, Any] = {}
        for section in ("server", "persistence"):
            info.update(client.info(section, **target))
        known[name] = plan(info, aof)
    return known[name]


def _sync_confirmed(client: Any, node: Any, replicas: int, timeout_ms: int, aof: bool) -> int:
    target = {"target_nodes": node} if node is not None else {}
    chosen = _sync_plan(client, node, aof)
    try:
        reply = client.execute_command(*chosen.command(replicas, timeout_ms), **target)
    except RedisCommandError:
        if chosen.local is None:
            raise
        _plans.pop(client, None)
        chosen = _sync_plan(client, node, aof)
        reply = client.execute_command(*chosen.command(replicas, timeout_ms), **target)
    return chosen.confirmed(reply)


def confirm_sync(client: Any, keys: Sequence[str], replicas: int, timeout_ms: int,
                 what: str, aof: bool = False) -> None:
    """:func:`confirm` for a blocking client (``enqueue_sync``): WAIT on the node of each of
    ``keys`` (one thread's blocking client writes and waits on one connection per node)."""
    if is_cluster(client):
        nodes = {n.name: n for n in (client.get_node_from_key(k) for k in keys)}
        got = min(_sync_confirmed(client, n, replicas, timeout_ms, aof)
                  for n in nodes.values())
    else:
        got = _sync_confirmed(client, None, replicas, timeout_ms, aof)
    if got < replicas:
        raise NotReplicated(what, got, replicas, timeout_ms)
