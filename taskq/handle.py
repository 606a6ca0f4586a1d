"""A handle on one enqueued task: its id, status, result and cancellation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from taskq import ids
from taskq.errors import ResultUnavailable, TaskFailed
from taskq.records import TaskRecord, TaskStatus

if TYPE_CHECKING:
    from taskq.queue import TaskQueue
    from taskq.task import Task

R = TypeVar("R")


@dataclass(slots=True, unsafe_hash=True)
class TaskHandle(Generic[R]):
    """Returned by ``enqueue``; ``id`` is stable across retries, delays and replays. Treat it
    as immutable (it hashes by its fields); not frozen only because a frozen dataclass costs
    three times as much to build, once per task of a bulk enqueue."""

    id: str
    app: TaskQueue
    task: Task[Any, R] | None = None
    run_at_ms: int | None = None
    deduplicated: bool = False
    """True when a task with the same unique key existed: this is that task's handle."""

    @property
    def queue(self) -> str:
        return ids.split(self.id)[0]

    async def status(self) -> TaskRecord:
        return await self.app.status(self.id)

    async def wait(self, timeout: float | None = None) -> TaskRecord:
        """Wait (without polling) until the task ends; returns its final record."""
        return await self.app.wait(self.id, timeout)

    async def result(self, timeout: float | None = None) -> R:
        """The task's return value; raises TaskFailed if it ended dead or cancelled,
        ResultUnavailable if it succeeded while Redis was out of memory (its result was not
        kept) and ResultTimeout if it has not ended within ``timeout`` seconds."""
        record = await self.wait(timeout)
        if record.status is not TaskStatus.SUCCEEDED:
            raise TaskFailed(self.id, str(record.status), record.error)
        if record.result_dropped:
            raise ResultUnavailable(self.id)
        adapter = self.task.signature.return_adapter if self.task is not None else None
        if adapter is not None:
            return cast(R, adapter.validate_python(record.result))
        return cast(R, record.result)

    async def cancel(self) -> str:
        """Cancel it: 'delayed' or 'queued' (removed), 'running' (asked to stop) or 'unknown'."""
        return await self.app.cancel(self.id)

    def sync(self) -> SyncTaskHandle[R]:
        """The blocking handle on the same task, for plain ``def`` code."""
        return SyncTaskHandle(self.id, self.app, self.task, self.run_at_ms, self.deduplicated)


@dataclass(slots=True, unsafe_hash=True)
class SyncTaskHandle(Generic[R]):
    """Returned by ``enqueue_sync``: the blocking twin of :class:`TaskHandle` for plain
    ``def`` code (scripts, sync routes, RQ- or Celery-style callers). Its reads run on the
    queue's private event loop thread (see :mod:`taskq.blocking`); ``close_sync`` stops it."""

    id: str
    app: TaskQueue
    task: Task[Any, R] | None = None
    run_at_ms: int | None = None
    deduplicated: bool = False

    @property
    def queue(self) -> str:
        return ids.split(self.id)[0]

    @property
    def aio(self) -> TaskHandle[R]:
        """The async handle on the same task (for code that has an event loop)."""
        return TaskHandle(self.id, self.app, self.task, self.run_at_ms, self.deduplicated)

    def status(self) -> TaskRecord:
        """Where the task is now; raises TaskNotFound for unknown or expired ids."""
        task_id = self.id
        return self.app.sync_loop.run(lambda app: app.status(task_id))

    def wait(self, timeout: float | None = None) -> TaskRecord:
        """Block until the task ends; returns its final record (ResultTimeout after
        ``timeout`` seconds)."""
        task_id = self.id
        return self.app.sync_loop.run(lambda app: app.wait(task_id, timeout))

    def result(self, timeout: float | None = None) -> R:
        """The task's return value, blocking; raises TaskFailed if it ended dead or cancelled,
        ResultUnavailable if it succeeded while Redis was out of memory (its result was not
        kept) and ResultTimeout if it has not ended within ``timeout`` seconds."""
        handle = self.aio
        return self.app.sync_loop.run(lambda app: _result(handle, app, timeout))

    def cancel(self) -> str:
        """Cancel it: 'delayed' or 'queued' (removed), 'running' (asked to stop) or 'unknown'."""
        task_id = self.id
        return self.app.sync_loop.run(lambda app: app.cancel(task_id))


async def _result(handle: TaskHandle[R], app: TaskQueue, timeout: float | None) -> R:
    """``handle.result`` read through ``app`` (the blocking thread's twin queue)."""
    return await TaskHandle(handle.id, app, handle.task, handle.run_at_ms).result(timeout)
