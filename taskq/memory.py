"""The in-process Redis stand-in behind ``memory://`` URLs: fakeredis (with Lua), one per name.

``TaskQueue("memory://")`` (or ``TASKQ_REDIS_URL=memory://``) runs against a fakeredis server
started in this process on first use: the same scripts, keys and owner checks run as against
Redis, through the same clients (:mod:`taskq.connection` connects to it as to any Redis, so
the lanes, pipelines and subscriptions need no second code path). ``memory://`` is one
stand-in per process; ``memory://NAME`` another one per NAME (tests use a fresh name each).

What it is not: it is not durable (everything is gone when the process ends, or at
:func:`stop`), not shared with other processes (a worker process of its own sees an empty
stand-in of its own), and not a benchmark (fakeredis is much slower than Redis). It listens on
a loopback port that only this process knows. It needs ``fakeredis[lua]``, loaded on first use
(``pip install 'taskq-streams[testing]'``).
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from dataclasses import dataclass
from typing import Any

from taskq.errors import ConfigError

SCHEME = "memory://"
SERVER_VERSION = (7, 0)
_START_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class StandIn:
    """One running stand-in: its Redis URL, its server and the thread serving it."""

    url: str
    server: Any  # fakeredis.TcpFakeServer
    thread: threading.Thread


_lock = threading.Lock()
_running: dict[str, StandIn] = {}


def is_memory_url(url: str) -> bool:
    return url.startswith(SCHEME)


def redis_url(url: str) -> str:
    """The ``redis://`` URL of the stand-in named by the ``memory://`` URL ``url`` (started
    now if it is not running)."""
    name = url[len(SCHEME):].strip("/")
    with _lock:
        stand_in = _running.get(name)
        if stand_in is None:
            stand_in = _running[name] = start()
        return stand_in.url


def stop(url: str) -> None:
    """Stop the stand-in of the ``memory://`` URL ``url`` and forget its data (no-op if it is
    not running). Clients connected to it then fail with RedisUnavailable."""
    with _lock:
        stand_in = _running.pop(url[len(SCHEME):].strip("/"), None)
    if stand_in is not None:
        shutdown(stand_in)


def start(host: str = "127.0.0.1", port: int = 0) -> StandIn:
    """Start a stand-in serving on ``host:port`` (0: a free port) in a daemon thread."""
    fakeredis = _fakeredis()
    server = fakeredis.TcpFakeServer((host, port), server_type="redis",
                                     server_version=SERVER_VERSION)
    server.daemon_threads = True  # connections left open never hold up the interpreter's exit
    bound_host, bound_port = server.server_address[:2]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name=f"taskq-memory-{bound_port}", daemon=True)
    thread.start()
    return StandIn(f"redis://{bound_host}:{bound_port}/0", server, thread)


def shutdown(stand_in: StandIn) -> None:
    """Stop serving, close the listening socket, and let the connection threads end."""
    stand_in.server.shutdown()  # (sets the handlers' stop flag too)
    stand_in.server.server_close()
    stand_in.thread.join(_START_TIMEOUT_S)


def _fakeredis() -> Any:
    """fakeredis, with the Lua runtime it needs for taskq's scripts (an optional dependency)."""
    if importlib.util.find_spec("fakeredis") is None or importlib.util.find_spec("lupa") is None:
        raise ConfigError("memory:// URLs need fakeredis with Lua: "
                          "pip install 'taskq-streams[testing]' (or 'fakeredis[lua]')")
    return importlib.import_module("fakeredis")
