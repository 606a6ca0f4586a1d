"""The run command (``./dev up`` = ``python -m devstack``): start, enqueue over HTTP, see the
task done, stop cleanly on Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api_fixtures import free_port
from tests.helpers import ROOT, wait_sync

pytestmark = pytest.mark.slow


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, str, Path]]:
    mode: str = request.param
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env["TASKQ_PREFIX"] = f"stack{tmp_path.name[-8:]}"
    log = tmp_path / "stack.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack", "--port", str(port), "--data-dir",
             str(tmp_path / "data"), "--redis", mode],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_sync(lambda: "Ctrl-C stops everything" in log.read_text() or proc.poll() is not None,
                  timeout=60, what="stack up")
        assert proc.poll() is None, log.read_text()
        key = (tmp_path / "data" / "api-key").read_text().strip()
        yield base, key, log
        assert (tmp_path / "data" / "stack.env").is_file()  # for ./dev cli, while it runs
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, log.read_text()
        text = log.read_text()
        assert text.index("stopping the workers") < text.index("stopping the API") \
            < text.index("stopping Redis")
        assert "restarting" not in text, text  # a normal stop is not a crash
        assert not (tmp_path / "data" / "stack.env").exists()
        with pytest.raises(httpx.ConnectError):
            httpx.get(base + "/health")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_examples(base: str, key: str) -> None:
    h = {"X-API-Key": key}
    with httpx.Client(base_url=base, headers=h, timeout=30) as c:
        welcome = c.post("/enqueue/send_welcome_email", json={"email": "ada@example.com"})
        assert welcome.status_code == 202
        flaky = c.post("/enqueue/flaky", json={})
        failing = c.post("/enqueue/always_fails", json={})
        done = c.get(f"/tasks/{welcome.json()['id']}/wait", params={"timeout_s": 20})
        assert done.json()["status"] == "succeeded"
        assert done.json()["result"]["sent_to"] == "ada@example.com"
        flaky_done = c.get(f"/tasks/{flaky.json()['id']}/wait", params={"timeout_s": 20})
        assert flaky_done.json()["status"] == "succeeded"
        assert flaky_done.json()["attempts"] == 3
        dead = c.get(f"/tasks/{failing.json()['id']}/wait", params={"timeout_s": 20})
        assert dead.json()["status"] == "dead"
        letters = c.get("/queues/default/dead").json()
        assert [d["task"] for d in letters] == ["always_fails"]
        assert c.get("/registry", headers={"X-API-Key": "wrong-key-0123456789"}).status_code \
            == 401


def pasted_cli(log: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the banner's ready-to-paste lines (its exports, then the CLI path) in a shell."""
    lines = log.read_text().splitlines()
    exports = [ln.strip() for ln in lines if ln.strip().startswith("export TASKQ_")]
    (cli_line,) = [ln.strip() for ln in lines if ln.strip().endswith("/taskq queues")]
    script = "\n".join([*exports, cli_line.removesuffix(" queues") + " " + " ".join(args)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    return subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize("stack", ["server"], indirect=True)
def test_stack_with_private_redis_server(stack: tuple[str, str, Path], tmp_path: Path) -> None:
    base, key, log = stack
    run_examples(base, key)
    # the banner's lines, pasted into another shell, show this stack's queues
    pasted = pasted_cli(log, tmp_path, "queues", "--json")
    assert pasted.returncode == 0, pasted.stderr
    assert "default" in [q["name"] for q in json.loads(pasted.stdout)["queues"]], pasted.stdout
    assert "private redis-server" in log.read_text()
    assert "NOTHING IS DURABLE" not in log.read_text()
    assert (log.parent / "data" / "redis" / "appendonlydir").is_dir()


@pytest.mark.parametrize("stack", ["fake"], indirect=True)
def test_stack_with_fakeredis_stand_in_warns(stack: tuple[str, str, Path]) -> None:
    base, key, log = stack
    assert "NOTHING IS DURABLE" in log.read_text()
    run_examples(base, key)


def test_stack_refuses_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
        proc = subprocess.run(
            [sys.executable, "-m", "devstack", "--port", str(port), "--data-dir",
             str(tmp_path / "data"), "--redis", "fake"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
        )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in proc.stderr
    assert "stack is up" not in proc.stdout + proc.stderr
