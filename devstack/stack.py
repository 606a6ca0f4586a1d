"""``./dev up`` (``python -m devstack``): a local stack with the example tasks.

Redis (see :mod:`devstack.stack_redis`), the HTTP API (``python -m api``) and a worker supervisor
with two worker processes (``python -m worker examples.tasks:tq --processes 2``). A local admin
API key is generated into ``.data/api-key`` (mode 0600) on first run. Ctrl-C (or SIGTERM)
stops the workers gracefully (running tasks finish), then the API, then Redis.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from devstack.stack_redis import StackRedis, choose_redis
from taskq.connection import redact_url

log = logging.getLogger("devstack")

APP = "examples.tasks:tq"
GRACE_S = 10.0


def api_key(data: Path) -> str:
    path = data / "api-key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def wait_ready(base: str, procs: list[subprocess.Popen[bytes]], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return False
        try:
            with urllib.request.urlopen(base + "/v1/ready", timeout=1) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def port_taken(host: str, port: int) -> bool:
    """True when something already listens on ``host:port`` (another stack, say)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def cli_env(redis: StackRedis) -> dict[str, str]:
    """What the CLI needs to see this stack's Redis (and key prefix, when one is set)."""
    env = {"TASKQ_REDIS_URL": redis.url}
    if os.environ.get("TASKQ_PREFIX"):
        env["TASKQ_PREFIX"] = os.environ["TASKQ_PREFIX"]
    return env


