"""Task code that raises SystemExit, KeyboardInterrupt, its own BaseException or
asyncio.CancelledError ends its own attempt (a failure with the real error), never the worker
process that runs it (real worker processes; async, sync and cpu_bound tasks). A task that
exits its process with 78 does not make the supervisor stop the service: only a child that
says it cannot run with this configuration does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from taskq import TaskQueue, TaskStatus
from taskq.worker.process import EXIT_CONFIG
from tests.apps.hostile import build
from tests.helpers import WorkerProcess, eventually
from tests.support import live_children, registered_pids

HOSTILE = "tests.apps.hostile:tq"


@pytest.fixture
async def app(redis_url: str, prefix: str) -> AsyncIterator[TaskQueue]:
    queue = build(prefix, redis_url)
    yield queue
    await queue.aclose()


def _task(app: TaskQueue, name: str) -> object:
    task = app.get_task(name)
    assert task is not None
    return task


async def test_base_exceptions_from_tasks_fail_the_task_not_the_worker(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    w = worker_process(HOSTILE, "--concurrency", "16", "--lease-ms", "60000")
    # a healthy task runs beside them all along: it must finish, not wait for a lease
    ok = await _task(app, "slow_ok").enqueue("ok", 3.0)  # type: ignore[attr-defined]
    cases = {
        "exit_async": ((78,), "SystemExit", "SystemExit(78)"),
        "exit_sync": ((3,), "SystemExit", "SystemExit(3)"),
        "exit_cpu": ((78,), "SystemExit", "SystemExit(78)"),
        "interrupt": ((), "KeyboardInterrupt", "KeyboardInterrupt"),
        "interrupt_sync": ((), "KeyboardInterrupt", "KeyboardInterrupt"),
        "custom_base": ((), "Custom", "Custom(a custom BaseException)"),
        "self_cancel": ((), "CancelledError", "raised asyncio.CancelledError itself"),
    }
    handles = {name: await _task(app, name).enqueue(*args)  # type: ignore[attr-defined]
               for name, (args, _, _) in cases.items()}
    for name, (_, error_type, text) in cases.items():
        record = await handles[name].wait(timeout=60)
        assert record.status is TaskStatus.DEAD, (name, record, w.output()[-3000:])
        assert record.error_type == error_type, (name, record)
        assert record.error is not None and text in record.error, (name, record.error)
        assert record.error.startswith("not_retryable: "), (name, record.error)
        assert record.attempts == 1, (name, record)
    assert await ok.result(timeout=30) == "ok"
    assert w.proc.poll() is None, w.output()[-3000:]
    out = w.output()
    assert "internal error" not in out
    assert "raised asyncio.CancelledError itself" in out  # logged, with its task id
    assert f"task {handles['self_cancel'].id} raised" in out

    # the worker still serves: a new task runs at once
    again = await _task(app, "slow_ok").enqueue("again", 0.0)  # type: ignore[attr-defined]
    assert await again.result(timeout=30) == "again"


async def test_base_exceptions_from_result_serializers_and_hooks_end_nothing(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    """Task code the worker calls around a task: a result whose serialization raises
    SystemExit dead-letters its task as unencodable; task hooks raising SystemExit (before)
    and KeyboardInterrupt (after) are logged, and the task succeeds. The worker serves on."""
    w = worker_process(HOSTILE, "--concurrency", "4")
    unencodable = await _task(app, "exit_in_result").enqueue()  # type: ignore[attr-defined]
    hooked = await _task(app, "hooked").enqueue("h")  # type: ignore[attr-defined]
    record = await unencodable.wait(timeout=60)
    assert record.status is TaskStatus.DEAD, (record, w.output()[-3000:])
    assert record.error_type == "ResultUnencodable", record
    assert "SystemExit" in (record.error or ""), record.error
    assert await hooked.result(timeout=60) == "h", w.output()[-3000:]
    again = await _task(app, "slow_ok").enqueue("again", 0.0)  # type: ignore[attr-defined]
    assert await again.result(timeout=30) == "again"
    assert w.proc.poll() is None, w.output()[-3000:]
    out = w.output()
    assert "failed before task" in out and "failed after task" in out, out[-3000:]
    assert "internal error" not in out


async def test_a_task_exiting_78_does_not_stop_the_supervisor(
    app: TaskQueue, worker_process: Callable[..., WorkerProcess]
) -> None:
    sup = worker_process(HOSTILE, "--processes", "2", "--concurrency", "4",
                         "--lease-ms", "2000")

    async def consuming() -> set[int] | None:
        children = set(live_children(sup.pid))
        ready = children & await registered_pids(app)
        return ready if len(children) == 2 and len(ready) == 2 else None

    await eventually(consuming, timeout=30, what="two children consuming")
    doomed = await _task(app, "os_exit").enqueue(EXIT_CONFIG)  # type: ignore[attr-defined]
    record = await doomed.wait(timeout=60)  # its process died: worker_lost after its lease
    assert record.status is TaskStatus.DEAD and "worker_lost" in (record.error or ""), record
    assert sup.proc.poll() is None, sup.output()[-3000:]
    assert "cannot run with this configuration" not in sup.output()
    await eventually(consuming, timeout=30, what="the dead child replaced")
    after = await _task(app, "slow_ok").enqueue("after", 0.0)  # type: ignore[attr-defined]
    assert await after.result(timeout=30) == "after"
    assert sup.proc.poll() is None


async def test_a_child_that_cannot_run_still_stops_the_supervisor(
    worker_process: Callable[..., WorkerProcess]
) -> None:
    sup = worker_process("tests.apps.lifespan_app:tq", "--processes", "2",
                         env={"TEST_LIFESPAN_FAIL": "1"})
    code = await asyncio.to_thread(sup.wait, 90)
    assert code == EXIT_CONFIG, sup.output()[-3000:]
    out = sup.output()
    assert "cannot run with this configuration (" in out
    assert "the database is not there" in out
