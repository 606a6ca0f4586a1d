"""Outcomes' owner-checked calls and record lifetimes, without Redis: the script is a stand-in."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from taskq import TaskQueue, WorkerConfig
from taskq.worker.context import Clock, Flags, WorkerContext
from taskq.worker.ledger import Delivery, Ledger
from taskq.worker.outcomes import Outcomes


@pytest.fixture
async def app() -> AsyncIterator[TaskQueue]:
    """A TaskQueue that never connects (the scripts are stand-ins here)."""
    tq = TaskQueue("redis://127.0.0.1:1/0", prefix="outcomes", result_ttl=90)
    yield tq
    await tq.aclose()


@pytest.fixture
def outcomes(app: TaskQueue) -> Outcomes:
    config = WorkerConfig()
    context = WorkerContext("w1", "host", 0.0, config, {"default": app.keys("default")},
                            Clock(), Flags())
    return Outcomes(app, context, Ledger(config))


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff delays ``_owned_call`` asks for (recorded, not slept)."""
    asked: list[float] = []

    async def sleep(delay: float) -> None:
        asked.append(delay)

    monkeypatch.setattr("taskq.worker.outcomes.asyncio.sleep", sleep)
    return asked


def delivery() -> Delivery:
    return Delivery("default", "1-0", 1, b"", task_id="t1")


class Script:
    """A stand-in owner-checked script: fails ``failures`` times, then answers ``answer``."""

    def __init__(self, failures: int, answer: object) -> None:
        self.failures = failures
        self.answer = answer
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        if self.calls <= self.failures:
            raise RedisConnectionError("connection reset")
        return self.answer


async def test_owned_call_returns_the_answer_of_an_owned_entry(
        outcomes: Outcomes, sleeps: list[float]) -> None:
    script = Script(0, 1_700_000_000_123)
    assert await outcomes._owned_call(delivery(), script) == 1_700_000_000_123
    assert (script.calls, sleeps, outcomes.counters.lost_leases) == (1, [], 0)


async def test_owned_call_counts_a_lost_lease_once_and_says_so(
        outcomes: Outcomes, sleeps: list[float], caplog: pytest.LogCaptureFixture) -> None:
    script = Script(0, 0)
    with caplog.at_level(logging.WARNING, logger="taskq.worker.outcomes"):
        assert await outcomes._owned_call(delivery(), script) == 0
    assert (script.calls, sleeps, outcomes.counters.lost_leases) == (1, [], 1)
    [lost] = [r for r in caplog.records if "lease lost" in r.getMessage()]
    assert lost.getMessage() == ("lease lost on t1: another worker owns it now; "
                                 "outcome discarded")
    assert lost.__dict__["task_id"] == "t1"


async def test_owned_call_retries_connection_errors_with_capped_doubling_backoff(
        outcomes: Outcomes, sleeps: list[float], caplog: pytest.LogCaptureFixture) -> None:
    script = Script(7, 5)
    with caplog.at_level(logging.WARNING, logger="taskq.worker.outcomes"):
        assert await outcomes._owned_call(delivery(), script) == 5
    assert script.calls == 8
    assert sleeps == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert outcomes.counters.lost_leases == 0
    retries = [r.getMessage() for r in caplog.records]
    assert retries == ["finishing t1 failed (connection reset); retrying"] * 7


async def test_owned_call_gives_up_after_80_attempts(
        outcomes: Outcomes, sleeps: list[float]) -> None:
    script = Script(1_000, 5)
    assert await outcomes._owned_call(delivery(), script) is None
    assert script.calls == 80
    assert len(sleeps) == 80
    assert outcomes.counters.lost_leases == 0


async def test_owned_call_succeeds_on_the_last_of_80_attempts(
        outcomes: Outcomes, sleeps: list[float]) -> None:
    script = Script(79, 5)
    assert await outcomes._owned_call(delivery(), script) == 5
    assert script.calls == 80


async def test_records_live_for_the_task_ttl_or_the_app_ttl(
        app: TaskQueue, outcomes: Outcomes) -> None:
    @app.task(result_ttl=2.5)
    async def short() -> None: ...

    @app.task
    async def plain() -> None: ...

    assert outcomes.ttl_ms(short) == 2_500
    assert outcomes.ttl_ms(plain) == 90_000
    assert outcomes.ttl_ms(None) == 90_000
