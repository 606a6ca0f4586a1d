"""Per-task metrics (taskq.taskmetrics): queue wait and run time histograms and outcome counts
by task and reason, counted by the worker, served on its /metrics, published to Redis and served
summed on the API's /metrics; task labels only from the registry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from taskq import Retry, TaskQueue, Worker
from taskq.codec import Message
from taskq.taskmetrics import BOUNDS_S, OTHER, UNKNOWN, TaskMetrics, TaskSeries, parse
from taskq.worker.metrics import registry_for
from tests.api_fixtures import READ, make_app, serve
from tests.helpers import eventually


def samples(text: str) -> list[Sample]:
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples]


def value(found: list[Sample], name: str, **labels: str) -> float | None:
    for s in found:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def test_each_outcome_is_counted_under_its_task_and_reason() -> None:
    m = TaskMetrics(["send", "report"])
    now = int(time.time() * 1000)
    first = Message("send", enqueued_ms=now - 250)
    m.ended("q:1-0", first, "q", "succeeded", "", 1, now - 20, "", "")
    m.ended("q:2-0", Message("report", task_id="q:9-0"), "q", "retried", "timeout", 2, now,
            "TimeoutError", "timed out")
    m.ended("q:3-0", Message("evil-name-from-a-payload"), "q", "dead", "unknown_task", 1, None,
            "TaskNotRegistered", "x")
    m.ended("q:4-0", None, "q", "dead", "decode_error", 0, None, "DecodeError", "x")
    send = m.series[("q", "send")]
    assert send.outcomes == {"succeeded:": 1}
    assert send.wait.count == 1 and send.wait.sum_us == 230_000  # start - enqueue
    assert send.run.count == 1 and send.run.sum_us >= 19_000
    report = m.series[("q", "report")]
    assert report.outcomes == {"retried:timeout": 1}
    assert report.wait.count == 0  # a retried task has an id of its own: no wait measured
    # names not in the registry, and undecodable entries, share one label
    assert set(m.series) == {("q", "send"), ("q", "report"), ("q", UNKNOWN)}
    assert m.series[("q", UNKNOWN)].outcomes == {"dead:unknown_task": 1, "dead:decode_error": 1}


def test_histogram_buckets_are_le_bounds() -> None:
    m = TaskMetrics(["t"])
    msg = Message("t", enqueued_ms=1_000)
    for waited_ms in (0, 1, 2, 1000, 10**9):
        m.ended("x", msg, "q", "succeeded", "", 1, 1_000 + waited_ms, "", "")
    h = m.series[("q", "t")].wait
    cumulative = dict(h.cumulative())
    assert cumulative["0.001"] == 2  # 0 ms and 1 ms (le 1 ms)
    assert cumulative["0.0025"] == 3
    assert cumulative["1.0"] == 4
    assert cumulative["+Inf"] == 5 == h.count
    assert len(h.cumulative()) == len(BOUNDS_S) + 1


def test_increments_are_what_changed_since_the_last_flush() -> None:
    m = TaskMetrics(["t"])
    msg = Message("t", enqueued_ms=int(time.time() * 1000))
    m.ended("x", msg, "q", "succeeded", "", 1, msg.enqueued_ms, "", "")
    incs = m.increments()
    assert set(incs) == {"q"}
    fields = dict(incs["q"])
    assert fields["t\x1fo\x1fsucceeded:"] == 1
    assert fields["t\x1fw\x1f0"] == 1  # waited about 0 ms
    m.flushed("q", incs["q"])
    assert m.increments() == {}
    m.ended("x", msg, "q", "dead", "max_attempts", 3, None, "E", "e")
    assert m.increments() == {"q": [("t\x1fo\x1fdead:max_attempts", 1)]}
    # a publication that failed is not marked: the next one sends it again
    assert m.increments() == {"q": [("t\x1fo\x1fdead:max_attempts", 1)]}
    # what was published reads back as the series counted
    total = TaskSeries()
    parsed = parse(dict(incs["q"]) | {"t\x1fo\x1fdead:max_attempts": 1})
    total.add(parsed["t"])
    assert total.outcomes == m.series[("q", "t")].outcomes


def test_parse_skips_what_does_not_fit_and_bounds_the_task_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fields = {b"t\x1fo\x1fsucceeded:": b"3", b"t\x1fw\x1f99": b"1", b"t\x1fz\x1f0": b"1",
              b"nonsense": b"1", b"t\x1fo\x1fexploded:": b"1", b"t\x1fr\x1f0": b"x",
              b"t\x1fr\x1fsum": b"1500"}
    got = parse(fields)
    assert set(got) == {"t"}
    assert got["t"].outcomes == {"succeeded:": 3}
    assert got["t"].wait.count == 0 and got["t"].run.sum_us == 1500
    monkeypatch.setattr("taskq.taskmetrics.MAX_TASKS", 3)
    many = {f"task{i}\x1fo\x1fsucceeded:".encode(): str(i + 1).encode() for i in range(10)}
    bounded = parse(many)
    assert set(bounded) == {"task9", "task8", OTHER}  # the busiest, then the rest summed
    assert bounded[OTHER].outcomes == {"succeeded:": sum(range(1, 9))}


async def test_the_script_bounds_the_hash(tq: TaskQueue) -> None:
    keys = tq.keys("default")
    refused = await tq.scripts.task_metrics(keys=keys, increments=[("a", 1), ("b", 2)],
                                            max_fields=2)
    assert refused == 0
    refused = await tq.scripts.task_metrics(keys=keys, increments=[("a", 5), ("c", 1)],
                                            max_fields=2)
    assert refused == 1  # a new field past the bound; known ones still count
    assert await tq.redis.hgetall(keys.task_metrics) == {b"a": b"6", b"b": b"2"}


async def test_worker_and_api_serve_the_task_metrics(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    runs: dict[str, int] = {}

    @tq.task(name="ok")
    async def ok() -> None:
        await asyncio.sleep(0.02)

    @tq.task(name="twice", max_attempts=3)
    async def twice() -> None:
        runs["twice"] = runs.get("twice", 0) + 1
        if runs["twice"] == 1:
            raise Retry(delay=0)

    @tq.task(name="doomed", max_attempts=1)
    async def doomed() -> None:
        raise ValueError("no")

    handles = [await ok.enqueue() for _ in range(3)]
    handles += [await twice.enqueue(), await doomed.enqueue()]
    handles.append(await tq.enqueue_one(Message("nobody.knows", queue="default")))
    w = start_worker(tq, queues=("default",), unknown_grace_s=0)  # unknown: dead at once
    for h in handles:
        await tq.wait(h.id, timeout=20)

    async def counted() -> list[Sample] | None:
        found = samples(generate_latest(registry_for(w)).decode())
        done = value(found, "taskq_worker_task_outcomes_total", task=UNKNOWN)
        return found if done else None

    worker_side = await eventually(counted, timeout=10, what="the unknown task counted")
    name = "taskq_worker_task_outcomes_total"
    assert value(worker_side, name, task="ok", outcome="succeeded", queue="default") == 3
    assert value(worker_side, name, task="twice", outcome="retried",
                 reason="retry_requested") == 1
    assert value(worker_side, name, task="twice", outcome="succeeded") == 1
    assert value(worker_side, name, task="doomed", outcome="dead", reason="max_attempts") == 1
    assert value(worker_side, name, task=UNKNOWN, outcome="dead", reason="unknown_task") == 1
    assert not any("nobody" in str(s.labels) for s in worker_side)
    assert value(worker_side, "taskq_worker_task_run_seconds_count", task="ok") == 3
    assert (value(worker_side, "taskq_worker_task_run_seconds_sum", task="ok") or 0) >= 0.05
    assert value(worker_side, "taskq_worker_task_queue_wait_seconds_count", task="ok") == 3
    # twice: its first attempt waited; its retry has an id of its own and is not measured
    assert value(worker_side, "taskq_worker_task_queue_wait_seconds_count", task="twice") == 1

    await w.publisher.publish()
    async with serve(make_app(tq)) as client:
        url = f"http://{client.base_url.host}:{client.base_url.port}/metrics"
        r = await client.get(url, headers=READ)
    assert r.status_code == 200
    api_side = samples(r.text)
    assert value(api_side, "taskq_task_outcomes_total", queue="default", task="ok",
                 outcome="succeeded") == 3
    assert value(api_side, "taskq_task_outcomes_total", task=UNKNOWN,
                 reason="unknown_task") == 1
    assert value(api_side, "taskq_task_run_seconds_count", task="ok") == 3
    assert value(api_side, "taskq_task_run_seconds_bucket", task="ok", le="+Inf") == 3
    assert value(api_side, "taskq_task_queue_wait_seconds_count", task="twice") == 1
    # published once: a second publication adds nothing
    await w.publisher.publish()
    fields = await tq.redis.hgetall(tq.keys("default").task_metrics)
    assert fields[b"ok\x1fo\x1fsucceeded:"] == b"3"
