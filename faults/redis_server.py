"""A private redis-server per scenario on a free loopback port, killed and restarted on the same
port and data folder when asked."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """``persistence``: "none", "always" or "everysec" (AOF fsync policy). ``extra``: more
    redis-server options (``["--maxmemory-policy", "allkeys-lru"]``, TLS, ACL...)."""

    def __init__(self, folder: Path, persistence: str = "none", extra: list[str] | None = None,
                 password: str | None = None, url: str | None = None,
                 tls: tuple[Path, Path, Path] | None = None,
                 tls_client: tuple[Path, Path] | None = None) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.persistence = persistence
        self.extra = list(extra or [])
        self.password = password
        self._url = url
        self.tls = tls  # (server cert, server key, CA cert)
        self.tls_client = tls_client  # (client cert, key): then clients must present one
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        if self._url:
            return self._url
        if self.tls:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls[2]}"
        return f"redis://127.0.0.1:{self.port}/0"

    def admin(self) -> redis.Redis:
        """A client for the harness (the default user; never the one under test)."""
        if self.tls:
            return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                               socket_timeout=5, socket_connect_timeout=2, ssl=True,
                               ssl_ca_certs=str(self.tls[2]), **self._client_cert())
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           socket_timeout=5, socket_connect_timeout=2)

    def _client_cert(self) -> dict[str, str]:
        if self.tls_client is None:
            return {}
        return {"ssl_certfile": str(self.tls_client[0]), "ssl_keyfile": str(self.tls_client[1])}

    def _args(self) -> list[str]:
        if self.tls:
            cert, key, ca = self.tls
            ports = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert),
                     "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
                     "--tls-auth-clients", "yes" if self.tls_client else "no"]
        else:
            ports = ["--port", str(self.port)]
        args = ["redis-server", *ports, "--bind", "127.0.0.1",
                "--dir", str(self.folder), "--save", "", "--logfile", "redis.log",
                "--protected-mode", "no"]
        if self.persistence == "none":
            args += ["--appendonly", "no"]
        else:
            args += ["--appendonly", "yes", "--appendfsync", self.persistence]
        if self.password:
            args += ["--requirepass", self.password]
        return args + self.extra

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(self._args(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}; "
                                   f"see {self.folder / 'redis.log'}")
            try:
                client = self.admin()
                client.ping()
                loading = client.info("persistence").get("loading", 0)
                client.close()
                if not loading:
                    return
            except redis.exceptions.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye to clients."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        self.kill()
        self.proc = None
