"""A task whose module the worker's app never imported: the worker warns (once a minute per
name) with the fix, and the task's status says what it waits for."""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgpack
import pytest

from taskq import TaskQueue, Worker
from taskq.records import TaskStatus
from taskq.worker.unknown import UnknownNames
from tests.helpers import eventually


def _envelope(task: str) -> bytes:
    return msgpack.packb({"v": 1, "t": task, "a": [], "k": {}, "n": 0, "e": 0})  # type: ignore[no-any-return]


async def test_an_unknown_task_is_warned_about_once_with_the_fix_and_its_status_says_why(
    tq: TaskQueue, start_worker: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    entry = (await tq.redis.xadd(tq.keys("default").stream,
                                 {"m": _envelope("myapp.extra.forgotten")})).decode()
    task_id = f"default:{entry}"
    with caplog.at_level(logging.WARNING, logger="taskq.worker.outcomes"):
        worker = start_worker(tq, block_ms=100, unknown_grace_s=300)

        async def handed_back_twice() -> bool:
            return worker.counters.deferred >= 2

        await eventually(handed_back_twice, timeout=30, what="two hand-backs")
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "not registered" in r.getMessage()]
    assert len(warnings) == 1, warnings  # (once a minute per name)
    (text,) = warnings
    assert "task myapp.extra.forgotten is not registered in this worker" in text
    assert "import its module (myapp.extra?) in the worker app" in text
    assert "taskq worker myapp.tasks:tq" in text
    assert "dead-lettered as unknown_task" in text and "300 s" in text
    record = await tq.status(task_id)
    assert record.status is TaskStatus.QUEUED
    assert record.error_type == "TaskNotRegistered"
    assert record.error is not None
    assert "waiting for a worker that knows task myapp.extra.forgotten" in record.error


def test_unknown_names_warn_once_a_minute_per_name() -> None:
    names = UnknownNames(grace_s=300)
    assert names.due("a", now=0.0)
    assert not names.due("a", now=59.0)
    assert names.due("b", now=59.0)
    assert names.due("a", now=60.0)
