"""The reader: the XREADGROUP loop that feeds new entries of the worker's queues to the ledger,
within the ledger's read room, surviving Redis failures that pass and vanished consumer groups,
and failing the worker on a refusal that cannot heal (see :class:`Reader`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from taskq import clients, codec, priority
from taskq.cancelling import cancel_and_wait
from taskq.clients import is_cluster
from taskq.connection import FATAL, REDIS_ERRORS, fatal_config_error
from taskq.errors import RedisCommandError, RedisOutOfMemory
from taskq.keys import GROUP
from taskq.lane import Commands
from taskq.queue import TaskQueue
from taskq.worker import readorder
from taskq.worker.context import OnTransition, WorkerContext
from taskq.worker.ledger import Ledger

log = logging.getLogger(__name__)

RETRIED: tuple[type[Exception], ...] = (*REDIS_ERRORS, RedisOutOfMemory)
"""Read failures that pass: a lost connection, a refusal for now (RedisNotReady), no memory."""


class Reader:
    """Reads for one worker (see the module); :meth:`run` until the worker stops.

    On one Redis, one XREADGROUP reads every queue. On a Cluster each queue lives in a slot of
    its own, and a read of several slots is refused (CROSSSLOT): there, one read loop per
    queue runs, each with its share of the read room.

    Errors: a refusal that passes (:class:`~taskq.errors.RedisNotReady`: a failover, a moving
    slot), a lost connection or Redis out of memory are retried with backoff; NOGROUP (the
    stream or group vanished) recreates the groups; any other refusal (CROSSSLOT, WRONGTYPE,
    ...) cannot heal by itself: the reader raises, and the worker stops (it never looks alive
    while reading nothing).
    """

    def __init__(self, app: TaskQueue, context: WorkerContext, ledger: Ledger,
                 on_transition: OnTransition | None = None) -> None:
        self.app = app
        self.id = context.id
        self.config = context.config
        self.keys = context.keys
        self.flags = context.flags
        self.ledger = ledger
        self.on_transition = on_transition

    async def run(self) -> None:
        # The queues read are looked up before every read: the worker finds a queue's priority
        # lanes while it runs (self.keys grows), and a lane first used then must be read too.
        if not is_cluster(self.app.redis):
            await self._run_loop(None, 1)
            return
        # A Cluster: one loop per queue, reading the queue and its lanes (one hash tag, one
        # slot, so one node)
        bases = sorted({priority.base(q) for q in self.keys})
        loops = [asyncio.create_task(self._run_loop(b, len(bases)), name=f"taskq-reader-{b}")
                 for b in bases]
        try:
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()  # a loop that failed fails the reader
        finally:
            await cancel_and_wait(loops, timeout_s=2.0, what="reader loop")

    async def _run_loop(self, base: str | None, share: int) -> None:
        # Reads go over a lane of their own (see taskq.lane): hiredis parses the reply into
        # plain lists, and a blocking read never holds up the scripts on the shared lane.
        lane = clients.lane(self.app.redis, blocking_s=self.config.block_ms / 1000)
        try:
            await self._read_loop(lane, base, share)
        finally:
            await lane.aclose()

    async def _read_loop(self, lane: Commands, base: str | None, share: int) -> None:
        """Read every queue of the worker (``base`` None) or only ``base`` and its lanes."""
        ledger, config, flags = self.ledger, self.config, self.flags
        accept = ledger.accept
        delay = 0.05
        while not ledger.stopping:
            room = await ledger.wait_room()
            if ledger.stopping:
                break
            reading = [q for q in self.keys if q not in flags.paused
                       and (base is None or priority.base(q) == base)]
            if not reading:
                await asyncio.sleep(config.flags_every_ms / 1000)
                continue
            count = min(max(1, room // share), config.batch)
            try:
                if readorder.sequential(reading, config.queue_order):
                    await self._read_in_order(lane, reading, count)
                    delay = 0.05
                    continue
                streams = [self.keys[q].stream for q in reading]
                resp = await lane.execute(
                    "XREADGROUP", "GROUP", GROUP, self.id, "COUNT", count,
                    "BLOCK", config.block_ms, "STREAMS", *streams, *(">",) * len(streams),
                )
                delay = 0.05
            except FATAL as exc:  # retrying cannot fix it: the worker exits (78)
                raise fatal_config_error(exc) or exc from exc
            except RedisCommandError as exc:
                if "NOGROUP" not in str(exc) and "no longer exists" not in str(exc):
                    log.error("read refused by Redis, which cannot heal by itself: %s; the "
                              "worker stops", exc)
                    raise
                log.error("the stream or consumer group of %s vanished (Redis restarted "
                          "without persistence, or the stream was deleted): tasks queued "
                          "before it are gone; recreating consumer groups", ",".join(reading))
                try:
                    await self.app.ensure_groups(reading)
                except RETRIED as again:
                    log.warning("recreating consumer groups failed (%s: %s); retrying",
                                type(again).__name__, again)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            except RETRIED as exc:
                log.warning("read failed (%s: %s); retrying in %.2f s",
                            type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if self.on_transition is not None:
                self.on_transition("after_read")
            for stream, entries in (resp.items() if isinstance(resp, dict) else resp or ()):
                queue = self._queue_of_stream(stream)
                for entry_id, fields in entries:
                    accept(queue, entry_id.decode(), _payload(fields), 1)

    async def _read_in_order(self, lane: Commands, queues: list[str], want: int) -> None:
        """Read stream by stream in the reading order (priority lanes highest first; queues
        by ``queue_order``) without blocking, until ``want`` entries came; when none did, one
        blocking read of them all. Costs a round trip per stream looked at while the first
        ones are empty (per batch, not per task)."""
        config = self.config
        order = readorder.plan(queues, config.queues, config.queue_order)
        ranks = readorder.ranks(queues, config.queues, config.queue_order)
        self.ledger.ranks = ranks
        got = 0
        for q in order:
            resp = await lane.execute("XREADGROUP", "GROUP", GROUP, self.id, "COUNT",
                                      want - got, "STREAMS", self.keys[q].stream, ">")
            got += self._accept(resp, ranks)
            if got >= want:
                break
        if got:
            if self.on_transition is not None:
                self.on_transition("after_read")
            return
        streams = [self.keys[q].stream for q in order]
        resp = await lane.execute(
            "XREADGROUP", "GROUP", GROUP, self.id, "COUNT", want, "BLOCK", config.block_ms,
            "STREAMS", *streams, *(">",) * len(streams))
        if self.on_transition is not None:
            self.on_transition("after_read")
        self._accept(resp, ranks)

    def _accept(self, resp: Any, ranks: dict[str, int]) -> int:
        accept, n = self.ledger.accept, 0
        for stream, entries in (resp.items() if isinstance(resp, dict) else resp or ()):
            queue = self._queue_of_stream(stream)
            rank = ranks.get(queue, 0)
            for entry_id, fields in entries:
                accept(queue, entry_id.decode(), _payload(fields), 1, rank)
                n += 1
        return n

    def _queue_of_stream(self, stream: bytes | str) -> str:
        name = stream.decode() if isinstance(stream, bytes) else stream
        for q, k in self.keys.items():
            if k.stream == name:
                return q
        raise LookupError(name)


def _payload(fields: list[bytes] | None) -> bytes | None:
    """The envelope among an entry's fields (a flat name, value list; taskq writes only it)."""
    if not fields:
        return None
    if fields[0] == codec.FIELD:
        return fields[1] if len(fields) > 1 else None
    for k in range(2, len(fields) - 1, 2):
        if fields[k] == codec.FIELD:
            return fields[k + 1]
    return None
