"""The operator view of tasks: one task's record, a queue's tasks by status, cancelling."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq import ids, state
from taskq.admin._redis import require_queue
from taskq.errors import TaskNotFound
from taskq.records import TaskRecord, TaskStatus

if TYPE_CHECKING:
    from taskq.queue import TaskQueue


async def list_tasks(
    tq: TaskQueue, name: str, status: TaskStatus | str | None = None, limit: int = 50
) -> list[TaskRecord]:
    """Tasks of a queue by status, as the read model sees them (:func:`taskq.state.list_tasks`):
    ``queued``, ``running``, ``failed``, or recent ``succeeded``/``dead``/``cancelled``/
    ``expired``."""
    keys = await require_queue(tq, name)
    return await state.list_tasks(tq.redis, keys, status, limit, result_ttl_ms=tq.result_ttl_ms)


async def task_record(tq: TaskQueue, task_id: str) -> TaskRecord:
    """Everything known of a task; raises TaskNotFound."""
    return await tq.status(task_id)


async def cancel(tq: TaskQueue, task_id: str) -> str:
    """'delayed' or 'queued' (removed before it ran), 'running' (its worker is asked to stop),
    or 'unknown' (it already ended); raises TaskNotFound for a string that is no task id."""
    if not ids.is_task_id(task_id):
        raise TaskNotFound(task_id)
    return await tq.cancel(task_id)
