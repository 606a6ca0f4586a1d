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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskq.cluster import ClusterLane, is_cluster
from taskq.errors import NotReplicated
from taskq.lane import Commands


async def replicated(lane: Commands, key: str, replicas: int, timeout_ms: int) -> int:
    """``WAIT replicas timeout_ms`` on the connection of ``lane`` that writes ``key``: how many
    replicas acknowledged every write sent on it before."""
    if isinstance(lane, ClusterLane):
        return int(await lane.execute_at(key, "WAIT", replicas, timeout_ms))
    return int(await lane.execute("WAIT", replicas, timeout_ms))


async def confirm(lane: Commands, key: str, replicas: int, timeout_ms: int, what: str) -> None:
    """Raise :class:`NotReplicated` unless ``replicas`` replicas have the writes on ``key``."""
    got = await replicated(lane, key, replicas, timeout_ms)
    if got < replicas:
        raise NotReplicated(what, got, replicas, timeout_ms)


def confirm_sync(client: Any, keys: Sequence[str], replicas: int, timeout_ms: int,
                 what: str) -> None:
    """:func:`confirm` for a blocking client (``enqueue_sync``): WAIT on the node of each of
    ``keys`` (one thread's blocking client writes and waits on one connection per node)."""
    if is_cluster(client):
        nodes = {n.name: n for n in (client.get_node_from_key(k) for k in keys)}
        got = min(int(client.execute_command("WAIT", replicas, timeout_ms, target_nodes=n))
                  for n in nodes.values())
    else:
        got = int(client.execute_command("WAIT", replicas, timeout_ms))
    if got < replicas:
        raise NotReplicated(what, got, replicas, timeout_ms)
