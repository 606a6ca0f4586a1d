"""Test certificates made with the ``openssl`` CLI: a CA, a server certificate for 127.0.0.1
signed by it, a client certificate signed by it, and an unrelated CA (for "wrong CA" cases)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path

    @property
    def server(self) -> tuple[Path, Path, Path]:
        """(certificate, key, CA) as :class:`faults.redis_server.RedisServer` takes them."""
        return self.server_cert, self.server_key, self.ca

    @property
    def client(self) -> tuple[Path, Path]:
        return self.client_cert, self.client_key


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _signed(name: str, cn: str, folder: Path, ext: str) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", f"/CN={cn}", cwd=folder)
    (folder / f"{name}.ext").write_text(ext)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile",
             f"{name}.ext", cwd=folder)


def make_certs(folder: Path) -> Certs:
    """Make (once per folder) the certificates of the module's docstring in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "client.crt").exists():
        for name in ("ca", "other-ca"):
            _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                     "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj",
                     f"/CN=taskq test {name}", cwd=folder)
        _signed("server", "127.0.0.1", folder, "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        _signed("client", "taskq test client", folder, "extendedKeyUsage=clientAuth\n")
    return Certs(folder / "ca.crt", folder / "server.crt", folder / "server.key",
                 folder / "client.crt", folder / "client.key", folder / "other-ca.crt")