def write_cli_env(data: Path, env: dict[str, str]) -> Path:
    """``.data/stack.env``, read by ``./dev cli`` while the stack runs (mode 0600: the URL may
    hold a password)."""
    path = data / "stack.env"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.writelines(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    return path


def banner(base: str, key: str, redis: StackRedis, data: Path) -> str:
    h = f'-H "X-API-Key: {key}"'
    cli = Path(sys.executable).parent / "taskq"
    env = cli_env(redis)
    shown = {k: (redact_url(v) if k == "TASKQ_REDIS_URL" else v) for k, v in env.items()}
    exports = [f"  export {k}={shlex.quote(v)}" for k, v in shown.items()]
    if shown != env:
        exports.append("  (the URL's password is hidden: use your own, or ./dev cli)")
    where = {"external": "the Redis at TASKQ_REDIS_URL",
             "redis-server": f"a private redis-server (AOF in {data / 'redis'})",
             "fakeredis": "an in-process Redis stand-in (fakeredis)"}[redis.kind]
    lines = [
        "", "taskq local stack is up",
        f"  Redis:   {redact_url(redis.url)}  ({where})",
        f"  API:     {base}/v1   docs: {base}/docs   dashboard: {base}/ui/",
        f"  API key: {key}   (admin; kept in {data / 'api-key'})",
        "  workers: 2 processes running examples/tasks.py",
        "", "The CLI on this stack (ready to paste):",
        "  ./dev cli queues                      # from the checkout: uses this stack's Redis",
        "or, in any shell:",
        *exports,
        f"  {cli} queues",
        "", "Try:",
        f"  curl -s {h} {base}/v1/registry",
        f"  curl -s {h} "
        f"--json '{{\"email\": \"ada@example.com\"}}' {base}/v1/enqueue/send_welcome_email",
        f"  curl -s {h} {base}/v1/tasks/<id>/wait?timeout_s=10",
        f"  curl -s {h} --json '{{}}' {base}/v1/enqueue/flaky        # succeeds on attempt 3",
        f"  curl -s {h} --json '{{\"images\": 10}}' {base}/v1/enqueue/resize_images",
        f"  curl -sN {h} {base}/v1/tasks/<id>/events              # live progress (SSE)",
        f"  curl -s {h} --json '{{}}' {base}/v1/enqueue/always_fails  # ends in the dead letters",
        f"  curl -s {h} {base}/v1/tasks/<id>/wait?timeout_s=10   # it fails after ~0.5 s",
        f"  curl -s {h} {base}/v1/queues/default/dead",
        f"  curl -s {h} --json '{{\"all\": true}}' {base}/v1/queues/default/dead/replay",
        f"  curl -s {h} {base}/v1/queues",
        "", "Ctrl-C stops everything.", "",
    ]
    if not redis.durable:
        lines[1:1] = ["!" * 72,
                      "WARNING: no Redis found (TASKQ_REDIS_URL, redis-server): using an",
                      "in-process stand-in. NOTHING IS DURABLE: every task is lost on stop.",
                      "!" * 72]
    return "\n".join(lines)


class Stack:
    def __init__(self, host: str, port: int, data: Path, redis_mode: str) -> None:
        self.host, self.port, self.data, self.redis_mode = host, port, data, redis_mode
        self.stopping = False
        self.redis: StackRedis | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.env_file: Path | None = None

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping:
            log.warning("second signal: stopping now")
            for p in (self.worker, self.api):
                if p is not None and p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)  # (its session: the worker processes too)
        self.stopping = True

    def _spawn(self, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        # A session of its own: the terminal's Ctrl-C reaches only this process, which then
        # stops the children in order.
        return subprocess.Popen([sys.executable, "-m", *args], env=env, start_new_session=True)

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        self.data.mkdir(parents=True, exist_ok=True)
        try:
            if port_taken(self.host, self.port):
                log.error("port %d on %s is already in use (another ./dev up?): stop it, or "
                          "pick a free port with --port or TASKQ_PORT", self.port, self.host)
                return 2
            self.redis = choose_redis(self.data, self.redis_mode)
            key = api_key(self.data)
            env = {**os.environ, "TASKQ_APP": APP, "TASKQ_REDIS_URL": self.redis.url,
                   "TASKQ_API_KEYS": key, "TASKQ_AUTH_DISABLED": "false",
                   # the schema and docs need a key, except on this machine's loopback
                   "TASKQ_DOCS_PUBLIC": str(self.host in LOOPBACK).lower()}
            self.api = self._spawn("api", APP, "--host", self.host, "--port", str(self.port),
                                   env=env)
            self.worker = self._spawn("worker", APP, "--processes", "2", "--grace-s",
                                      str(GRACE_S), env=env)
            base = f"http://{self.host}:{self.port}"
            if not wait_ready(base, [self.api, self.worker], 60):
                log.error("the stack did not become ready (is port %d free?)", self.port)
                return 1
            self.env_file = write_cli_env(self.data, cli_env(self.redis))
            print(banner(base, key, self.redis, self.data), flush=True)
            return self._watch()
        except RuntimeError as exc:
            log.error("%s", exc)
            return 1
        finally:
            self._stop()

    def _watch(self) -> int:
        while not self.stopping:
            for name, p in (("API", self.api), ("worker supervisor", self.worker)):
                if p is not None and p.poll() is not None:
                    log.error("the %s exited with %s; stopping the stack", name, p.returncode)
                    return 1
            if self.redis is not None and not self.redis.alive():
                log.error("Redis exited; stopping the stack")
                return 1
            time.sleep(0.2)
        return 0

    def _stop(self) -> None:
        for name, p, wait_s in (("workers", self.worker, GRACE_S + 15),
                                ("API", self.api, 15.0)):
            if p is None or p.poll() is not None:
                continue
            log.info("stopping the %s", name)
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(wait_s)
            except subprocess.TimeoutExpired:
                log.error("the %s did not stop in %.0f s; killing", name, wait_s)
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if self.env_file is not None:
            self.env_file.unlink(missing_ok=True)
        if self.redis is not None:
            log.info("stopping Redis (%s)", self.redis.kind)
            self.redis.stop()
        log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev up", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=os.environ.get("TASKQ_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("TASKQ_PORT", "8000")))
    parser.add_argument("--data-dir", type=Path, default=Path(".data"),
                        help="where Redis's AOF and the local API key live (default .data)")
    parser.add_argument("--redis", choices=["auto", "url", "server", "fake"], default="auto",
                        help="auto: TASKQ_REDIS_URL if it answers, else a private "
                             "redis-server, else an in-process stand-in (not durable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return Stack(args.host, args.port, args.data_dir, args.redis).run()


if __name__ == "__main__":
    raise SystemExit(main())
