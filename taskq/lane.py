"""An auto-pipelined lane: one dedicated connection for a producer's single commands.

A single enqueue is one XADD. Through the connection pool every command pays for taking and
checking a connection and for its own timeout scopes; here commands go out on one connection
kept open, and the commands issued while a round trip is in flight are written together in the
next one (as ioredis's auto-pipelining does), so many concurrent enqueues (one per request of a
busy API) cost about one round trip, and a lone one costs little more than the round trip.

Replies come back in order; an error reply fails only its own command. A connection failure
fails every command of the round trip with the connection error (each may or may not have
run, as with any Redis command) and the next round trip reconnects. Nothing is retried here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

Pending = tuple[tuple[Any, ...], "asyncio.Future[Any]"]


class Lane:
    """Runs raw commands (``await lane.execute("XADD", key, "*", "m", payload)``) on a
    connection of its own, made from ``client``'s pool settings (URL, TLS, auth, timeouts)."""

    def __init__(self, client: Redis, max_batch: int = 1_000) -> None:
        self._client = client
        self._max_batch = max_batch
        self._conn: AbstractConnection | None = None
        self._pending: list[Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    async def execute(self, *args: Any) -> Any:
        if self._closed:
            raise RedisConnectionError("the lane is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((args, fut))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        return await fut

    async def aclose(self) -> None:
        self._closed = True
        flusher = self._flusher
        if flusher is not None:
            await asyncio.gather(flusher, return_exceptions=True)
        if self._conn is not None:
            await self._conn.disconnect()
            self._conn = None

    async def _connection(self) -> AbstractConnection:
        conn = self._conn
        if conn is None:
            made: AbstractConnection = self._client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
            conn = self._conn = made
        await conn.connect()  # type: ignore[no-untyped-call]  # no-op while connected
        return conn

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._round_trip(batch)
        finally:
            self._flusher = None

    async def _round_trip(self, batch: list[Pending]) -> None:
        try:
            conn = await self._connection()
            await conn.send_packed_command(conn.pack_commands([args for args, _ in batch]))
            for _, fut in batch:
                try:
                    reply = await conn.read_response()
                except ResponseError as exc:  # this command's own error; the rest go on
                    if not fut.done():
                        fut.set_exception(exc)
                    continue
                if not fut.done():
                    fut.set_result(reply)
        except BaseException as exc:
            broken, self._conn = self._conn, None
            if broken is not None:
                await broken.disconnect(nowait=True)
            error = exc if isinstance(exc, Exception) else RedisConnectionError("lane closed")
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(error)
            if not isinstance(exc, Exception):
                raise
