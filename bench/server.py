"""Private redis-server processes on free loopback ports: no persistence, pinned to one CPU.

The harness runs two: the queue's Redis (whose INFO commandstats and CPU are the queue's cost)
and a sink Redis that only the job writes to, so the job's own round trip never counts as the
queue's, and the harness's polling never touches the queue's server.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

import redis

IGNORED = {"info", "config|resetstat", "config", "flushall", "ping", "command", "command|docs",
           "client|setinfo", "client", "hello"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pinned(cpu: int | None, argv: list[str]) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return argv
    return ["taskset", "-c", str(cpu), *argv]


class RedisServer:
    def __init__(self, cpu: int | None) -> None:
        self.cpu = cpu
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis(host="127.0.0.1", port=self.port)

    def start(self) -> RedisServer:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir, "--logfile", f"{self.dir}/redis.log"]
        self.proc = subprocess.Popen(pinned(self.cpu, argv))
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def reset(self) -> None:
        """Empty the server and zero its statistics."""
        self.client.flushall()
        self.client.config_resetstat()

    def version(self) -> str:
        return str(self.client.info("server")["redis_version"])

    def commandstats(self) -> dict[str, tuple[int, int]]:
        """{command: (calls, usec)} without the harness's own commands."""
        raw: dict[str, Any] = self.client.info("commandstats")
        out = {}
        for key, v in raw.items():
            name = key.removeprefix("cmdstat_")
            if name not in IGNORED:
                out[name] = (int(v["calls"]), int(v["usec"]))
        return out

    def cpu_s(self) -> float:
        info: dict[str, Any] = self.client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])


def diff(after: dict[str, tuple[int, int]],
         before: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    out = {}
    for k, (calls, usec) in after.items():
        c0, u0 = before.get(k, (0, 0))
        if calls - c0:
            out[k] = (calls - c0, usec - u0)
    return out
