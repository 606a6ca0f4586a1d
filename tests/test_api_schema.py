"""Schemathesis over the service's OpenAPI schema with a valid admin key: no 5xx, bounded so it
fits CI (a few dozen examples per operation, no deadline). The service runs as ``python -m
api`` (the real entry point) against the real Redis, under a key prefix of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api_fixtures import ADMIN, ADMIN_KEY, READ_KEY, free_port
from tests.helpers import ROOT

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def service(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    port = free_port()
    env = {**os.environ, "TEST_PREFIX": prefix, "TASKQ_REDIS_URL": redis_url,
           "TASKQ_APP": "tests.apps.api_tasks:tq", "TASKQ_API_KEYS": ADMIN_KEY,
           "TASKQ_API_READ_KEYS": READ_KEY, "TASKQ_WAIT_MAX_S": "0.5",
           "TASKQ_MAX_BODY_BYTES": "65536", "TASKQ_LOG_LEVEL": "WARNING"}
    log = tmp_path_factory.mktemp("api") / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "api", "--port", str(port)], cwd=ROOT,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/v1/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(15)
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"*{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def test_no_server_errors(service: str) -> None:
    # Driven with Hypothesis directly: schemathesis's pytest fixture mode does not work with
    # pytest 9 (AttributeError on Function._nodeid).
    api = schemathesis.openapi.from_url(service + "/openapi.json", headers=ADMIN)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 15
    calls = 0

    for operation in operations:

        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=service, headers=ADMIN, timeout=10)
            assert response.status_code < 500, (case.method, case.formatted_path,
                                                 response.text)

        check()
    print(f"schemathesis: {calls} calls over {len(operations)} operations")
    assert calls >= len(operations)
