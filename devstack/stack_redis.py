"""The Redis of the local stack: the one at TASKQ_REDIS_URL if it answers, else a private
``redis-server`` with AOF in the data folder, else an in-process stand-in (fakeredis's TCP
server, :mod:`taskq.memory`) that keeps nothing on disk."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from taskq import memory
from taskq.clients import connect_sync
from taskq.connection import redact_url
from taskq.errors import ConfigError

log = logging.getLogger("devstack")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str, timeout_s: float = 1.0) -> bool:
    """Whether Redis at ``url`` (any form taskq takes: Cluster and Sentinel URLs too) answers."""
    try:
        client = connect_sync(url, socket_timeout_s=timeout_s)
    except (redis.RedisError, OSError, ConfigError):
        return False
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


@dataclass
class StackRedis:
    url: str
    kind: str  # "external", "redis-server" or "fakeredis"
    durable: bool
    process: subprocess.Popen[bytes] | None = None
    server: Any = None
    thread: threading.Thread | None = field(default=None, repr=False)

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # redis-server flushes the AOF and exits
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def start_redis_server(data: Path) -> StackRedis:
    folder = (data / "redis").resolve()  # absolute: redis-server chdirs into --dir first
    folder.mkdir(parents=True, exist_ok=True)
    pidfile = folder / "redis.pid"
    if pidfile.exists():
        stale = pidfile.read_text().strip()
        if stale.isdigit() and _running(int(stale)):
            raise RuntimeError(f"a redis-server (pid {stale}) already uses {folder}: stop the "
                               "other stack first")
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
           "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
           "--maxmemory-policy", "noeviction", "--pidfile", str(pidfile),
           "--logfile", str(folder / "redis.log")]
    proc = subprocess.Popen(cmd, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 15
    while not answers(url, 0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"redis-server did not start; see {folder / 'redis.log'}")
        time.sleep(0.05)
    return StackRedis(url, "redis-server", True, process=proc)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def start_fakeredis() -> StackRedis:
    """taskq's in-process stand-in (:mod:`taskq.memory`, the one behind ``memory://``) on a
    free port that the API and worker processes connect to."""
    try:
        stand_in = memory.start("127.0.0.1", free_port())
    except ConfigError as exc:
        raise RuntimeError(f"no redis-server and the stand-in cannot run: install Redis "
                           f"(apt-get install redis-server), or {exc}") from exc
    url = stand_in.url
    deadline = time.monotonic() + 10
    while not answers(url, 0.2):
        if time.monotonic() > deadline:
            raise RuntimeError("the fakeredis stand-in did not start")
        time.sleep(0.05)
    return StackRedis(url, "fakeredis", False, server=stand_in.server, thread=stand_in.thread)


def choose_redis(data: Path, mode: str = "auto") -> StackRedis:
    """``mode``: auto (URL, then redis-server, then fakeredis), url, server or fake."""
    url = os.environ.get("TASKQ_REDIS_URL")
    if mode in ("auto", "url") and url:
        if answers(url):
            return StackRedis(url, "external", True)
        log.warning("TASKQ_REDIS_URL=%s does not answer", redact_url(url))
        if mode == "url":
            raise RuntimeError("TASKQ_REDIS_URL does not answer")
    if mode in ("auto", "server") and shutil.which("redis-server"):
        return start_redis_server(data)
    if mode == "server":
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    return start_fakeredis()
