"""Sharded pub/sub on a Redis Cluster (Redis 7.0+): each channel SSUBSCRIBEd on the primary that
owns its slot, and kept subscribed there while slots move.

A shard channel lives in one slot, like a key (a queue's events channel shares the queue's
hash tag); SPUBLISH reaches only the nodes serving that slot, not the whole Cluster. So a
:class:`ShardSubscriber` holds one connection per primary that owns one of its channels,
SSUBSCRIBEs there (one channel per command: several would have to share a slot) and reads the
``smessage`` pushes. A channel is handed to its slot's owner again, after a reload of the slot
map, when

- the node answers its SSUBSCRIBE with an error (``-MOVED``: the map was stale);
- the node pushes ``sunsubscribe`` for it (Redis does when the slot moves away: a failover, a
  resharding);
- the connection breaks, or stays silent through three PINGs (a node killed or cut off).

Messages published while a channel is between two nodes are lost: a waiter's slow re-check of
the task's status (:meth:`taskq.queue.TaskQueue.wait`) is the safety net. redis-py's asyncio
PubSub has no SSUBSCRIBE, hence this module.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from taskq.cancelling import cancel_and_wait

log = logging.getLogger(__name__)

CONFIRM_S = 1.0
"""How long :meth:`ShardSubscriber.subscribe` waits for the node's confirmation; past that (a
node being replaced) the caller goes on, its re-check covering what it misses."""

PING_S = 5.0
"""A connection silent this long gets a PING; silent for three of these, it is dropped."""

CLOSE_S = 2.0

Deliver = Callable[[str, Any], None]
"""Called with (channel, message data) for each message, in the reading task."""

WARN_EVERY_S = 60.0
"""A failure that repeats (a node down for a while) is a warning at most this often, per
kind and node; the repeats in between are logged at debug level."""

_PING = ""  # in a link's queue of commands sent: a PING's reply (no channel is named "")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ShardSubscriber:
    """SSUBSCRIBE channels on the primaries of their slots (see the module).

    ``client`` is used only for its slot map, which is reloaded whenever a channel has to move;
    it is closed with the subscriber (give it a client of its own:
    :func:`taskq.cluster.routing_client`)."""

    def __init__(self, client: RedisCluster, deliver: Deliver) -> None:
        self._client = client
        self._deliver = deliver
        self._links: dict[str, _Link] = {}
        self._subscribed: dict[str, asyncio.Event] = {}  # every channel; set while confirmed
        self._homeless: set[str] = set()  # channels to (re)subscribe on their slot's owner
        self._wake = asyncio.Event()
        self._placer: asyncio.Task[None] | None = None
        self._stale = False  # something moved: reload the slot map after a pause
        self._loaded = False  # the slot map was loaded once
        self._delay = 0.05
        self._closed = False
        self._warned: dict[str, float] = {}  # (see WARN_EVERY_S)
        self.moves = 0
        """How many times a channel had to be subscribed again on another node (or the same
        node after a lost connection)."""

    @property
    def channels(self) -> frozenset[str]:
        return frozenset(self._subscribed)

    def confirmed(self, channel: str) -> bool:
        """Whether ``channel``'s node has confirmed its subscription (and not dropped it)."""
        event = self._subscribed.get(channel)
        return event is not None and event.is_set()

    async def subscribe(self, channel: str) -> None:
        """Subscribe to ``channel`` (the first call; later ones only wait): returns once its
        node confirmed the subscription, or after ``CONFIRM_S`` anyway."""
        if self._closed:
            raise RuntimeError("the shard subscriber is closed")
        event = self._subscribed.get(channel)
        if event is None:
            event = self._subscribed[channel] = asyncio.Event()
            self._homeless.add(channel)
            self._wake.set()
            if self._placer is None or self._placer.done():
                self._placer = asyncio.create_task(self._place(), name="taskq-shard-events")
        if not event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), CONFIRM_S)

    async def aclose(self) -> None:
        self._closed = True
        tasks = [link.task for link in self._links.values()]
        if self._placer is not None:
            tasks.append(self._placer)
        self._links.clear()
        await cancel_and_wait(tasks, timeout_s=CLOSE_S, what="shard event readers")
        with contextlib.suppress(Exception):
            await self._client.aclose()

    # -- placing channels on nodes -----------------------------------------------------------

    async def _place(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._homeless:
                continue
            if self._stale:  # something moved: wait a little (a failover takes seconds)
                await asyncio.sleep(self._delay)
                self._delay = min(self._delay * 2, 1.0)
                await self._reload()
            elif not self._loaded:
                await self._reload()
            homeless, self._homeless = self._homeless, set()
            for channel in homeless:
                try:
                    node = self._client.nodes_manager.get_node_from_slot(
                        key_slot(channel.encode()))
                except (RedisClusterException, RedisError, IndexError, KeyError):
                    self._lost([channel])  # a slot not covered now: again after a reload
                    continue
                self._link(node).add(channel)

    async def _reload(self) -> None:
        self._stale = False
        try:
            if self._loaded:
                await self._client.nodes_manager.initialize()
            else:
                await self._client.initialize()
            self._loaded = True
        except (RedisError, RedisClusterException, OSError) as exc:
            self._stale = True
            self._warn("reload", "cannot reload the Redis Cluster's slot map: %s", exc)

    def _warn(self, kind: str, message: str, *args: Any) -> None:
        """A warning, or a debug line when one of this ``kind`` was logged in the last
        ``WARN_EVERY_S`` (a node down is retried every second: one line a minute)."""
        now = time.monotonic()
        last = self._warned.get(kind)
        if last is None or now - last >= WARN_EVERY_S:
            self._warned[kind] = now
            log.warning(message, *args)
        else:
            log.debug(message, *args)

    def _link(self, node: ClusterNode) -> _Link:
        link = self._links.get(node.name)
        if link is None:
            link = self._links[node.name] = _Link(self, node)
        return link

    # -- called by links -----------------------------------------------------------------------

    def _confirmed(self, channel: str) -> None:
        event = self._subscribed.get(channel)
        if event is not None:
            event.set()
            self._delay = 0.05

    def _lost(self, channels: Collection[str]) -> None:
        """``channels`` are no longer subscribed: place them again after a reload."""
        if self._closed or not channels:
            return
        for channel in channels:
            event = self._subscribed.get(channel)
            if event is not None:
                event.clear()
                self._homeless.add(channel)
                self.moves += 1
        self._stale = True
        self._wake.set()

    def _gone(self, link: _Link) -> None:
        if self._links.get(link.name) is link:
            del self._links[link.name]
        self._lost(link.channels)


class _Link:
    """One connection to one primary: SSUBSCRIBEs the channels it is given, reads the pushes,
    and hands channels back to its subscriber when they leave this node."""

    def __init__(self, owner: ShardSubscriber, node: ClusterNode) -> None:
        self.name = node.name
        self.channels: set[str] = set()  # given to this node (confirmed, sent or to send)
        self._owner = owner
        self._node = node
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._sent: collections.deque[str] = collections.deque()  # awaiting their reply
        self.task = asyncio.create_task(self._run(), name=f"taskq-shard-events-{node.name}")

    def add(self, channel: str) -> None:
        self.channels.add(channel)
        self._outbox.put_nowait(channel)

    async def _run(self) -> None:
        conn = self._node.connection_class(**self._node.connection_kwargs)
        parts: list[asyncio.Task[None]] = []
        try:
            await conn.connect()  # type: ignore[no-untyped-call]
            parts = [asyncio.create_task(self._write(conn)), asyncio.create_task(self._read(conn))]
            done, _ = await asyncio.wait(parts, return_when=asyncio.FIRST_COMPLETED)
            for part in done:
                part.result()  # its error, if any (a link with no channels left ends quietly)
        except (RedisError, OSError) as exc:
            if self.channels:
                self._owner._warn(f"lost {self.name}", "shard event subscription on %s lost "
                                  "(%s); subscribing again", self.name, exc)
        finally:
            self._owner._gone(self)  # the channels go elsewhere
            for part in parts:
                part.cancel()
            # (no await before the close: a cancel of this task, repeated by the subscriber's
            # close, would skip it; disconnect(nowait=True) does not suspend)
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)

    async def _write(self, conn: Any) -> None:
        while True:
            channel = await self._outbox.get()
            self._sent.append(channel)
            if channel == _PING:
                await conn.send_command("PING")
            else:
                await conn.send_command("SSUBSCRIBE", channel)

    async def _read(self, conn: Any) -> None:
        silent = 0
        while True:
            try:
                reply = await conn.read_response(timeout=PING_S, disconnect_on_error=False)
            except ResponseError as exc:  # the reply to the oldest command sent
                self._refused(exc)
            else:
                if reply is None:
                    silent += 1
                    if silent > 3:
                        raise ConnectionError(f"no reply to PING in {3 * PING_S:.0f} s")
                    self._outbox.put_nowait(_PING)
                    continue
                self._handle(reply)
            silent = 0
            if not self.channels and self._outbox.empty():
                return  # nothing of ours lives here any more (all moved away)

    def _handle(self, reply: Any) -> None:
        if not isinstance(reply, list) or not reply:
            return
        kind = _text(reply[0]).lower()
        if kind == "smessage" and len(reply) == 3:
            self._owner._deliver(_text(reply[1]), reply[2])
        elif kind == "ssubscribe":
            self._answered()
            channel = _text(reply[1])
            if channel in self.channels:
                self._owner._confirmed(channel)
        elif kind == "sunsubscribe":  # the server's own: the slot moved away from this node
            channel = _text(reply[1])
            if channel in self.channels:
                self.channels.discard(channel)
                self._owner._lost([channel])
        elif kind == "pong":
            self._answered()

    def _answered(self) -> str | None:
        return self._sent.popleft() if self._sent else None

    def _refused(self, exc: ResponseError) -> None:
        channel = self._answered()
        if channel is None or channel == _PING:
            self._owner._warn(f"refused {self.name}", "Redis node %s: %s", self.name, exc)
            return
        log.info("SSUBSCRIBE %s on %s refused (%s); asking the slot map again",
                 channel, self.name, exc)
        self.channels.discard(channel)
        self._owner._lost([channel])
