"""Task status and records.

Records live in bucket hashes: ``{prefix:queue}:rec:<n>`` holds the records of every task whose
id time falls in bucket ``n`` (``BUCKET_MS`` wide), one field per task. A batch of completions
then costs one HSET per bucket instead of one key per task; each write extends the bucket's TTL
to at least the record TTL, so a record lives at least that long after its last change.

A record is written when a task leaves the happy path or ends: failed (will retry), succeeded,
dead, cancelled. ``queued`` and ``running`` are read from the stream itself (an entry not yet
delivered, or pending in the group), so the hot path writes nothing extra.

A task that ends while Redis is out of memory gets a lean record, ``{"s": status, "m": 1}``
(written by ``lua/complete.lua``): it decodes with ``result_dropped`` set and nothing else known.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from taskq import ids
from taskq.codec import pack, unpack
from taskq.errors import DecodeError
from taskq.keys import QueueKeys

BUCKET_MS = 10_000
TRACEBACK_LIMIT = 4_000


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # not started before its expiry (``with_options(expires=...)``)


TERMINAL_STATUSES = frozenset({TaskStatus.SUCCEEDED, TaskStatus.DEAD, TaskStatus.CANCELLED,
                               TaskStatus.EXPIRED})


def bucket_key(keys: QueueKeys, task_id: str) -> str:
    return keys.records(ids.time_ms(task_id) // BUCKET_MS)


def bucket_of_entry(keys: QueueKeys, entry_id: str) -> str:
    """The bucket of a task whose id is "<queue>:<entry_id>" (no parsing of the id)."""
    return keys.records(int(entry_id.partition("-")[0]) // BUCKET_MS)


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """What is known of one task. ``to_dict`` is the stable JSON shape of the CLI and the API.

    ``result_dropped``: the task ended while Redis was out of memory, and its record kept only
    its status (no result, arguments, error or timings)."""

    id: str
    queue: str
    status: TaskStatus
    task: str | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    enqueued_ms: int | None = None
    started_ms: int | None = None
    finished_ms: int | None = None
    run_at_ms: int | None = None
    result: Any = None
    error_type: str | None = None
    error: str | None = None
    traceback: str | None = None
    progress: float | None = None
    progress_message: str | None = None
    worker: str | None = None
    entry_id: str | None = None
    deliveries: int | None = None
    result_dropped: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = str(self.status)
        return d


def encode_record(
    status: TaskStatus,
    *,
    task: str | None = None,
    args: list[Any] | tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    attempts: int = 0,
    enqueued_ms: int | None = None,
    started_ms: int | None = None,
    finished_ms: int | None = None,
    run_at_ms: int | None = None,
    result: Any = None,
    error_type: str | None = None,
    error: str | None = None,
    traceback: str | None = None,
    worker: str | None = None,
) -> bytes:
    """A record's bytes: short keys, absent values left out (the worker writes one per task,
    so this is on the hot path: plain tests, no intermediate dicts)."""
    body: dict[str, Any] = {"s": status._value_, "n": attempts}
    if task is not None:
        body["t"] = task
    if args:
        body["a"] = args  # a tuple packs as an array
    if kwargs:
        body["k"] = kwargs
    if enqueued_ms is not None:
        body["e"] = enqueued_ms
    if started_ms is not None:
        body["st"] = started_ms
    if finished_ms is not None:
        body["f"] = finished_ms
    if run_at_ms is not None:
        body["ra"] = run_at_ms
    if result is not None:
        body["r"] = result
    if error_type is not None:
        body["et"] = error_type
    if error is not None:
        body["em"] = error
    if traceback:
        body["tb"] = traceback[-TRACEBACK_LIMIT:]
    if worker is not None:
        body["w"] = worker
    return pack(body)


def decode_record(task_id: str, queue: str, data: bytes) -> TaskRecord:
    body = unpack(data)
    if not isinstance(body, dict) or "s" not in body:
        raise DecodeError(f"record of {task_id} is not a record")
    return TaskRecord(
        id=task_id,
        queue=queue,
        status=TaskStatus(body["s"]),
        task=body.get("t"),
        args=list(body.get("a") or []),
        kwargs=dict(body.get("k") or {}),
        attempts=int(body.get("n", 0)),
        enqueued_ms=body.get("e"),
        started_ms=body.get("st"),
        finished_ms=body.get("f"),
        run_at_ms=body.get("ra"),
        result=body.get("r"),
        error_type=body.get("et"),
        error=body.get("em"),
        traceback=body.get("tb"),
        worker=body.get("w"),
        result_dropped=bool(body.get("m")),
    )
