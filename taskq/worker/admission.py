"""Admission: the pure check of one delivered entry before it may run (no I/O, no state).

In order: the payload is there and within the size limit, decodes, carries a task id of its own
queue (if any), names a registered task (an unknown name is :class:`Deferred` while the deploy
grace lasts, counted from the first worker that did not know it), has not expired (else
:class:`Expired`), has attempts left counting deliveries to workers that
died (poison that kills its process ends here), was not cancelled, and its arguments validate.
The answer is :class:`Ready` (run it), :class:`Refused` (dead-letter it with a reason) or
:class:`Cancelled` (finish it as cancelled without running). Named tuples, not dataclasses:
one is made per task on the worker's hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from dataclasses import replace
from typing import Any, NamedTuple

from taskq import codec, ids
from taskq.codec import Message
from taskq.errors import DecodeError, TaskValidationError
from taskq.options import SendOptions
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


class Expired(NamedTuple):
    """An entry whose expiry passed before it started: finished as expired, never run."""

    task_id: str
    msg: Message
    task: Task[Any, Any]
    attempts: int


class Deferred(NamedTuple):
    """An entry naming a task this worker does not know, within the deploy grace: handed back
    for ``delay_ms`` without using an attempt (a newer worker may know it)."""

    task_id: str
    msg: Message  # its options carry the time it was first found unknown
    delay_ms: int


Admission = Ready | Refused | Cancelled | Expired | Deferred
UNKNOWN_RETRY_MS = 5_000
"""How long an unknown task waits between two looks, during the deploy grace."""


def _no_clock() -> int:
    raise RuntimeError("admit() needs now_ms for entries with an expiry or a deploy grace")


def admit(queue: str, entry_id: str, deliveries: int, payload: bytes | None,
          registry: Mapping[str, Task[Any, Any]], max_payload_bytes: int,
          cancels: Container[str], now_ms: Callable[[], int] = _no_clock,
          unknown_grace_ms: int = 0) -> Admission:
    """Check the entry ``entry_id`` of ``queue``, delivered ``deliveries`` times (1: first
    read), against the tasks of ``registry`` and the cancelled task ids ``cancels``.
    ``now_ms``: the Redis clock (read only for an entry with an expiry, or an unknown task
    while ``unknown_grace_ms`` > 0)."""
    task_id = ids.task_id(queue, entry_id)
    if payload is None:
        return Refused(task_id, None, "decode_error", "DecodeError", "entry has no 'm' field")
    if len(payload) > max_payload_bytes:
        return _too_large(queue, task_id, payload, max_payload_bytes)
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
        return _unknown(task_id, msg, now_ms, unknown_grace_ms)
    opts = msg.options
    if opts is not None and opts.expires_ms is not None and now_ms() >= opts.expires_ms:
        return Expired(task_id, msg, task, msg.attempts)
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


def _too_large(queue: str, task_id: str, payload: bytes, limit: int) -> Refused:
    """A payload over the size limit, refused; still decoded (when it can be) to learn which
    task it is (its own id once it has moved: a retried task, a workflow step) and what ends
    with it (a workflow step fails its workflow, a unique key is released), else a step whose
    input made it too large would leave its workflow running for ever. Its arguments are not
    kept (the record stays small)."""
    msg = None
    try:
        decoded = codec.decode(payload)
        if decoded.task_id is None or ids.split(decoded.task_id)[0] == queue:
            msg = replace(decoded, args=(), kwargs={})
            task_id = decoded.task_id or task_id
    except (DecodeError, ValueError):
        pass
    return Refused(task_id, msg, "payload_too_large", "PayloadTooLarge",
                   f"{len(payload)} bytes > limit {limit}")


def _unknown(task_id: str, msg: Message, now_ms: Callable[[], int],
             grace_ms: int) -> Deferred | Refused:
    """An unregistered task name: deferred while the deploy grace lasts, then refused."""
    if grace_ms > 0:
        now = now_ms()
        opts = msg.options or SendOptions()
        since = opts.unknown_since_ms if opts.unknown_since_ms is not None else now
        if now - since < grace_ms:
            marked = replace(msg, options=replace(opts, unknown_since_ms=since))
            return Deferred(task_id, marked, min(UNKNOWN_RETRY_MS, grace_ms - (now - since)))
        return Refused(task_id, msg, "unknown_task", "TaskNotRegistered",
                       f"task {msg.task!r} is not registered with this worker (no worker knew "
                       f"it for {(now - since) / 1000:.0f} s, the deploy grace)")
    return Refused(task_id, msg, "unknown_task", "TaskNotRegistered",
                   f"task {msg.task!r} is not registered with this worker")
