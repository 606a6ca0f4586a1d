"""The in-process Redis stand-in of the local stack: fakeredis's TCP server, kept connected.

fakeredis's TCP handler (2.40) closes the connection after any error reply (a NOSCRIPT, a
BUSYGROUP, an unknown command), and the next command on that connection then fails with
"Connection closed by server". Real Redis keeps the connection open, and taskq relies on that
(NOSCRIPT reloads, BUSYGROUP is expected). The handler here answers the error and goes on.
"""

from __future__ import annotations

import select
from typing import Any

import redis
from fakeredis import TcpFakeServer
from fakeredis._clients._tcp_server import TCPFakeRequestHandler

POLL_S = 0.1


class _Handler(TCPFakeRequestHandler):
    def handle(self) -> None:
        client: Any = self.current_client
        while not self.server._shutdown_event.is_set():
            try:
                if client.can_read():
                    self.writer.dump(client.read_response())
                    continue
                data = self.rfile.readline()
                if data == b"":
                    readable, _, _ = select.select([self.connection], [], [], POLL_S)
                    if not readable:
                        continue
                    data = self.rfile.readline()
                    if data == b"":
                        break
                client.get_socket().sendall(data)
            except redis.ResponseError as exc:
                self.writer.dump(exc)  # an error reply: the connection stays open
            except ConnectionError:
                break
            except Exception as exc:
                self.writer.dump(exc)
                break


class StandInServer(TcpFakeServer):
    """A Redis-compatible server in this process; nothing is written to disk."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, server_type="redis", server_version=(7, 0))
        self.RequestHandlerClass = _Handler
