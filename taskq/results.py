"""Waiting for task ends without polling: one pub/sub subscription per TaskQueue.

Workers publish ``[[task id, status, ...], ...]`` (JSON) on a queue's events channel when tasks
end (in the same script that stores their records) and when they report progress. Waiters
subscribe before they read the task's status, so an end between the two is never missed; a
slow re-check covers a dropped subscription.

On a Redis Cluster of 7.0+ nodes the events are sharded (SPUBLISH, see
:func:`taskq.cluster.sharded_events`): the hub subscribes through a
:class:`~taskq.shardsub.ShardSubscriber`, on the primary of each queue's slot. Elsewhere it is
classic pub/sub on one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from taskq import cluster
from taskq.cancelling import cancel_and_wait
from taskq.shardsub import ShardSubscriber

log = logging.getLogger(__name__)

CLOSE_S = 2.0

Listener = Callable[[str, list[Any]], None]


class EventHub:
    """Fans queue events out to in-process listeners."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._channels: set[str] = set()
        self._listeners: dict[str, set[Listener]] = defaultdict(set)
        self._lock = asyncio.Lock()
        self._node_client: Redis | None = None
        self._shards: ShardSubscriber | None = None
        self.received = 0
        """How many event messages arrived (each a list of events)."""

    @property
    def shards(self) -> ShardSubscriber | None:
        """The sharded subscriber (a Cluster of 7.0+ nodes, once something subscribed), or None
        (classic pub/sub)."""
        return self._shards

    async def subscribe(self, channel: str, listener: Listener) -> None:
        """Call ``listener`` for each event on ``channel`` from now on: once this returns, the
        subscription is in place (on a Cluster being failed over, it may still be moving)."""
        async with self._lock:
            self._listeners[channel].add(listener)
            if self._shards is None and self._pubsub is None:
                if await cluster.sharded_events(self._client):
                    self._shards = ShardSubscriber(
                        cluster.routing_client(self._client),  # type: ignore[arg-type]
                        self._dispatch)
                else:
                    self._pubsub = (await self._subscriber()).pubsub(
                        ignore_subscribe_messages=True)
            shards = self._shards
            if shards is None:
                assert self._pubsub is not None
                if channel not in self._channels:
                    await self._pubsub.subscribe(channel)
                    self._channels.add(channel)
                if self._reader is None or self._reader.done():
                    self._reader = asyncio.create_task(self._read(), name="taskq-events")
        if shards is not None:  # outside the lock: it may wait for a node's confirmation
            await shards.subscribe(channel)

    async def _subscriber(self) -> Redis:
        """The client to subscribe with: the queue's own, or on a Cluster (whose client has no
        pub/sub) a client of one primary: a script's PUBLISH reaches every node."""
        if not cluster.is_cluster(self._client):
            return self._client
        if self._node_client is None:
            self._node_client = await cluster.event_client(self._client)  # type: ignore[arg-type]
        return self._node_client

    def unsubscribe(self, channel: str, listener: Listener) -> None:
        self._listeners[channel].discard(listener)

    async def _read(self) -> None:
        while True:
            pubsub = self._pubsub
            if pubsub is None:
                return
            try:
                msg = await pubsub.get_message(timeout=5.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost: resubscribe and go on
                log.warning("event subscription lost (%s); resubscribing", type(exc).__name__)
                await asyncio.sleep(0.5)
                with contextlib.suppress(Exception):
                    await pubsub.reset()
                    if self._channels:
                        await pubsub.subscribe(*self._channels)
                continue
            if msg is None or msg.get("type") != "message":
                continue
            channel = msg["channel"]
            self._dispatch(channel.decode() if isinstance(channel, bytes) else channel,
                           msg["data"])

    def _dispatch(self, channel: str, data: Any) -> None:
        """Hand one message (a JSON list of events) to the channel's listeners."""
        self.received += 1
        try:
            events = json.loads(data)
        except ValueError:
            return
        if not isinstance(events, list):
            return
        for listener in list(self._listeners.get(channel, ())):
            for event in events:
                if isinstance(event, list) and event:
                    listener(str(event[0]), event)

    async def close(self) -> None:
        if self._shards is not None:
            shards, self._shards = self._shards, None
            await shards.aclose()
        pubsub, self._pubsub = self._pubsub, None  # the reader returns at its next pass
        if self._reader is not None:
            reader, self._reader = self._reader, None
            # a cancel can be swallowed inside redis-py: cancelled again until it ends
            await cancel_and_wait([reader], timeout_s=CLOSE_S, what="event reader")
            if reader.done() and not reader.cancelled():
                reader.exception()  # retrieved (it logged its errors)
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        if self._node_client is not None:
            node_client, self._node_client = self._node_client, None
            with contextlib.suppress(Exception):
                await node_client.aclose()
        self._channels.clear()
