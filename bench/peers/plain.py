"""The floor: the fastest plain Redis Streams consumer we can write, with no queue on top.

Commands are packed and replies parsed by hiredis on raw asyncio connections (as taskq's lane
does; redis-py's per-command pool and timeout machinery left out). The worker reads ahead: the
next XREADGROUP is in flight while the jobs of the last one run, ``concurrency`` runners take
entries from a hand-off queue, and finished entries are acknowledged in the background, each
batch one XACK + XDEL written together (what finished while the last batch was on the wire).
No records, leases, retries or reclaim: what a queue adds on top of this is its own cost.
The producer sends each XADD on one raw connection (bulk: a batch written at once).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
from typing import Any
from urllib.parse import unquote, urlparse

import hiredis

from bench.peers._common import QUEUE, URL, Producer, job_async

STREAM = f"plain:{QUEUE}"
GROUP = "g"
STOP_WAIT_S = 5.0
ACK_WAIT_S = float(os.environ.get("PLAIN_ACK_WAIT_S", "0.002"))


class ReplyError(Exception):
    """An error reply from Redis."""


class Conn(asyncio.Protocol):
    """One Redis connection: commands written packed, replies handed back in order."""

    def __init__(self) -> None:
        self.parser = hiredis.Reader(replyError=ReplyError)
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport instances

    @classmethod
    async def open(cls, url: str) -> Conn:
        u = urlparse(url)
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(cls, u.hostname or "127.0.0.1", u.port or 6379)
        if u.password:
            await conn.send("AUTH", *([unquote(u.username)] if u.username else []),
                            unquote(u.password))
        db = (u.path or "/0").strip("/") or "0"
        if db != "0":
            await conn.send("SELECT", db)
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        while (reply := self.parser.gets()) is not False:
            fut = self.waiting.popleft()
            if isinstance(reply, ReplyError):
                fut.set_exception(reply)
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(ConnectionError(f"connection to Redis lost: {exc}"))

    def send(self, *args: Any) -> asyncio.Future[Any]:
        return self.send_many([args])[0]

    def send_many(self, commands: list[tuple[Any, ...]]) -> list[asyncio.Future[Any]]:
        """Write every command at once; a future per reply."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        futs = [loop.create_future() for _ in commands]
        self.waiting.extend(futs)
        self.transport.write(b"".join(hiredis.pack_command(c) for c in commands))
        return futs

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class PlainProducer(Producer):
    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def send(self, i: int) -> None:  # type: ignore[override]
        await self.conn.send("XADD", STREAM, "*", "i", i)

    async def send_many(self, ids: list[int]) -> None:  # type: ignore[override]
        await asyncio.gather(*self.conn.send_many([("XADD", STREAM, "*", "i", i) for i in ids]))

    async def close(self) -> Any:
        self.conn.close()


async def make() -> Producer:
    return PlainProducer(await Conn.open(URL))


class Consumer:
    """Reader, runners and acker joined by a hand-off queue and a list of finished ids."""

    def __init__(self, reads: Conn, acks: Conn, concurrency: int) -> None:
        self.reads = reads
        self.acks = acks
        self.concurrency = concurrency
        self.name = f"c{os.getpid()}"
        self.ready: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()
        self.room = asyncio.Event()  # the hand-off queue fell below one batch
        self.finished: list[bytes] = []
        self.to_ack = asyncio.Event()
        self.acked = asyncio.Event()  # a batch was acknowledged (or there was none)
        self.acking = False
        self.batches = 0

    async def read(self, stop: asyncio.Event) -> None:
        """Keep at most one batch waiting beyond the running jobs; read the next batch as soon
        as there is room for it (while the jobs of the last one run)."""
        c = self.concurrency
        while not stop.is_set():
            if self.ready.qsize() >= c:
                self.room.clear()
                await self.room.wait()
                continue
            resp = await self.reads.send("XREADGROUP", "GROUP", GROUP, self.name, "COUNT", c,
                                         "BLOCK", 1000, "STREAMS", STREAM, ">")
            for _, entries in resp or ():
                for eid, fields in entries:
                    self.ready.put_nowait((eid, int(fields[1])))

    async def run(self) -> None:
        ready, finished, room, c = self.ready, self.finished, self.room, self.concurrency
        while True:
            eid, i = await ready.get()
            if ready.qsize() < c:
                room.set()
            await job_async(i)
            finished.append(eid)
            self.to_ack.set()
            ready.task_done()

    async def ack(self) -> None:
        """Acknowledge (and delete) in batches: whatever finished while the last one was sent."""
        while True:
            await self.to_ack.wait()
            if len(self.finished) < self.concurrency // 2 and self.ready.qsize():
                await asyncio.sleep(ACK_WAIT_S)  # busy: let a batch gather (a group commit)
            self.to_ack.clear()
            ids, self.finished[:] = list(self.finished), []
            self.batches += 1
            if ids:
                self.acking = True
                x, d = self.acks.send_many([("XACK", STREAM, GROUP, *ids),
                                            ("XDEL", STREAM, *ids)])
                await x
                await d
                self.acking = False
            self.acked.set()

    async def drain(self) -> None:
        """Shutdown: the queued and running jobs finish, and their acks are sent."""
        await self.ready.join()
        while self.finished or self.acking:
            self.acked.clear()
            self.to_ack.set()
            await self.acked.wait()


async def worker(concurrency: int) -> None:
    reads, acks = await Conn.open(URL), await Conn.open(URL)
    with contextlib.suppress(ReplyError):  # BUSYGROUP: it exists
        await reads.send("XGROUP", "CREATE", STREAM, GROUP, "0", "MKSTREAM")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    consumer = Consumer(reads, acks, concurrency)
    helpers = [asyncio.create_task(consumer.run()) for _ in range(concurrency)]
    helpers.append(asyncio.create_task(consumer.ack()))
    reader = asyncio.create_task(consumer.read(stop))
    await stop.wait()
    consumer.room.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader, STOP_WAIT_S)
        await asyncio.wait_for(consumer.drain(), STOP_WAIT_S)
    if os.environ.get("PLAIN_STATS"):
        print(f"plain: {consumer.batches} ack batches", flush=True)
    for t in [reader, *helpers]:
        t.cancel()
    reads.close()
    acks.close()
