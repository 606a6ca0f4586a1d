"""An auto-pipelined lane: one dedicated connection for single commands (a producer's
enqueues and script calls; a worker's reads have a lane of their own).

A single enqueue is one XADD. Through redis-py's connection pool every command pays for taking
and checking a connection, its timeout scopes, and Python-level packing and parsing: about
twice the cost of the round trip itself. Here each command is packed by hiredis and written at
once to one connection kept open; replies are parsed by hiredis as they arrive and handed to
the waiting callers in order. Commands issued by concurrent callers share the connection's
writes and reads (as ioredis's auto-pipelining does): a busy API's enqueues cost about one
round trip per burst, and a lone one little more than the round trip.

The connection is opened and set up by redis-py (URL, TLS, AUTH, SELECT), so every URL the
client takes works; the lane then takes over its transport. An error reply fails only its own
command. A command whose connection is lost before its reply, on a connection opened before it
was sent (Redis restarted, an idle connection dropped), is sent once more on a new connection,
as redis-py's own retry does (it may then run twice: producers are at-least-once); otherwise
the command fails with ConnectionError and may or may not have run, as with any Redis command.
A reply overdue by the client's socket timeout fails every waiting command with TimeoutError
and drops the connection. A closed lane stays closed: a command sent after (or while) it was
closed fails like a lost connection and opens nothing (a worker's last commands through the
lane of a TaskQueue its owner closed first). Failures reach the caller as taskq errors,
translated by :mod:`taskq.connection` (``RedisUnavailable``, ``RedisTimeout``,
``RedisCommandError``, ...).
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any, Protocol

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from taskq.connection import raise_translated


class Commands(Protocol):
    """What callers of a lane use: a :class:`Lane`, or its Cluster form
    (:class:`taskq.cluster.ClusterLane`)."""

    async def execute(self, *args: Any) -> Any: ...

    async def aclose(self) -> None: ...


class _Lost(RedisConnectionError):
    """The connection went away before this command's reply."""


class _Replies(asyncio.Protocol):
    """Reads the connection after set-up: each reply resolves the oldest waiting command."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.parser = hiredis.Reader(replyError=ResponseError)
        self.waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.lost: Exception | None = None

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = self.parser.gets()
            except hiredis.ProtocolError as exc:
                self.fail(RedisConnectionError(f"unreadable reply from Redis: {exc}"))
                return
            if reply is False:
                return
            if not waiting:  # nobody asked: the stream is out of step, drop it
                self.fail(RedisConnectionError("unexpected reply from Redis"))
                return
            fut, _ = waiting.popleft()
            if fut.done():  # its caller gave up (cancelled): the reply is read all the same
                continue
            if isinstance(reply, ResponseError):
                fut.set_exception(reply)
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(_Lost(f"connection to Redis lost{f': {exc}' if exc else ''}"))

    def fail(self, error: Exception) -> None:
        if self.lost is None:
            self.lost = error
            self.transport.close()
        while self.waiting:
            fut, _ = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(error)


class Lane:
    """Runs raw commands (``await lane.execute("XADD", key, "*", "m", payload)``) on a
    connection of its own, made from ``client``'s pool settings (URL, TLS, auth, timeouts).
    ``blocking_s``: how long its commands may block in Redis (a worker's reads), added to the
    socket timeout before a reply is overdue."""

    def __init__(self, client: Redis, blocking_s: float = 0.0) -> None:
        self._setup(client.connection_pool, blocking_s)

    @classmethod
    def on_pool(cls, pool: Any, blocking_s: float = 0.0) -> Lane:
        """A lane on connections made as ``pool`` makes them: anything with redis-py's
        ``connection_class`` and ``connection_kwargs`` (a Cluster node, a Sentinel's pool)."""
        lane = cls.__new__(cls)
        lane._setup(pool, blocking_s)
        return lane

    def _setup(self, pool: Any, blocking_s: float) -> None:
        self._pool = pool
        self._timeout: float = (pool.connection_kwargs.get("socket_timeout") or 30.0) + blocking_s
        self._replies: _Replies | None = None
        self._conn: AbstractConnection | None = None  # redis-py's, kept to close it properly
        self._connecting = asyncio.Lock()
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False

    async def execute(self, *args: Any) -> Any:
        replies = self._replies
        reused = replies is not None and replies.lost is None
        try:
            try:
                return await self._send(args)
            except _Lost:
                if not reused:
                    raise
                return await self._send(args)
            except ResponseError as exc:
                if not str(exc).startswith(("READONLY", "UNBLOCKED")):
                    raise
                # A replica now (a failover demoted it): the command did not run, or a blocked
                # read was woken by the demotion (UNBLOCKED) and read nothing. Reconnect (a
                # Sentinel-managed connection asks the Sentinels for the new master; on a
                # Cluster the node answers MOVED, and the Cluster lane reloads its slot map)
                # and send it once more.
                self._drop(RedisConnectionError("Redis is a replica now (READONLY)"))
                return await self._send(args)
        except (RedisError, OSError) as exc:
            raise_translated(exc, pool=self._pool, command=args)

    async def _send(self, args: tuple[Any, ...]) -> Any:
        replies = self._replies
        if replies is None or replies.lost is not None:
            replies = await self._connect()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        replies.waiting.append((fut, time.monotonic()))
        replies.transport.write(hiredis.pack_command(args))
        if self._watchdog is None:
            self._arm()
        return await fut

    def _drop(self, error: Exception) -> None:
        """Give up the connection (its waiting commands fail with ``error``)."""
        if self._replies is not None:
            self._replies.fail(error)

    async def aclose(self) -> None:
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._replies is not None:
            self._replies.fail(RedisConnectionError("the lane is closed"))
            self._replies = None
        await self._forget_connection()

    async def _forget_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.disconnect(nowait=True)  # its transport is closed already, or now

    async def _connect(self) -> _Replies:
        async with self._connecting:
            if self._closed:
                raise RedisConnectionError("the lane is closed")
            replies = self._replies
            if replies is not None and replies.lost is None:
                return replies  # another caller connected meanwhile
            await self._forget_connection()
            pool = self._pool
            conn: AbstractConnection = pool.connection_class(**pool.connection_kwargs)
            self._conn = conn
            await conn.connect()  # type: ignore[no-untyped-call]
            if self._closed:  # closed while connecting: nobody would close this connection
                await conn.disconnect(nowait=True)
                raise RedisConnectionError("the lane is closed")
            # redis-py (5 and 6) keeps the connection's asyncio streams here; from now on the
            # lane reads the transport itself.
            writer = getattr(conn, "_writer", None)
            if not isinstance(writer, asyncio.StreamWriter):
                await conn.disconnect()
                raise RuntimeError("this redis-py version keeps its streams elsewhere: "
                                   "taskq.lane needs an update")
            transport: Any = writer.transport
            replies = _Replies(transport)
            transport.set_protocol(replies)
            self._replies = replies
            return replies

    def _arm(self) -> None:
        self._watchdog = asyncio.get_running_loop().call_later(self._timeout / 4, self._check)

    def _check(self) -> None:
        """Every quarter timeout while commands wait: fail them all when the oldest is late."""
        self._watchdog = None
        replies = self._replies
        if replies is None or not replies.waiting:
            return
        if time.monotonic() - replies.waiting[0][1] > self._timeout:
            replies.fail(RedisTimeoutError(f"no reply from Redis within {self._timeout:g} s"))
            return
        self._arm()
