"""TLS for every URL kind, against real TLS servers started here (certificates made with the
``openssl`` CLI): ``rediss://`` with a client certificate, a TLS Redis Cluster
(``rediss+cluster://``, the cluster bus on TLS too) and TLS Sentinels with a TLS master
(``rediss+sentinel://``). Each setup is started once for the module, on free loopback ports,
and killed at the end."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faults.certs import Certs, make_certs
from faults.redis_server import RedisServer
from faults.topology import LocalCluster, LocalSentinel
from taskq import TaskQueue, Worker, clients
from taskq.cli import app as cli_app
from taskq.errors import ConfigError, RedisUnavailable
from tests.scaleout import inc_queue, require_redis_server, started

runner = CliRunner()


def _require_tls() -> None:
    require_redis_server("a TLS test")
    if shutil.which("openssl") is None:
        pytest.skip("a TLS test needs the openssl CLI")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    _require_tls()
    return make_certs(Path(tmp_path_factory.mktemp("certs")))


@pytest.fixture(scope="module")
def server(certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One TLS Redis that asks clients for a certificate (``tls-auth-clients yes``)."""
    with started(RedisServer(Path(tmp_path_factory.mktemp("tls-redis")), tls=certs.server,
                             tls_client=certs.client, password="tls-pw-123")) as s:
        yield s


@pytest.fixture(scope="module")
def cluster(certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with started(LocalCluster(Path(tmp_path_factory.mktemp("tls-cluster")), replicas=0,
                              tls=certs.server)) as c:
        yield c


@pytest.fixture(scope="module")
def sentinel(certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSentinel]:
    with started(LocalSentinel(Path(tmp_path_factory.mktemp("tls-sentinel")),
                               tls=certs.server)) as s:
        yield s


def make(url: str, made: list[TaskQueue]) -> TaskQueue:
    return inc_queue(url, f"t{uuid.uuid4().hex[:8]}", made)


def client_url(server: RedisServer, certs: Certs, ca: Path | None = None,
               client: bool = True) -> str:
    url = (f"rediss://:{server.password}@127.0.0.1:{server.port}/0"
           f"?ssl_ca_certs={ca or certs.ca}")
    if client:
        url += f"&ssl_certfile={certs.client_cert}&ssl_keyfile={certs.client_key}"
    return url


async def run_one(tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    """Enqueue (async and blocking), run in a worker, read the results."""
    inc = tq.registry["inc"]
    handle = await inc.enqueue(x=1)
    sync = await asyncio.to_thread(inc.enqueue_sync, x=10)
    start_worker(tq)
    assert await handle.result(timeout=30) == 2
    assert await asyncio.to_thread(sync.result, 30) == 11


async def test_rediss_with_a_ca_and_a_client_certificate(
        made: list[TaskQueue], server: RedisServer, certs: Certs,
        start_worker: Callable[..., Worker]) -> None:
    tq = make(client_url(server, certs), made)
    await run_one(tq, start_worker)
    # the server asks for a client certificate: without one the handshake is refused
    bare = make(client_url(server, certs, client=False), made)
    with pytest.raises(RedisUnavailable):
        await bare.registry["inc"].enqueue(x=1)


async def test_rediss_cluster_with_a_ca(made: list[TaskQueue], cluster: LocalCluster,
                                        start_worker: Callable[..., Worker]) -> None:
    assert cluster.url.startswith("rediss+cluster://") and "ssl_ca_certs=" in cluster.url
    await run_one(make(cluster.url, made), start_worker)


async def test_rediss_sentinel_with_a_ca(made: list[TaskQueue], sentinel: LocalSentinel,
                                         start_worker: Callable[..., Worker]) -> None:
    assert sentinel.url.startswith("rediss+sentinel://") and "ssl_ca_certs=" in sentinel.url
    await run_one(make(sentinel.url, made), start_worker)


def test_a_wrong_ca_is_one_line_in_the_cli(server: RedisServer, certs: Certs) -> None:
    url = client_url(server, certs, ca=certs.other_ca)
    r = runner.invoke(cli_app, ["--redis-url", url, "queues"])
    assert r.exit_code == 3, r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "certificate verify failed" in r.stderr.lower(), r.stderr
    assert "Traceback" not in r.output and server.password not in r.output  # type: ignore[operator]


def test_a_missing_certificate_file_is_named(server: RedisServer, certs: Certs,
                                             tmp_path: Path) -> None:
    missing = tmp_path / "nope.crt"
    for url in (client_url(server, certs, ca=missing),
                f"rediss+cluster://127.0.0.1:7000/?ssl_certfile={missing}",
                f"rediss+sentinel://127.0.0.1:26379/svc?ssl_keyfile={missing}"):
        r = runner.invoke(cli_app, ["--redis-url", url, "queues"])
        assert r.exit_code != 0, r.output
        assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and str(missing) in lines[0] and "no such file" in lines[0], (
            r.stderr)
        assert "tls-pw-123" not in r.output
        with pytest.raises(ConfigError, match="no such file"):
            clients.connect_sync(url)
        with pytest.raises(ConfigError, match="no such file"):
            clients.connect(url)


def test_a_wrong_ca_for_a_cluster_or_sentinels_is_one_line(
        cluster: LocalCluster, sentinel: LocalSentinel, certs: Certs) -> None:
    for topology in (cluster, sentinel):
        assert topology.tls is not None
        url = topology.url.replace(str(topology.tls[2]), str(certs.other_ca))
        assert url != topology.url
        r = runner.invoke(cli_app, ["--redis-url", url, "queues"])
        assert r.exit_code == 3, r.output
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        assert "certificate verify failed" in r.stderr.lower(), r.stderr
        assert "Traceback" not in r.output and "Redis(<" not in r.output
        password = getattr(topology, "password", None)
        assert not password or password not in r.output
