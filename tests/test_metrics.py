"""Prometheus metrics: a worker process's ``--metrics-port`` endpoint (one per child with
``--processes``) and the API service's ``GET /metrics``."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from taskq import TaskQueue
from tests.api_fixtures import ADMIN_KEY, READ, READ_KEY, make_app, serve
from tests.apps.metrics_app import build_app
from tests.helpers import WorkerProcess, eventually

APP = "tests.apps.metrics_app:tq"


@pytest.fixture
async def app(redis_url: str, prefix: str) -> AsyncIterator[TaskQueue]:
    queue = build_app(prefix, redis_url)
    yield queue
    await queue.aclose()


def free_ports(n: int) -> int:
    """A port P such that P..P+n-1 are free now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + n > 65535:
            continue
        try:
            for p in range(base, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port range")


async def scrape(url: str, **headers: str) -> list[Sample] | None:
    """The samples at ``url``, or None while it does not answer 200."""
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            r = await client.get(url, headers=headers)
    except httpx.TransportError:
        return None
    if r.status_code != 200:
        return None
    assert r.headers["content-type"].startswith("text/plain")
    return [s for fam in text_string_to_metric_families(r.text) for s in fam.samples]


def outcomes(samples: list[Sample]) -> dict[str, float]:
    return {s.labels["outcome"]: s.value for s in samples
            if s.name == "taskq_worker_tasks_total"}


async def redis_ms(app: TaskQueue) -> int:
    sec, usec = await app.redis.time()
    return int(sec) * 1000 + int(usec) // 1000


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    for s in samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


async def test_worker_metrics_count_outcomes(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    port = free_ports(1)
    worker = worker_process(APP, "--metrics-port", str(port), "--concurrency", "4",
                            "--queues", "default")
    url = f"http://127.0.0.1:{port}/metrics"
    first = await eventually(lambda: scrape(url), timeout=20, what="the metrics endpoint")
    assert outcomes(first) == dict.fromkeys(
        ["processed", "succeeded", "failed", "retried", "dead", "lost_leases", "reclaimed",
         "deferred", "handed_back", "expired", "throttled"], 0.0)
    assert value(first, "taskq_worker_up") == 1.0
    assert value(first, "taskq_worker_concurrency") == 4.0
    up = next(s for s in first if s.name == "taskq_worker_up")
    assert up.labels["queues"] == "default"
    assert up.labels["worker"].split(":")[1] == str(worker.pid)
    assert (value(first, "taskq_worker_start_time_seconds") or 0) > 1.7e9

    mark, boom = app.get_task("mark"), app.get_task("boom")
    assert mark is not None and boom is not None
    await app.enqueue_many([mark.message(i) for i in range(5)])
    await boom.enqueue()
    # 5 marks succeed; boom runs twice: a retry, then a dead letter
    want = {"processed": 7.0, "succeeded": 5.0, "failed": 2.0, "retried": 1.0, "dead": 1.0,
            "lost_leases": 0.0, "reclaimed": 0.0, "deferred": 0.0, "handed_back": 0.0,
            "expired": 0.0, "throttled": 0.0}

    async def counted() -> list[Sample] | None:
        samples = await scrape(url)
        return samples if samples and outcomes(samples) == want else None

    done = await eventually(counted, timeout=20, what=f"outcomes {want}")
    assert value(done, "taskq_worker_in_flight") == 0.0
    assert value(done, "process_cpu_seconds_total") is not None  # the process collector

    worker.signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 30) == 0, worker.output()
    assert await scrape(url) is None  # the server stopped with the worker


async def test_each_child_of_a_supervisor_serves_its_own_port(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    base = free_ports(2)
    sup = worker_process(APP, "--processes", "2", "--metrics-port", str(base),
                         "--concurrency", "2")

    async def both() -> list[list[Sample]] | None:
        got = [await scrape(f"http://127.0.0.1:{p}/metrics") for p in (base, base + 1)]
        return [g for g in got if g is not None] if all(got) else None

    children = await eventually(both, timeout=30, what="both children's metrics")
    ids = {next(s.labels["worker"] for s in c if s.name == "taskq_worker_up") for c in children}
    assert len(ids) == 2
    sup.signal(signal.SIGTERM)
    assert await asyncio.to_thread(sup.wait, 30) == 0, sup.output()


def api_url(client: httpx.AsyncClient) -> str:
    return f"http://{client.base_url.host}:{client.base_url.port}/metrics"


async def test_api_metrics_show_queue_figures(app: TaskQueue) -> None:
    mark = app.get_task("mark")
    assert mark is not None
    await app.enqueue_many([mark.message(i) for i in range(3)])
    first_ms = int((await app.redis.xrange(app.keys("default").stream, count=1))[0][0]
                   .split(b"-")[0])
    async with serve(make_app(app)) as client:
        url = api_url(client)
        r = await client.get(url)
        assert r.status_code == 401
        assert (await client.get(url, headers={"X-API-Key": "wrong-key-0123456789"})).status_code \
            == 401
        before_ms = await redis_ms(app)
        samples = await scrape(url, **READ)
        after_ms = await redis_ms(app)
        assert samples is not None
        assert value(samples, "taskq_queue_length", queue="default") == 3.0
        assert value(samples, "taskq_queue_lag", queue="default") == 3.0
        assert value(samples, "taskq_queue_in_flight", queue="default") == 0.0
        assert value(samples, "taskq_queue_paused", queue="default") == 0.0
        assert value(samples, "taskq_queue_completed_total", queue="default") == 0.0
        # the first entry's age on the Redis clock at the moment of the scrape
        age = value(samples, "taskq_queue_oldest_waiting_age_s", queue="default")
        assert age is not None
        assert (before_ms - first_ms) / 1000 <= age <= (after_ms - first_ms) / 1000
        bearer = await scrape(url, Authorization=f"Bearer {READ_KEY}")
        admin = await scrape(url, **{"X-API-Key": ADMIN_KEY})
        assert bearer is not None and admin is not None
        await mark.enqueue(9)
        again = await scrape(url, **READ)
        assert again is not None
        assert value(again, "taskq_queue_length", queue="default") == 4.0


async def test_api_metrics_can_be_public(app: TaskQueue) -> None:
    async with serve(make_app(app, metrics_public=True)) as client:
        assert (await client.get("/queues")).status_code == 401  # the rest still needs a key
        samples = await scrape(api_url(client))
        assert samples is not None
        assert value(samples, "taskq_queue_length", queue="default") == 0.0
