"""The run command (``./dev up`` = ``python -m devstack``): start, enqueue over HTTP, see the
task done, stop cleanly on Ctrl-C (SIGINT)."""

from __future__ import annotations

import os
import signal
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
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, log.read_text()
        text = log.read_text()
        assert text.index("stopping the workers") < text.index("stopping the API") \
            < text.index("stopping Redis")
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


@pytest.mark.parametrize("stack", ["server"], indirect=True)
def test_stack_with_private_redis_server(stack: tuple[str, str, Path]) -> None:
    base, key, log = stack
    run_examples(base, key)
    assert "private redis-server" in log.read_text()
    assert "NOTHING IS DURABLE" not in log.read_text()
    assert (log.parent / "data" / "redis" / "appendonlydir").is_dir()


@pytest.mark.parametrize("stack", ["fake"], indirect=True)
def test_stack_with_fakeredis_stand_in_warns(stack: tuple[str, str, Path]) -> None:
    base, key, log = stack
    assert "NOTHING IS DURABLE" in log.read_text()
    run_examples(base, key)
