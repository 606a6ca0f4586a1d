"""Admission, the pure check of one delivered entry: each answer (ready, refused with its reason,
cancelled) and the order of the checks, without Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from taskq import DecodeError, Message, TaskQueue, TaskValidationError, codec
from taskq.worker.admission import Cancelled, Ready, Refused, admit

ENTRY = "1700000000000-7"
DEFAULT_ID = f"default:{ENTRY}"
OWN_ID = "default:1700000000000-d00ff"


@pytest.fixture
def tq() -> Iterator[TaskQueue]:
    """An app with one task; its Redis is never contacted (nothing here does I/O)."""
    app = TaskQueue("redis://127.0.0.1:1/0", max_payload_bytes=1_000)

    @app.task(name="add", max_attempts=3)
    def add(a: int, b: int) -> int:
        return a + b

    yield app
    assert app._client is None  # admission made no connection


def check(tq: TaskQueue, payload: bytes | None, deliveries: int = 1,
          cancels: frozenset[str] = frozenset()) -> Any:
    return admit("default", ENTRY, deliveries, payload, tq.registry, tq.max_payload_bytes,
                 cancels)


def enc(task: str = "add", args: tuple[Any, ...] = (1, 2), kwargs: dict[str, Any] | None = None,
        attempts: int = 0, task_id: str | None = None) -> bytes:
    return codec.encode(Message(task, args, kwargs or {}, attempts=attempts,
                                enqueued_ms=1_700_000_000_000, task_id=task_id))


# -- ready ----------------------------------------------------------------------------------


def test_a_valid_entry_is_ready_with_its_bound_arguments(tq: TaskQueue) -> None:
    r = check(tq, enc(args=(1,), kwargs={"b": 2}))
    assert type(r) is Ready
    assert r.task_id == DEFAULT_ID  # no id of its own: the queue and the stream entry
    assert r.task is tq.registry["add"]
    assert (r.msg.task, r.msg.args, r.msg.kwargs) == ("add", (1,), {"b": 2})
    assert r.task.fn(*r.args, **r.kwargs) == 3
    assert r.attempt == 1


def test_an_entry_with_its_own_task_id_keeps_it(tq: TaskQueue) -> None:
    r = check(tq, enc(task_id=OWN_ID, attempts=1))
    assert type(r) is Ready
    assert r.task_id == OWN_ID
    assert r.attempt == 2  # a retry: one attempt made before


def test_the_same_entry_gives_the_same_answer(tq: TaskQueue) -> None:
    payload = enc()
    assert check(tq, payload) == check(tq, payload)


# -- refused --------------------------------------------------------------------------------


def test_an_entry_without_payload_is_refused_as_undecodable(tq: TaskQueue) -> None:
    r = check(tq, None)
    assert r == Refused(DEFAULT_ID, None, "decode_error", "DecodeError",
                        "entry has no 'm' field")


def test_size_is_checked_before_decoding(tq: TaskQueue) -> None:
    r = check(tq, b"\xc1" * 1_001)  # too large, and not msgpack either
    assert type(r) is Refused
    assert (r.task_id, r.reason, r.error_type, r.msg) == (DEFAULT_ID, "payload_too_large",
                                                          "PayloadTooLarge", None)
    assert r.error == "1001 bytes > limit 1000"
    assert type(check(tq, b"\xc1" * 1_000)) is Refused  # at the limit: decoded (and refused)
    assert check(tq, b"\xc1" * 1_000).reason == "decode_error"


@pytest.mark.parametrize("payload", [b"\xc1", b"not msgpack at all", msgpack.packb([1, 2]),
                                     msgpack.packb({"v": 1})])
def test_undecodable_entries_are_refused(tq: TaskQueue, payload: bytes) -> None:
    r = check(tq, payload)
    assert type(r) is Refused
    assert (r.task_id, r.msg, r.reason, r.error_type) == (DEFAULT_ID, None, "decode_error",
                                                          "DecodeError")
    with pytest.raises(DecodeError) as decoding:
        codec.decode(payload)
    assert r.error == str(decoding.value) and r.error  # the decoder's own account


def test_a_task_id_of_another_queue_is_refused(tq: TaskQueue) -> None:
    r = check(tq, enc(task_id="other:1700000000000-d00ff"))
    assert type(r) is Refused
    assert (r.task_id, r.msg, r.reason, r.error_type) == (DEFAULT_ID, None, "decode_error",
                                                          "DecodeError")
    assert r.error == "task id 'other:1700000000000-d00ff' belongs to another queue"


def test_an_unregistered_task_is_refused(tq: TaskQueue) -> None:
    r = check(tq, enc(task="nope", task_id=OWN_ID))
    assert type(r) is Refused
    assert (r.task_id, r.reason, r.error_type) == (OWN_ID, "unknown_task", "TaskNotRegistered")
    assert r.msg is not None and r.msg.task == "nope"
    assert r.error == "task 'nope' is not registered with this worker"
    assert r.attempts is None


def test_invalid_arguments_are_refused(tq: TaskQueue) -> None:
    payload = enc(args=("x", "y"))
    r = check(tq, payload)
    assert type(r) is Refused
    assert (r.task_id, r.msg) == (DEFAULT_ID, codec.decode(payload))  # kept for a replay
    assert (r.reason, r.error_type) == ("invalid_args", "TaskValidationError")
    with pytest.raises(TaskValidationError) as binding:
        tq.registry["add"].signature.for_call(("x", "y"), {})
    assert r.error == str(binding.value) and r.error
    r = check(tq, enc(args=(1, 2), kwargs={"c": 3}))
    assert type(r) is Refused and r.reason == "invalid_args"


# -- delivery count (poison) ----------------------------------------------------------------


@pytest.mark.parametrize(("attempts", "deliveries", "ready"), [
    (0, 1, True), (0, 3, True), (0, 4, False), (2, 1, True), (2, 2, False), (1, 3, False),
])
def test_deliveries_to_lost_workers_use_up_attempts(tq: TaskQueue, attempts: int,
                                                     deliveries: int, ready: bool) -> None:
    """``add`` has 3 attempts; each delivery beyond the first was to a worker that died."""
    payload = enc(attempts=attempts)
    r = check(tq, payload, deliveries=deliveries)
    runs_before = attempts + deliveries - 1
    if ready:
        assert type(r) is Ready and r.attempt == runs_before + 1
    else:
        assert type(r) is Refused
        assert (r.reason, r.error_type, r.attempts) == ("worker_lost", "WorkerLost", runs_before)
        assert (r.task_id, r.msg) == (DEFAULT_ID, codec.decode(payload))  # kept for a replay
        assert r.error == (f"its worker was lost during {deliveries - 1} deliveries; "
                           f"{runs_before} of 3 attempts used")


# -- cancelled ------------------------------------------------------------------------------


def test_a_cancelled_task_is_not_run(tq: TaskQueue) -> None:
    payload = enc(attempts=1, task_id=OWN_ID)
    r = check(tq, payload, cancels=frozenset({OWN_ID}))
    assert r == Cancelled(OWN_ID, codec.decode(payload), tq.registry["add"], 1)
    assert type(check(tq, payload, cancels=frozenset({DEFAULT_ID}))) is Ready  # another id


def test_cancellation_is_checked_after_poison_and_before_arguments(tq: TaskQueue) -> None:
    cancels = frozenset({DEFAULT_ID})
    poison = check(tq, enc(), deliveries=4, cancels=cancels)
    assert type(poison) is Refused and poison.reason == "worker_lost"
    bad_args = check(tq, enc(args=("x", "y")), cancels=cancels)
    assert type(bad_args) is Cancelled
