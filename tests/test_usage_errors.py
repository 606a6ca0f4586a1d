"""Mistakes a new user makes in Python get a clear taskq error (each also the built-in
exception code may already catch): negative delays, naive times, unknown priorities, a plain
function in enqueue_many, a context task called without its context, arguments with several
errors at once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from taskq import (
    ContextMissing,
    InvalidOption,
    NotAMessage,
    TaskContext,
    TaskqError,
    TaskQueue,
    TaskValidationError,
)
from taskq.integrations.durable import DurableTaskList

tq = TaskQueue("memory://usage-errors")


@tq.task
async def send_email(to: str, subject: str, body: str = "") -> None: ...


@tq.task
async def report(ctx: TaskContext, month: str) -> str:
    return f"{ctx.task_id}:{month}"


def not_a_task(to: str) -> None: ...


@pytest.mark.parametrize("call", [
    lambda: send_email.with_options(delay=-5),
    lambda: send_email.with_options(delay=timedelta(seconds=-1)),
    lambda: send_email.with_options(priority="urgent"),  # type: ignore[arg-type]
    lambda: send_email.with_options(at=datetime(2030, 1, 1)),  # naive
    lambda: send_email.with_options(expires=datetime(2030, 1, 1)),
    lambda: send_email.with_options(key="has space"),
    lambda: send_email.with_options(unique_for=5),
    lambda: tq.enqueue_many_sync([send_email.message("a", "b")], delay=-1),
    lambda: DurableTaskList().add_delayed(-1, send_email, "a", "b"),
])
def test_a_bad_option_is_an_invalid_option_and_a_value_error(call: Any) -> None:
    with pytest.raises(InvalidOption) as exc:
        call()
    assert isinstance(exc.value, TaskqError) and isinstance(exc.value, ValueError)


def test_a_negative_delay_names_the_rule() -> None:
    with pytest.raises(ValueError, match=r"delay must be 0 or more seconds, not -5.0"):
        send_email.with_options(delay=-5)
    with pytest.raises(InvalidOption, match="delay"):
        send_email.enqueue_sync("a", "b", delay=-5)  # type: ignore[call-arg]


@pytest.mark.parametrize(("given", "named"), [
    (not_a_task, "the plain function 'not_a_task' (register it with @tq.task"),
    (send_email, "the task 'tests.test_usage_errors.send_email' itself (pass "
                 "send_email.message(...))"),
    ("send_email", "'send_email' (of type str)"),
])
def test_enqueue_many_names_what_it_was_given_instead_of_a_message(
        given: object, named: str) -> None:
    for call in (tq.enqueue_many_sync, ):
        with pytest.raises(NotAMessage) as exc:
            call([send_email.message("a", "b"), given])  # type: ignore[list-item]
        assert isinstance(exc.value, TypeError) and isinstance(exc.value, TaskqError)
        assert "takes messages built by task.message(...), not " + named in str(exc.value)


async def test_async_enqueue_many_refuses_a_plain_function_before_sending() -> None:
    with pytest.raises(NotAMessage):
        await tq.enqueue_many([not_a_task])  # type: ignore[list-item]


def test_a_context_task_called_without_its_context_says_so() -> None:
    with pytest.raises(ContextMissing) as exc:
        report("2024-01")  # type: ignore[arg-type,call-arg]
    assert isinstance(exc.value, TypeError)
    assert "report() takes a TaskContext first when called directly" in str(exc.value)


async def test_a_context_task_called_with_its_context_runs() -> None:
    """The documented direct call: the context first (built by hand, as the error says)."""
    ctx = TaskContext(task_id="t", task=report.name, queue="default", attempt=1,
                      max_attempts=1, worker_id="test")
    assert await report(ctx, "2024-01") == "t:2024-01"


def test_every_argument_error_is_reported_at_once() -> None:
    with pytest.raises(TaskValidationError) as exc:
        send_email.message(to=1)  # type: ignore[arg-type,call-arg]
    assert [(e["loc"], e["type"]) for e in exc.value.errors] == [
        (("to",), "string_type"), (("subject",), "missing")]
    with pytest.raises(TaskValidationError) as typo:
        send_email.message(to=1, subjet="x")  # type: ignore[arg-type,call-arg]
    assert sorted(e["loc"][0] for e in typo.value.errors) == ["subject", "subjet", "to"]
    with pytest.raises(TaskValidationError, match="too many positional arguments"):
        send_email.message("a", "b", "c", "d")  # type: ignore[call-arg]
