"""Admission: the pure check of one delivered entry before it may run (no I/O, no state).

In order: the payload is there and within the size limit, decodes, carries a task id of its own
queue (if any), names a registered task, has attempts left counting deliveries to workers that
died (poison that kills its process ends here), was not cancelled, and its arguments validate.
The answer is :class:`Ready` (run it), :class:`Refused` (dead-letter it with a reason) or
:class:`Cancelled` (finish it as cancelled without running). Named tuples, not dataclasses:
one is made per task on the worker's hot path.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any, NamedTuple

from taskq import codec, ids
from taskq.codec import Message
from taskq.errors import DecodeError, TaskValidationError
from taskq.task import Task


class Ready(NamedTuple):
    """An entry that passed its checks: what its run needs."""

    task_id: str
    msg: Message
    task: Task[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    attempt: int


class Refused(NamedTuple):
    """An entry that cannot run: it goes to the dead letters with this reason."""

    task_id: str
    msg: Message | None
    reason: str
    error_type: str
    error: str
    attempts: int | None = None


class Cancelled(NamedTuple):
    """An entry whose task was cancelled before it ran: finished as cancelled."""

    task_id: str
    msg: Message
    task: Task[Any, Any]
    attempts: int  # runs before this delivery


Admission = Ready | Refused | Cancelled


def admit(queue: str, entry_id: str, deliveries: int, payload: bytes | None,
          registry: Mapping[str, Task[Any, Any]], max_payload_bytes: int,
          cancels: Container[str]) -> Admission:
    """Check the entry ``entry_id`` of ``queue``, delivered ``deliveries`` times (1: first
    read), against the tasks of ``registry`` and the cancelled task ids ``cancels``."""
    task_id = ids.task_id(queue, entry_id)
    if payload is None:
        return Refused(task_id, None, "decode_error", "DecodeError", "entry has no 'm' field")
    if len(payload) > max_payload_bytes:
        return Refused(task_id, None, "payload_too_large", "PayloadTooLarge",
                       f"{len(payload)} bytes > limit {max_payload_bytes}")
    try:
        msg = codec.decode(payload)
    except DecodeError as exc:
        return Refused(task_id, None, "decode_error", "DecodeError", str(exc))
    if msg.task_id is not None:
        if ids.split(msg.task_id)[0] != queue:
            return Refused(task_id, None, "decode_error", "DecodeError",
                           f"task id {msg.task_id!r} belongs to another queue")
        task_id = msg.task_id
    task = registry.get(msg.task)
    if task is None:
        return Refused(task_id, msg, "unknown_task", "TaskNotRegistered",
                       f"task {msg.task!r} is not registered with this worker")
    runs_before = msg.attempts + deliveries - 1
    if runs_before >= task.options.max_attempts:
        return Refused(task_id, msg, "worker_lost", "WorkerLost",
                       f"its worker was lost during {deliveries - 1} deliveries; "
                       f"{runs_before} of {task.options.max_attempts} attempts used",
                       runs_before)
    if task_id in cancels:
        return Cancelled(task_id, msg, task, runs_before)
    try:
        args, kwargs = task.signature.for_call(msg.args, msg.kwargs)
    except TaskValidationError as exc:
        return Refused(task_id, msg, "invalid_args", "TaskValidationError", str(exc))
    return Ready(task_id, msg, task, args, kwargs, runs_before + 1)
