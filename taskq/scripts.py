"""The Lua scripts (one file per atomic operation in ``taskq/lua``) and their typed wrappers.

Scripts are registered with ``register_script``: each is called by SHA and reloads itself after
a ``NOSCRIPT`` (a restarted or flushed Redis). ``lua/_lib.lua`` is prepended to every script.
Every key a script touches is passed in KEYS; all of them belong to one queue's hash tag.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Protocol

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.commands.core import AsyncScript, Script
from redis.exceptions import ResponseError

from taskq.keys import GROUP, QueueKeys
from taskq.lane import Lane

log = logging.getLogger(__name__)

NAMES = (
    "cancel",
    "complete",
    "dead",
    "enqueue",
    "forget_consumer",
    "probe",
    "promote",
    "purge",
    "reclaim",
    "release",
    "renew",
    "replay",
    "retry",
    "schedule",
)


@cache
def source(name: str) -> str:
    """The full text of script ``name`` (prelude included)."""
    lua = resources.files("taskq") / "lua"
    return (lua / "_lib.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Completable(Protocol):
    """What the complete script needs of one owned entry (the worker's deliveries have it)."""

    @property
    def entry_id(self) -> str: ...
    @property
    def deliveries(self) -> int: ...
    @property
    def bucket_key(self) -> str: ...
    @property
    def task_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def record(self) -> bytes: ...
    @property
    def flags(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Completion:
    """One owned entry to finish in a batch (a plain :class:`Completable`)."""

    entry_id: str
    deliveries: int
    bucket_key: str
    task_id: str
    status: str
    record: bytes
    flags: str = ""


@dataclass(frozen=True, slots=True)
class Reclaimed:
    entry_id: str
    payload: bytes
    deliveries: int


def _enqueued(r: list[Any]) -> tuple[list[str] | None, int]:
    if int(r[0]) == 0:
        return None, int(r[1])
    return [x.decode() if type(x) is bytes else x for x in r[2:]], int(r[1])


class Scripts:
    """Typed wrappers over the scripts, bound to one asyncio client. With a ``lane`` (see
    :mod:`taskq.lane`) the calls go through it: packed by hiredis, auto-pipelined."""

    def __init__(self, client: Redis, lane: Lane | None = None) -> None:
        self.client = client
        self._lane = lane
        self._s: dict[str, AsyncScript] = {n: client.register_script(source(n)) for n in NAMES}

    async def load(self) -> None:
        """Load every script now (readiness checks; later calls then never miss)."""
        for name, script in self._s.items():
            sha = await self.client.script_load(source(name))
            script.sha = sha

    async def _call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        lane = self._lane
        if lane is None:
            return await self._s[name](keys=list(keys), args=list(args))
        sha = self._s[name].sha
        try:
            return await lane.execute("EVALSHA", sha, len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        # a restarted or flushed Redis: load the script, then call it again
        await lane.execute("SCRIPT", "LOAD", source(name))
        return await lane.execute("EVALSHA", sha, len(keys), *keys, *args)

    async def enqueue(
        self, keys: QueueKeys, payloads: Sequence[bytes], limit: int
    ) -> tuple[list[str] | None, int]:
        """(entry ids, stream length after), or (None, stream length) when refused."""
        return _enqueued(await self._call("enqueue", [keys.stream], [limit, *payloads]))

    async def schedule(
        self, keys: QueueKeys, items: Sequence[tuple[str, bytes, int]], limit: int
    ) -> list[int] | int:
        """Due times (ms, Redis clock) of delayed messages, or the delayed count when refused."""
        args: list[Any] = [limit]
        for task_id, payload, delay_ms in items:
            args += [task_id, payload, delay_ms]
        r = await self._call("schedule", [keys.delayed, keys.payloads, keys.stream], args)
        if int(r[0]) == 0:
            return int(r[1])
        return [int(x) for x in r[1:]]

    async def probe(self, keys: QueueKeys) -> str | None:
        """The first command producing to ``keys``'s queue needs that this ACL user may not
        run (``"the 'xadd' command on '...'"``), or None; nothing is run."""
        r = await self._call("probe", [keys.stream, keys.delayed, keys.payloads], [])
        return _s(r) if r else None

    async def promote(self, keys: QueueKeys, count: int) -> tuple[int, int]:
        r = await self._call(
            "promote",
            [keys.delayed, keys.payloads, keys.entries, keys.stream, keys.stats],
            [count],
        )
        return int(r[0]), int(r[1])

    async def complete(
        self,
        keys: QueueKeys,
        consumer: str,
        items: Sequence[Completable],
        minute_key: str,
        ttl_ms: int,
        channel: str,
        scan: int,
    ) -> list[str]:
        """Finish owned entries; returns the entry ids whose lease was lost."""
        buckets: dict[str, int] = {}
        meta = "\n".join(
            f"{c.entry_id}\t{c.deliveries}\t{buckets.setdefault(c.bucket_key, len(buckets) + 1)}"
            f"\t{c.task_id}\t{c.status}\t{c.flags}"
            for c in items
        )
        args = [GROUP, consumer, ttl_ms, channel, scan, meta, *(c.record for c in items)]
        key_list = [keys.stream, keys.stats, minute_key, keys.entries, keys.cancels, *buckets]
        r = [_s(x) for x in await self._call("complete", key_list, args)]
        if r and r[-1].startswith("lean:"):
            log.warning("Redis is out of memory: %s task records kept only their status "
                        "(no result, no error) so that finishing work frees memory",
                        r.pop()[5:])
        return r

    async def retry(
        self,
        keys: QueueKeys,
        consumer: str,
        entry_id: str,
        deliveries: int,
        task_id: str,
        payload: bytes,
        delay_ms: int,
        bucket_key: str,
        record: bytes,
        ttl_ms: int,
        channel: str,
    ) -> int:
        """Due time (ms) of the next attempt, or 0 when the lease was lost."""
        r = await self._call(
            "retry",
            [keys.stream, keys.delayed, keys.payloads, keys.entries, bucket_key, keys.stats],
            [GROUP, consumer, entry_id, deliveries, task_id, payload, delay_ms, record, ttl_ms,
             channel],
        )
        return int(r)

    async def dead(
        self,
        keys: QueueKeys,
        consumer: str,
        entry_id: str,
        deliveries: int | None,
        task_id: str,
        bucket_key: str,
        record: bytes,
        ttl_ms: int,
        channel: str,
        dead_cap: int,
        fields: dict[str, str | bytes | int],
    ) -> str | None:
        """The dead letter's id, or None when the lease was lost."""
        flat: list[Any] = []
        for k, v in fields.items():
            flat += [k, v]
        r = await self._call(
            "dead",
            [keys.stream, keys.dead, keys.entries, bucket_key, keys.stats, keys.cancels],
            [GROUP, consumer, entry_id, "" if deliveries is None else deliveries, task_id, record,
             ttl_ms, channel, dead_cap, *flat],
        )
        return None if r == 0 else _s(r)

    async def release(
        self, keys: QueueKeys, consumer: str, entry_id: str, deliveries: int, task_id: str,
        payload: bytes,
    ) -> str | None:
        r = await self._call(
            "release",
            [keys.stream, keys.entries],
            [GROUP, consumer, entry_id, deliveries, task_id, payload],
        )
        return None if r == 0 else _s(r)

    async def renew(self, keys: QueueKeys, consumer: str, entry_ids: Sequence[str]) -> list[str]:
        """Renew leases; returns the held entry ids no longer owned."""
        r = await self._call(
            "renew", [keys.stream], [GROUP, consumer, len(entry_ids) + 64, *entry_ids]
        )
        return [_s(x) for x in r]

    async def reclaim(
        self, keys: QueueKeys, consumer: str, min_idle_ms: int, cursor: str, count: int,
        rounds: int, dead_cap: int,
    ) -> tuple[str, list[Reclaimed], int]:
        r = await self._call(
            "reclaim",
            [keys.stream, keys.dead, keys.stats],
            [GROUP, consumer, min_idle_ms, cursor, count, rounds, keys.queue, dead_cap],
        )
        flat = r[1]
        got = [
            Reclaimed(_s(flat[i]), bytes(flat[i + 1]) if flat[i + 1] else b"", int(flat[i + 2]))
            for i in range(0, len(flat), 3)
        ]
        return _s(r[0]), got, int(r[2])

    async def cancel(
        self, keys: QueueKeys, task_id: str, entry_id: str, bucket_key: str, record: bytes,
        ttl_ms: int, channel: str,
    ) -> str:
        r = await self._call(
            "cancel",
            [keys.stream, keys.delayed, keys.payloads, keys.entries, keys.cancels, bucket_key],
            [GROUP, task_id, entry_id, record, ttl_ms, channel],
        )
        return _s(r)

    async def replay(
        self, keys: QueueKeys, dead_id: str, payload: bytes, task_id: str, bucket_key: str
    ) -> str | None:
        """Move a dead letter back to the stream (its dead record dropped); None if gone."""
        r = await self._call(
            "replay", [keys.dead, keys.stream, keys.entries, bucket_key],
            [dead_id, payload, task_id],
        )
        return _s(r) if r else None

    async def purge(self, keys: QueueKeys, batch: int) -> tuple[int, int]:
        """Remove up to ``batch`` waiting tasks: (from the stream, from the delayed set)."""
        r = await self._call(
            "purge",
            [keys.stream, keys.delayed, keys.payloads, keys.entries, keys.stats],
            [GROUP, batch],
        )
        return int(r[0]), int(r[1])

    async def forget_consumer(self, keys: QueueKeys, consumer: str) -> bool:
        return bool(await self._call("forget_consumer", [keys.stream], [GROUP, consumer]))


class SyncScripts:
    """The producer-side scripts for synchronous code (``enqueue_sync``)."""

    def __init__(self, client: SyncRedis) -> None:
        self._enqueue: Script = client.register_script(source("enqueue"))
        self._schedule: Script = client.register_script(source("schedule"))

    def enqueue(
        self, keys: QueueKeys, payloads: Sequence[bytes], limit: int
    ) -> tuple[list[str] | None, int]:
        return _enqueued(self._enqueue(keys=[keys.stream], args=[limit, *payloads]))

    def schedule(
        self, keys: QueueKeys, items: Sequence[tuple[str, bytes, int]], limit: int
    ) -> list[int] | int:
        args: list[Any] = [limit]
        for task_id, payload, delay_ms in items:
            args += [task_id, payload, delay_ms]
        r = self._schedule(keys=[keys.delayed, keys.payloads, keys.stream], args=args)
        if int(r[0]) == 0:
            return int(r[1])
        return [int(x) for x in r[1:]]
