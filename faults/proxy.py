"""A small TCP proxy in front of Redis that misbehaves on demand.

Faults apply to the connections open when they are set (new connections pass through), the
way a dead NAT entry or a dying peer hits the connections a client already holds:

- ``latency(s)``   delay every chunk, both ways, by ``s`` seconds (all connections, until reset)
- ``reset()``      close every open connection with a TCP RST
- ``stall()``      stop forwarding on every open connection, keeping it open (half-open)
- ``drop()``       swallow every reply on open connections (requests still reach Redis)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field


@dataclass(eq=False)
class _Conn:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    stalled: bool = False
    dropping: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    thaw: asyncio.Event = field(default_factory=asyncio.Event)


class Proxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.delay_s = 0.0
        self.conns: set[_Conn] = set()
        self.accepted = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for c in list(self.conns):
            self._close(c, rst=False)

    def latency(self, seconds: float) -> None:
        self.delay_s = seconds

    def reset(self) -> int:
        n = len(self.conns)
        for c in list(self.conns):
            self._close(c, rst=True)
        return n

    def stall(self) -> int:
        for c in self.conns:
            c.stalled = True
        return len(self.conns)

    def drop(self) -> int:
        for c in self.conns:
            c.dropping = True
        return len(self.conns)

    def _close(self, c: _Conn, rst: bool) -> None:
        self.conns.discard(c)
        for t in c.tasks:
            t.cancel()
        if rst:
            sock = c.client.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        for w in (c.client, c.server):
            with contextlib.suppress(Exception):
                w.close()

    async def _accept(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cw.close()
            return
        self.accepted += 1
        c = _Conn(cw, sw)
        self.conns.add(c)
        c.tasks = [asyncio.create_task(self._pump(c, cr, sw, replies=False)),
                   asyncio.create_task(self._pump(c, sr, cw, replies=True))]

    async def _pump(self, c: _Conn, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    replies: bool) -> None:
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                if c.stalled:
                    await c.thaw.wait()  # never set: the connection hangs half-open
                if replies and c.dropping:
                    continue
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            return
        if c in self.conns:
            self._close(c, rst=False)
