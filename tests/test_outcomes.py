"""Outcomes' owner-checked calls and record lifetimes, without Redis: the script is a stand-in."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from taskq import TaskQueue, WorkerConfig, codec
from taskq.codec import Message, WorkflowRef
from taskq.deadletter import DeadEntry
from taskq.errors import Retry
from taskq.records import TaskStatus, decode_record
from taskq.retry import RetryPolicy
from taskq.scripts import StepEnd
from taskq.worker.context import Clock, Flags, WorkerContext
from taskq.worker.ledger import Delivery, Ledger
from taskq.worker.outcomes import Outcomes
from taskq.workflow.failure import step_failure


@pytest.fixture
async def app() -> AsyncIterator[TaskQueue]:
    """A TaskQueue that never connects (the scripts are stand-ins here)."""
    tq = TaskQueue("redis://127.0.0.1:1/0", prefix="outcomes", result_ttl=90)
    yield tq
    await tq.aclose()


def _outcomes(app: TaskQueue, **kwargs: Any) -> Outcomes:
    """The outcomes of worker "w1" reading queue "default" of ``app``."""
    config = WorkerConfig()
    context = WorkerContext("w1", "host", 0.0, config, {"default": app.keys("default")},
                            Clock(), Flags())
    return Outcomes(app, context, Ledger(config), **kwargs)


@pytest.fixture
def outcomes(app: TaskQueue, transitions: list[str]) -> Outcomes:
    return _outcomes(app, on_transition=transitions.append)


@pytest.fixture
def transitions() -> list[str]:
    return []


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


async def test_owned_call_counts_each_lost_lease_once_and_says_so(
        outcomes: Outcomes, sleeps: list[float], caplog: pytest.LogCaptureFixture) -> None:
    script = Script(0, 0)
    with caplog.at_level(logging.WARNING, logger="taskq.worker.outcomes"):
        assert await outcomes._owned_call(delivery(), script) == 0
    assert (script.calls, sleeps, outcomes.counters.lost_leases) == (1, [], 1)
    [lost] = [r for r in caplog.records if "lease lost" in r.getMessage()]
    assert lost.getMessage() == ("lease lost on t1: another worker owns it now; "
                                 "outcome discarded")
    assert lost.__dict__["task_id"] == "t1"
    assert await outcomes._owned_call(delivery(), Script(0, None)) is None
    assert outcomes.counters.lost_leases == 2


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


async def test_owned_call_for_an_entry_that_did_not_run_never_gives_up(
        outcomes: Outcomes, sleeps: list[float]) -> None:
    """Handing back an entry that did not run (an unknown task's deferral, a refusal) is
    retried until Redis answers: given up, the entry would return after its lease with one
    more delivery, counted as an attempt it never made."""
    script = Script(500, 5)
    assert await outcomes._owned_call(delivery(), script, ran=False) == 5
    assert script.calls == 501


async def test_owned_call_for_an_unrun_entry_hands_it_back_when_the_worker_stops(
        outcomes: Outcomes, sleeps: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[Delivery] = []

    async def release(ds: list[Delivery]) -> None:
        released.extend(ds)

    monkeypatch.setattr(outcomes, "release", release)
    d = delivery()
    script = Script(1_000, 5)

    async def stop_after_3(delay: float) -> None:
        sleeps.append(delay)
        if len(sleeps) == 3:
            outcomes.ledger.stopping = True

    monkeypatch.setattr("taskq.worker.outcomes.asyncio.sleep", stop_after_3)
    assert await outcomes._owned_call(d, script, ran=False) is None
    assert script.calls == 4 and released == [d]


async def test_records_live_for_the_task_ttl_or_the_app_ttl(
        app: TaskQueue, outcomes: Outcomes) -> None:
    @app.task(result_ttl=2.5)
    async def short() -> None: ...

    @app.task
    async def plain() -> None: ...

    assert outcomes.ttl_ms(short) == 2_500
    assert outcomes.ttl_ms(plain) == 90_000
    assert outcomes.ttl_ms(None) == 90_000


class DeadScript:
    """A stand-in dead-letter script: records its arguments, answers ``answer``."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> str | None:
        self.calls.append(kwargs)
        return self.answer


async def test_dead_letters_an_owned_entry_with_its_record_and_letter(
        app: TaskQueue, outcomes: Outcomes, transitions: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = DeadScript("9-0")
    monkeypatch.setattr(app.scripts, "dead", script)
    msg = Message("send", (1, "a"), {"k": 2}, attempts=3, enqueued_ms=1_000)
    d = Delivery("default", "5-0", 4, b"payload", task_id="t5")
    before = int(time.time() * 1000)
    await outcomes.dead(d, msg, "max_attempts", "ValueError", "bad", "tb text", 4, 2_000)
    after = int(time.time() * 1000)
    [call] = script.calls
    record = decode_record("t5", "default", call.pop("record"))
    letter = call.pop("letter")
    assert call == {"keys": app.keys("default"), "consumer": "w1", "entry_id": "5-0",
                    "deliveries": 4, "task_id": "t5", "ttl_ms": 90_000,
                    "dead_cap": app.dead_letter_cap, "slot": None}
    assert (record.status, record.task, record.args, record.kwargs, record.attempts,
            record.enqueued_ms, record.started_ms, record.error_type, record.error,
            record.traceback, record.worker) == (
        TaskStatus.DEAD, "send", [1, "a"], {"k": 2}, 4, 1_000, 2_000, "ValueError",
        "max_attempts: bad", "tb text", "w1")
    assert record.finished_ms is not None and before <= record.finished_ms <= after
    assert letter == DeadEntry(
        task_id="t5", entry="5-0", task="send", reason="max_attempts", error_type="ValueError",
        error="bad", traceback="tb text", attempts=4, enqueued_ms=1_000,
        failed_ms=record.finished_ms, worker="w1", payload=b"payload")
    assert transitions == ["before_dead"]
    assert (outcomes.counters.dead, outcomes.counters.lost_leases) == (1, 0)


async def test_dead_letters_an_undecodable_entry_with_what_is_known(
        app: TaskQueue, outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch) -> None:
    script = DeadScript("9-0")
    monkeypatch.setattr(app.scripts, "dead", script)
    d = Delivery("default", "6-0", 1, None, task_id="t6")
    await outcomes.dead(d, None, "payload_missing", "DecodeError", "gone")
    [call] = script.calls
    record = decode_record("t6", "default", call["record"])
    assert (record.status, record.task, record.args, record.kwargs, record.attempts,
            record.enqueued_ms, record.started_ms, record.error, record.traceback) == (
        TaskStatus.DEAD, None, [], {}, 0, None, None, "payload_missing: gone", None)
    assert call["letter"] == DeadEntry(
        task_id="t6", entry="6-0", task="", reason="payload_missing", error_type="DecodeError",
        error="gone", traceback="", attempts=0, enqueued_ms=0, failed_ms=record.finished_ms,
        worker="w1", payload=b"")
    assert outcomes.counters.dead == 1


async def test_dead_takes_the_attempts_of_the_message_when_none_are_given(
        app: TaskQueue, outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch) -> None:
    script = DeadScript("9-0")
    monkeypatch.setattr(app.scripts, "dead", script)
    msg = Message("send", attempts=7)
    await outcomes.dead(Delivery("default", "7-0", 8, b"", task_id="t7"), msg, "poison",
                        "Poison", "too many")
    [call] = script.calls
    assert decode_record("t7", "default", call["record"]).attempts == 7
    assert call["letter"].attempts == 7


async def test_dead_with_a_lost_lease_counts_no_dead_letter(
        app: TaskQueue, outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app.scripts, "dead", DeadScript(None))
    await outcomes.dead(Delivery("default", "8-0", 1, b"", task_id="t8"), Message("send"),
                        "max_attempts", "E", "e")
    assert (outcomes.counters.dead, outcomes.counters.lost_leases) == (0, 1)


async def test_dead_of_an_abandoned_delivery_writes_nothing(
        app: TaskQueue, outcomes: Outcomes, transitions: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = DeadScript("9-0")
    monkeypatch.setattr(app.scripts, "dead", script)
    d = Delivery("default", "9-0", 1, b"", task_id="t9", abandoned=True)
    await outcomes.dead(d, Message("send"), "max_attempts", "E", "e")
    assert (script.calls, transitions, outcomes.counters.dead) == ([], [], 0)


async def test_dead_counts_each_dead_letter_and_logs_it(
        app: TaskQueue, outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(app.scripts, "dead", DeadScript("9-0"))
    with caplog.at_level(logging.WARNING, logger="taskq.worker.outcomes"):
        await outcomes.dead(Delivery("default", "1-0", 1, b"", task_id="t1"), Message("send"),
                            "not_retryable", "E", "x" * 300)
    [warned] = caplog.records
    assert warned.getMessage() == "task t1 dead-lettered (not_retryable): " + "x" * 200 + "..."
    assert warned.__dict__["task_id"] == "t1"
    await outcomes.dead(Delivery("default", "2-0", 1, b"", task_id="t2"), Message("send"),
                        "not_retryable", "E", "e")
    assert outcomes.counters.dead == 2


async def test_dead_writes_the_task_log_line_when_it_is_on(
        app: TaskQueue, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(app.scripts, "dead", DeadScript("9-0"))
    with caplog.at_level(logging.INFO, logger="taskq.tasks"):
        logged = _outcomes(app)
        await logged.dead(Delivery("default", "3-0", 1, b"", task_id="t3"),
                          Message("send", attempts=2), "max_attempts", "E", "e")
        # a start in the future: a duration of 0 (clamped), told apart from -1 (never started)
        future = int(time.time() * 1000) + 3_600_000
        await logged.dead(Delivery("default", "4-0", 1, b"", task_id="t4"),
                          Message("send", attempts=2), "max_attempts", "E", "e", started=future)
    lines = [r.getMessage() for r in caplog.records if r.name == "taskq.tasks"]
    assert lines == ["task t3 dead task=send queue=default attempt=2 duration_ms=-1",
                     "task t4 dead task=send queue=default attempt=2 duration_ms=0"]


class ReleaseScript:
    """A stand-in hand-back script: records its arguments; raises for the entries in ``down``."""

    def __init__(self, down: set[str] | None = None) -> None:
        self.down = down or set()
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        if kwargs["entry_id"] in self.down:
            raise RedisConnectionError("connection reset")


def held(outcomes: Outcomes, d: Delivery) -> Delivery:
    outcomes.ledger.held[(d.queue, d.entry_id)] = d
    return d


async def test_release_hands_entries_back_under_the_id_of_their_task(
        app: TaskQueue, outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch) -> None:
    script = ReleaseScript()
    monkeypatch.setattr(app.scripts, "release", script)
    fresh = held(outcomes, Delivery("default", "1-0", 2, codec.encode(Message("send", (1,),
                                                                              attempts=3))))
    moved = held(outcomes, Delivery("default", "2-0", 1, codec.encode(
        Message("send", attempts=1, task_id="default:0-9"))))
    known = held(outcomes, Delivery("default", "3-0", 1, codec.encode(Message("send")),
                                    task_id="default:0-5"))
    await outcomes.release([fresh, moved, known])
    ids = ["default:1-0", "default:0-9", "default:0-5"]
    assert [c["task_id"] for c in script.calls] == ids
    assert [codec.decode(c["payload"]) for c in script.calls] == [
        Message("send", (1,), attempts=3, task_id="default:1-0"),
        Message("send", attempts=1, task_id="default:0-9"),
        Message("send", task_id="default:0-5")]
    assert script.calls[0] | {"payload": b""} == {
        "keys": app.keys("default"), "consumer": "w1", "entry_id": "1-0", "deliveries": 2,
        "task_id": "default:1-0", "payload": b"", "slot": None}
    assert [c["deliveries"] for c in script.calls] == [2, 1, 1]
    assert outcomes.ledger.held == {}


async def test_release_hands_back_undecodable_entries_as_they_are(
        app: TaskQueue, outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch) -> None:
    script = ReleaseScript()
    monkeypatch.setattr(app.scripts, "release", script)
    await outcomes.release([held(outcomes, Delivery("default", "4-0", 1, b"\xc1junk")),
                            held(outcomes, Delivery("default", "5-0", 1, None))])
    assert [(c["task_id"], c["payload"]) for c in script.calls] == [
        ("default:4-0", b"\xc1junk"), ("default:5-0", b"")]
    assert outcomes.ledger.held == {}


async def test_release_goes_on_past_a_redis_failure_and_drops_the_entry(
        app: TaskQueue, outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    script = ReleaseScript(down={"6-0"})
    monkeypatch.setattr(app.scripts, "release", script)
    with caplog.at_level(logging.WARNING, logger="taskq.worker.outcomes"):
        await outcomes.release([
            held(outcomes, Delivery("default", "6-0", 1, codec.encode(Message("send")))),
            held(outcomes, Delivery("default", "7-0", 1, codec.encode(Message("send"))))])
    assert [c["entry_id"] for c in script.calls] == ["6-0", "7-0"]
    assert [r.getMessage() for r in caplog.records] == [
        "could not hand back default:6-0 (connection reset); it returns after its lease"]
    assert outcomes.ledger.held == {}


class RetryScript:
    """A stand-in retry script: records its arguments, answers ``answer`` (a due time, or 0
    when the lease was lost)."""

    def __init__(self, answer: int) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> int:
        self.calls.append(kwargs)
        return self.answer


class DeadCall:
    """Stands in for ``Outcomes.dead``: records the arguments ``failed`` hands it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def __call__(self, *args: Any) -> None:
        self.calls.append(args)


def raised(exc: Exception) -> Exception:
    """``exc`` with a traceback, as a task's failure has one."""
    try:
        raise exc
    except Exception as caught:
        return caught


def formatted(exc: Exception) -> str:
    return "".join(traceback.format_exception(exc))


async def test_failed_schedules_the_next_attempt_with_its_record_and_payload(
        app: TaskQueue, outcomes: Outcomes, transitions: list[str],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    script = RetryScript(1_700_000_003_000)
    monkeypatch.setattr(app.scripts, "retry", script)

    @app.task(max_attempts=3, backoff=1.5, retry=RetryPolicy(jitter=0.0), result_ttl=7)
    async def send(n: int, k: int = 0) -> None: ...

    msg = Message("send", (1,), {"k": 2}, attempts=1, enqueued_ms=1_000)
    d = Delivery("default", "5-0", 4, b"payload", task_id="default:5-0")
    exc = raised(ValueError("bad input"))
    before = int(time.time() * 1000)
    with caplog.at_level(logging.INFO, logger="taskq.worker.outcomes"):
        await outcomes.failed(d, msg, send, exc, 2, 2_000)
    after = int(time.time() * 1000)
    [call] = script.calls
    record = decode_record("default:5-0", "default", call.pop("record"))
    payload = call.pop("payload")
    assert call == {"keys": app.keys("default"), "consumer": "w1", "entry_id": "5-0",
                    "deliveries": 4, "task_id": "default:5-0", "delay_ms": 3_000,
                    "ttl_ms": 7_000, "slot": None}
    assert codec.decode(payload) == Message("send", (1,), {"k": 2}, attempts=2,
                                            enqueued_ms=1_000, task_id="default:5-0")
    assert (record.status, record.task, record.args, record.kwargs, record.attempts,
            record.enqueued_ms, record.started_ms, record.error_type, record.error,
            record.traceback, record.worker, record.result) == (
        TaskStatus.FAILED, "send", [1], {"k": 2}, 2, 1_000, 2_000, "ValueError", "bad input",
        formatted(exc), "w1", None)
    assert "ValueError: bad input" in formatted(exc)
    assert record.finished_ms is not None and before <= record.finished_ms <= after
    assert transitions == ["before_retry"]
    assert (outcomes.counters.failed, outcomes.counters.retried, outcomes.counters.dead,
            outcomes.counters.lost_leases) == (1, 1, 0, 0)
    [info] = [r for r in caplog.records if r.name == "taskq.worker.outcomes"]
    assert info.levelno == logging.INFO
    assert info.getMessage() == ("task default:5-0 failed (attempt 2/3: ValueError); "
                                 "retry in 3.00 s")
    assert info.__dict__["task_id"] == "default:5-0"


async def test_failed_counts_every_failure_and_retries_before_the_last_attempt(
        app: TaskQueue, outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch) -> None:
    script = RetryScript(1)
    monkeypatch.setattr(app.scripts, "retry", script)
    dead = DeadCall()
    monkeypatch.setattr(outcomes, "dead", dead)

    @app.task(max_attempts=3, backoff=0.25, retry=RetryPolicy(jitter=0.0))
    async def send() -> None: ...

    d = Delivery("default", "1-0", 1, b"", task_id="default:1-0")
    await outcomes.failed(d, Message("send"), send, raised(ValueError("x")), 1, 0)
    await outcomes.failed(d, Message("send"), send, raised(ValueError("x")), 2, 0)
    assert [c["delay_ms"] for c in script.calls] == [250, 500]
    assert dead.calls == []
    assert (outcomes.counters.failed, outcomes.counters.retried) == (2, 2)


async def test_failed_on_the_last_attempt_dead_letters_as_max_attempts(
        app: TaskQueue, outcomes: Outcomes, transitions: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = RetryScript(1)
    monkeypatch.setattr(app.scripts, "retry", script)
    dead = DeadCall()
    monkeypatch.setattr(outcomes, "dead", dead)

    @app.task(max_attempts=3)
    async def send() -> None: ...

    msg = Message("send", attempts=2)
    d = Delivery("default", "1-0", 1, b"", task_id="default:1-0")
    exc = raised(ValueError("bad input"))
    await outcomes.failed(d, msg, send, exc, 3, 2_000)
    await outcomes.failed(d, msg, send, raised(ValueError("")), 4, 2_000)
    assert dead.calls == [
        (d, msg, "max_attempts", "ValueError", "bad input", formatted(exc), 3, 2_000),
        (d, msg, "max_attempts", "ValueError", "ValueError", dead.calls[1][5], 4, 2_000)]
    assert script.calls == [] and transitions == []
    assert (outcomes.counters.failed, outcomes.counters.retried) == (2, 0)


async def test_failed_dead_letters_what_the_policy_does_not_retry_at_once(
        app: TaskQueue, outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch) -> None:
    script = RetryScript(1)
    monkeypatch.setattr(app.scripts, "retry", script)
    dead = DeadCall()
    monkeypatch.setattr(outcomes, "dead", dead)

    @app.task(max_attempts=5, retry_on=[KeyError], retry=RetryPolicy(jitter=0.0))
    async def send() -> None: ...

    d = Delivery("default", "1-0", 1, b"", task_id="default:1-0")
    await outcomes.failed(d, Message("send"), send, raised(ValueError("no")), 1, 0)
    assert [c[2:5] for c in dead.calls] == [("not_retryable", "ValueError", "no")]
    await outcomes.failed(d, Message("send"), send, raised(KeyError("k")), 1, 0)
    assert [c["delay_ms"] for c in script.calls] == [1_000]
    assert len(dead.calls) == 1


async def test_failed_retries_a_retry_request_whatever_the_policy_says(
        app: TaskQueue, outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    script = RetryScript(1)
    monkeypatch.setattr(app.scripts, "retry", script)
    dead = DeadCall()
    monkeypatch.setattr(outcomes, "dead", dead)

    @app.task(max_attempts=5, retry_on=[KeyError], backoff=4, retry=RetryPolicy(jitter=0.0))
    async def send() -> None: ...

    d = Delivery("default", "1-0", 1, b"", task_id="default:1-0")
    with caplog.at_level(logging.INFO, logger="taskq.worker.outcomes"):
        await outcomes.failed(d, Message("send"), send, raised(Retry(delay=2.5)), 1, 0)
        await outcomes.failed(d, Message("send"), send, raised(Retry(delay=-3)), 1, 0)
        await outcomes.failed(d, Message("send"), send, raised(Retry()), 2, 0)
        await outcomes.failed(d, Message("send"), send, raised(Retry(delay=0.5)), 5, 0)
    assert [c["delay_ms"] for c in script.calls] == [2_500, 0, 8_000]
    assert [decode_record("default:1-0", "default", c["record"]).error
            for c in script.calls] == ["retry requested"] * 3
    assert [c[2:5] for c in dead.calls] == [("max_attempts", "Retry", "retry requested")]
    assert [r.getMessage() for r in caplog.records] == [
        "task default:1-0 failed (attempt 1/5: Retry); retry in 2.50 s",
        "task default:1-0 failed (attempt 1/5: Retry); retry in 0.00 s",
        "task default:1-0 failed (attempt 2/5: Retry); retry in 8.00 s"]


async def test_failed_names_a_timeout_by_the_task_limit(
        app: TaskQueue, outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch) -> None:
    script = RetryScript(1)
    monkeypatch.setattr(app.scripts, "retry", script)

    @app.task(timeout=2.5)
    async def limited() -> None: ...

    @app.task
    async def unlimited() -> None: ...

    d = Delivery("default", "1-0", 1, b"", task_id="default:1-0")
    await outcomes.failed(d, Message("limited"), limited, raised(TimeoutError()), 1, 0)
    await outcomes.failed(d, Message("limited"), limited, raised(ValueError("v")), 1, 0)
    await outcomes.failed(d, Message("unlimited"), unlimited, raised(TimeoutError("t")), 1, 0)
    await outcomes.failed(d, Message("unlimited"), unlimited, raised(TimeoutError()), 1, 0)
    records = [decode_record("default:1-0", "default", c["record"]) for c in script.calls]
    assert [(r.error_type, r.error) for r in records] == [
        ("TimeoutError", "timed out after 2.5 s"), ("ValueError", "v"),
        ("TimeoutError", "t"), ("TimeoutError", "TimeoutError")]


async def test_failed_with_a_lost_lease_counts_no_retry(
        app: TaskQueue, outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(app.scripts, "retry", RetryScript(0))

    @app.task
    async def send() -> None: ...

    with caplog.at_level(logging.INFO, logger="taskq"):
        await outcomes.failed(Delivery("default", "1-0", 1, b"", task_id="default:1-0"),
                              Message("send"), send, raised(ValueError("x")), 1, 0)
    assert (outcomes.counters.failed, outcomes.counters.retried,
            outcomes.counters.lost_leases) == (1, 0, 1)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]  # the lost lease only


async def test_failed_of_an_abandoned_delivery_writes_nothing(
        app: TaskQueue, outcomes: Outcomes, transitions: list[str],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    script = RetryScript(1)
    monkeypatch.setattr(app.scripts, "retry", script)
    dead = DeadCall()
    monkeypatch.setattr(outcomes, "dead", dead)

    @app.task(max_attempts=1)
    async def send() -> None: ...

    d = Delivery("default", "1-0", 1, b"", task_id="default:1-0", abandoned=True)
    with caplog.at_level(logging.INFO, logger="taskq.worker.outcomes"):
        await outcomes.failed(d, Message("send"), send, raised(ValueError("x")), 1, 0)
        await outcomes.failed(d, Message("send"), send, raised(Retry()), 0, 0)
    assert (script.calls, dead.calls, transitions) == ([], [], [])
    assert (outcomes.counters.failed, outcomes.counters.retried) == (0, 0)
    assert [(r.getMessage(), r.__dict__["task_id"]) for r in caplog.records] == [
        ("outcome of default:1-0 discarded: it ran past the grace period and was handed "
         "back", "default:1-0")] * 2
    assert {r.levelno for r in caplog.records} == {logging.INFO}


async def test_failed_writes_the_task_log_line_and_needs_no_transition_hook(
        app: TaskQueue, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(app.scripts, "retry", RetryScript(1))

    @app.task
    async def send() -> None: ...

    with caplog.at_level(logging.INFO, logger="taskq.tasks"):
        logged = _outcomes(app)
        future = int(time.time() * 1000) + 3_600_000
        await logged.failed(Delivery("default", "3-0", 1, b"", task_id="t3"),
                            Message("send"), send, raised(ValueError("x")), 2, future)
    lines = [r.getMessage() for r in caplog.records if r.name == "taskq.tasks"]
    assert lines == ["task t3 retried task=send queue=default attempt=2 duration_ms=0"]
    assert logged.counters.retried == 1


def test_finish_hands_the_outcome_to_the_completer(
        app: TaskQueue, outcomes: Outcomes, caplog: pytest.LogCaptureFixture) -> None:
    @app.task(result_ttl=4)
    async def send() -> None: ...

    msg = Message("send", (1,), {"k": 2}, attempts=2, enqueued_ms=1_000)
    d = held(outcomes, Delivery("default", "5-0", 3, b"", task_id="default:5-0"))
    before = int(time.time() * 1000)
    with caplog.at_level(logging.INFO, logger="taskq"):
        outcomes.finish(d, msg, send, TaskStatus.SUCCEEDED, {"ok": [1]}, "c", 2, 2_000)
    after = int(time.time() * 1000)
    record = decode_record("default:5-0", "default", d.record)
    assert (record.status, record.task, record.args, record.kwargs, record.attempts,
            record.enqueued_ms, record.started_ms, record.result, record.worker,
            record.error, record.error_type) == (
        TaskStatus.SUCCEEDED, "send", [1], {"k": 2}, 2, 1_000, 2_000, {"ok": [1]}, "w1",
        None, None)
    assert record.finished_ms is not None and before <= record.finished_ms <= after
    assert (d.status, d.flags, d.ttl_ms, d.acking) == (TaskStatus.SUCCEEDED, "c", 4_000, True)
    assert list(outcomes.ledger.done) == [d]
    assert outcomes.ledger.acking == 1
    assert caplog.records == []  # the task log is off


def test_finish_of_a_moved_task_drops_its_entries_mapping(
        app: TaskQueue, outcomes: Outcomes) -> None:
    @app.task
    async def send() -> None: ...

    moved = Message("send", task_id="default:0-9")
    d = held(outcomes, Delivery("default", "5-0", 1, b"", task_id="default:0-9"))
    outcomes.finish(d, moved, send, TaskStatus.SUCCEEDED, None, "c", 1)
    d2 = held(outcomes, Delivery("default", "6-0", 1, b"", task_id="default:0-8"))
    outcomes.finish(d2, Message("send", task_id="default:0-8"), send, TaskStatus.SUCCEEDED,
                    None, "", 1)
    d3 = held(outcomes, Delivery("default", "7-0", 1, b"", task_id="default:7-0"))
    outcomes.finish(d3, Message("send"), send, TaskStatus.SUCCEEDED, None, "", 1)
    assert (d.flags, d2.flags, d3.flags) == ("ce", "e", "")
    assert d.ttl_ms == 90_000
    assert decode_record("default:0-9", "default", d.record).started_ms is None


def test_finish_of_a_cancelled_task_says_so_in_its_record(
        app: TaskQueue, outcomes: Outcomes) -> None:
    @app.task
    async def send() -> None: ...

    d = held(outcomes, Delivery("default", "5-0", 1, b"", task_id="default:5-0"))
    outcomes.finish(d, Message("send"), send, TaskStatus.CANCELLED, None, "c", 1, 2_000)
    record = decode_record("default:5-0", "default", d.record)
    assert (record.status, record.error, record.result) == (TaskStatus.CANCELLED, "cancelled",
                                                            None)
    assert d.status is TaskStatus.CANCELLED


def test_finish_of_an_abandoned_delivery_keeps_no_outcome(
        app: TaskQueue, outcomes: Outcomes, caplog: pytest.LogCaptureFixture) -> None:
    @app.task
    async def send() -> None: ...

    d = held(outcomes, Delivery("default", "5-0", 1, b"", task_id="default:5-0",
                                abandoned=True))
    with caplog.at_level(logging.INFO, logger="taskq.worker.outcomes"):
        outcomes.finish(d, Message("send", task_id="default:0-1"), send, TaskStatus.SUCCEEDED,
                        1, "", 1)
    assert (d.record, d.status, d.flags, d.acking) == (b"", TaskStatus.RUNNING, "", False)
    assert list(outcomes.ledger.done) == []
    assert [r.getMessage() for r in caplog.records] == [
        "outcome of default:5-0 discarded: it ran past the grace period and was handed back"]


def test_finish_writes_the_task_log_line_when_it_is_on(
        app: TaskQueue, caplog: pytest.LogCaptureFixture) -> None:
    @app.task
    async def send() -> None: ...

    with caplog.at_level(logging.INFO, logger="taskq.tasks"):
        logged = _outcomes(app)
        future = int(time.time() * 1000) + 3_600_000
        logged.finish(Delivery("default", "3-0", 1, b"", task_id="t3"),
                      Message("send", attempts=2), send, TaskStatus.SUCCEEDED, 1, "", 3, future)
        logged.finish(Delivery("default", "4-0", 1, b"", task_id="t4"),
                      Message("send"), send, TaskStatus.CANCELLED, 1, "", 1)
    lines = [r.getMessage() for r in caplog.records if r.name == "taskq.tasks"]
    assert lines == ["task t3 succeeded task=send queue=default attempt=3 duration_ms=0",
                     "task t4 cancelled task=send queue=default attempt=1 duration_ms=-1"]


class Seen:
    """An observer of outcomes: records what each ``ended`` call is told."""

    def __init__(self) -> None:
        self.ended_calls: list[tuple[Any, ...]] = []

    def ended(self, *args: Any) -> None:
        self.ended_calls.append(args)


async def test_observers_see_each_outcome_with_its_reason(
        app: TaskQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app.scripts, "retry", RetryScript(1))
    monkeypatch.setattr(app.scripts, "dead", DeadScript("9-0"))

    @app.task(timeout=2.5, max_attempts=2)
    async def send() -> None: ...

    @app.task(max_attempts=2)
    async def plain() -> None: ...

    seen = Seen()
    watched = _outcomes(app, observers=[seen])
    d = Delivery("default", "1-0", 1, b"", task_id="t1")
    msg = Message("send")
    await watched.failed(d, msg, send, raised(TimeoutError()), 1, 5)
    await watched.failed(d, msg, send, raised(Retry()), 1, 5)
    await watched.failed(d, msg, send, raised(ValueError("v")), 1, 5)
    await watched.failed(d, msg, plain, raised(TimeoutError("t")), 1, 5)
    await watched.failed(d, msg, send, raised(ValueError("v")), 2, 5)
    watched.finish(d, msg, send, TaskStatus.SUCCEEDED, None, "", 2, 6)
    assert seen.ended_calls == [
        ("t1", msg, "default", "retried", "timeout", 1, 5, "TimeoutError",
         "timed out after 2.5 s"),
        ("t1", msg, "default", "retried", "retry_requested", 1, 5, "Retry", "retry requested"),
        ("t1", msg, "default", "retried", "error", 1, 5, "ValueError", "v"),
        ("t1", msg, "default", "retried", "error", 1, 5, "TimeoutError", "t"),
        ("t1", msg, "default", "dead", "max_attempts", 2, 5, "ValueError", "v"),
        ("t1", msg, "default", "succeeded", "", 2, 6, "", "")]


async def test_a_slot_and_a_workflow_step_go_with_each_outcome(
        app: TaskQueue, outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch) -> None:
    retry, dead, release = RetryScript(1), DeadScript("9-0"), ReleaseScript()
    monkeypatch.setattr(app.scripts, "retry", retry)
    monkeypatch.setattr(app.scripts, "dead", dead)
    monkeypatch.setattr(app.scripts, "release", release)

    @app.task(max_attempts=2)
    async def send() -> None: ...

    ref = WorkflowRef("wf1", 2, "x", ("default",))
    msg = Message("send", workflow=ref, task_id="default:1-0")
    d = held(outcomes, Delivery("default", "1-0", 1, b"", task_id="default:1-0", slot="s1"))
    await outcomes.failed(d, msg, send, raised(ValueError("v")), 1, 0)
    await outcomes.failed(d, msg, send, raised(ValueError("v")), 2, 0)
    await outcomes.release([d])
    outcomes.finish(d, msg, send, TaskStatus.SUCCEEDED, {"r": 1}, "", 1)
    [r], [dl], [rl] = retry.calls, dead.calls, release.calls
    assert (r["slot"], dl["slot"], rl["slot"]) == ("s1", "s1", "s1")
    assert dl["step"] == ref
    assert dl["failure"] == step_failure(ref, "default:1-0", "send", "max_attempts",
                                         "ValueError", "v")
    assert d.step == StepEnd(ref, codec.pack({"r": 1}))
    plain = held(outcomes, Delivery("default", "2-0", 1, b"", task_id="default:2-0"))
    outcomes.finish(plain, Message("send"), send, TaskStatus.SUCCEEDED, 1, "", 1)
    await outcomes.dead(plain, Message("send"), "poison", "E", "e")
    assert plain.step is None
    assert "step" not in dead.calls[1] and "failure" not in dead.calls[1]
