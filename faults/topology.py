"""Private Redis Clusters and Sentinel setups on free loopback ports, for tests and scenarios.

:class:`LocalCluster`: 3 primaries with 1 replica each (``redis-server --cluster-enabled yes``,
joined by ``redis-cli --cluster create``). :class:`LocalSentinel`: 1 master, 1 replica and 3
Sentinels. Both start every process themselves, wait until the setup is whole (slots covered,
replicas in sync, Sentinels agreeing), and kill everything at :meth:`stop`.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis
from redis.crc import key_slot

from faults.redis_server import RedisServer, free_port

NODE_TIMEOUT_MS = 2000
"""``cluster-node-timeout`` and Sentinel's ``down-after-milliseconds``: failovers in seconds."""


def available() -> str | None:
    """None when redis-server and redis-cli are installed, else why not."""
    missing = [p for p in ("redis-server", "redis-cli") if shutil.which(p) is None]
    return f"{', '.join(missing)} not installed" if missing else None


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        port = random.randint(20000, 29999)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free pair of ports for a cluster node")


def wait_for(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except (redis.exceptions.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


class LocalCluster:
    """A Redis Cluster of ``masters`` primaries with ``replicas`` replicas each."""

    def __init__(self, folder: Path, masters: int = 3, replicas: int = 1,
                 extra: list[str] | None = None,
                 tls: tuple[Path, Path, Path] | None = None) -> None:
        self.folder = folder
        self.masters = masters
        self.replicas = replicas
        self.nodes: list[RedisServer] = []
        self.extra = list(extra or [])
        self.tls = tls  # (server cert, key, CA): TLS only, the cluster bus and replication too
        if tls:
            self.extra += ["--tls-cluster", "yes", "--tls-replication", "yes"]

    @property
    def url(self) -> str:
        seeds = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:self.masters])
        if self.tls:
            return f"rediss+cluster://{seeds}/?ssl_ca_certs={self.tls[2]}"
        return f"redis+cluster://{seeds}/"

    def start(self, timeout_s: float = 60.0) -> None:
        for i in range(self.masters * (1 + self.replicas)):
            node = RedisServer(self.folder / f"node{i}", extra=[
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS), *self.extra], tls=self.tls)
            node.port = cluster_port()
            self.nodes.append(node)
            node.start()
        tls = ["--tls", "--cacert", str(self.tls[2])] if self.tls else []
        subprocess.run(
            ["redis-cli", *tls, "--cluster", "create",
             *(f"127.0.0.1:{n.port}" for n in self.nodes),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=timeout_s)
        wait_for("the cluster to be whole", self.whole, timeout_s)

    def whole(self) -> bool:
        """Every live node says the cluster is ok, and each primary has its replicas in sync."""
        primaries = 0
        for node in self.live():
            client = node.admin()
            try:
                if b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                    return False
                info = client.info("replication")
                if info["role"] == "master":
                    primaries += 1
                    if int(info.get("connected_slaves", 0)) < self.replicas:
                        return False
                elif info.get("master_link_status") != "up":
                    return False
            finally:
                client.close()
        return primaries == self.masters

    def live(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def primary_of(self, key: str) -> RedisServer:
        """The node serving ``key``'s slot now (asked of a live node)."""
        slot = key_slot(key.encode())
        client = self.live()[0].admin()
        try:
            for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    port = int(primary[1])
                    return next(n for n in self.nodes if n.port == port)
        finally:
            client.close()
        raise LookupError(key)

    def kill(self, node: RedisServer) -> None:
        node.kill()

    def fail_over(self, key: str, timeout_s: float = 60.0) -> RedisServer:
        """``CLUSTER FAILOVER`` (a manual, lossless one) on a replica of ``key``'s primary: the
        replica is promoted, the old primary becomes its replica. Returns the new primary once
        it serves the slot and the Cluster is whole again."""
        old = self.primary_of(key)
        for node in self.live():
            client = node.admin()
            try:
                info = client.info("replication")
                if info["role"] == "slave" and int(info["master_port"]) == old.port:
                    client.execute_command("CLUSTER", "FAILOVER")
                    break
            finally:
                client.close()
        else:
            raise LookupError(f"no replica of {old.port}")
        self.wait_failover(old, key, timeout_s)
        wait_for("the cluster to be whole", self.whole, timeout_s)
        return self.primary_of(key)

    def wait_failover(self, killed: RedisServer, key: str, timeout_s: float = 60.0) -> None:
        """Wait until ``key``'s slot is served by another live primary than ``killed``."""
        def moved() -> bool:
            node = self.primary_of(key)
            if node is killed or node not in self.live():
                return False
            client = node.admin()
            try:
                return b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO")
            finally:
                client.close()

        wait_for("the failover", moved, timeout_s)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class LocalSentinel:
    """1 master, 1 replica and 3 Sentinels watching them as service ``service``."""

    def __init__(self, folder: Path, service: str = "taskq", extra: list[str] | None = None,
                 password: str | None = None,
                 tls: tuple[Path, Path, Path] | None = None) -> None:
        self.folder = folder
        self.service = service
        self.password = password
        self.tls = tls  # (server cert, key, CA): Redis and the Sentinels on TLS ports only
        auth = ["--masterauth", password] if password else []  # (either may follow the other)
        if tls:
            auth += ["--tls-replication", "yes"]
        self.master = RedisServer(folder / "master", extra=[*(extra or []), *auth],
                                  password=password, tls=tls)
        self.replica = RedisServer(folder / "replica", extra=[*(extra or []), *auth],
                                   password=password, tls=tls)
        self.sentinel_ports: list[int] = []
        self._sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return (f"rediss+sentinel://{auth}{hosts}/{self.service}/0"
                    f"?ssl_ca_certs={self.tls[2]}")
        return f"redis+sentinel://{auth}{hosts}/{self.service}/0"

    def start(self, timeout_s: float = 60.0) -> None:
        self.master.start()
        self.replica.extra += ["--replicaof", "127.0.0.1", str(self.master.port)]
        self.replica.start()
        wait_for("the replica to sync", lambda: self._role(self.replica) == "slave"
                 and self._link_up(self.replica), timeout_s)
        for i in range(3):
            folder = self.folder / f"sentinel{i}"
            folder.mkdir(parents=True, exist_ok=True)
            port = free_port()
            if self.tls:
                cert, key, ca = self.tls
                listen = ["port 0", f"tls-port {port}", f"tls-cert-file {cert}",
                          f"tls-key-file {key}", f"tls-ca-cert-file {ca}",
                          "tls-auth-clients no", "tls-replication yes"]
            else:
                listen = [f"port {port}"]
            lines = [*listen, "bind 127.0.0.1", f"dir {folder}",
                     f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 2",
                     f"sentinel down-after-milliseconds {self.service} {NODE_TIMEOUT_MS}",
                     f"sentinel failover-timeout {self.service} 10000",
                     f"sentinel parallel-syncs {self.service} 1"]
            if self.password:
                lines.append(f"sentinel auth-pass {self.service} {self.password}")
            conf = folder / "sentinel.conf"
            conf.write_text("\n".join(lines) + "\n")
            self._sentinels.append(subprocess.Popen(
                ["redis-server", str(conf), "--sentinel", "--logfile", str(folder / "log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
            self.sentinel_ports.append(port)
        wait_for("the Sentinels to know the replica and each other", self._agreed, timeout_s)

    def sentinel(self, i: int = 0) -> redis.Redis:
        if self.tls:
            return redis.Redis(host="127.0.0.1", port=self.sentinel_ports[i], socket_timeout=5,
                               ssl=True, ssl_ca_certs=str(self.tls[2]))
        return redis.Redis(host="127.0.0.1", port=self.sentinel_ports[i], socket_timeout=5)

    def _agreed(self) -> bool:
        for i in range(3):
            client = self.sentinel(i)
            try:
                state = client.execute_command("SENTINEL", "MASTER", self.service)
                fields = dict(zip(state[0::2], state[1::2], strict=True))
                if int(fields[b"num-slaves"]) < 1 or int(fields[b"num-other-sentinels"]) < 2:
                    return False
            finally:
                client.close()
        return True

    def master_port(self) -> int:
        client = self.sentinel()
        try:
            _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
            return int(port)
        finally:
            client.close()

    def current_master(self) -> RedisServer:
        port = self.master_port()
        return self.master if port == self.master.port else self.replica

    def failover(self, timeout_s: float = 60.0, wait_demoted: bool = True) -> RedisServer:
        """``SENTINEL FAILOVER``: the replica becomes master; returns the new master once it
        takes writes (and with ``wait_demoted``, once the old one follows it)."""
        old = self.current_master()
        new = self.replica if old is self.master else self.master
        client = self.sentinel()
        try:
            client.execute_command("SENTINEL", "FAILOVER", self.service)
        finally:
            client.close()
        wait_for("the failover", lambda: self.master_port() == new.port
                 and self._role(new) == "master", timeout_s)
        if wait_demoted:
            wait_for("the old master to follow the new one",
                     lambda: self._role(old) == "slave" and self._link_up(old), timeout_s)
        return new

    def _role(self, server: RedisServer) -> str:
        client = server.admin()
        try:
            return str(client.info("replication")["role"])
        finally:
            client.close()

    def _link_up(self, server: RedisServer) -> bool:
        client = server.admin()
        try:
            return client.info("replication").get("master_link_status") == "up"
        finally:
            client.close()

    def stop(self) -> None:
        for proc in self._sentinels:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self._sentinels.clear()
        self.master.stop()
        self.replica.stop()
