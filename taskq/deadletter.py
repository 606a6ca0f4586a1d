"""The dead-letter entry format: the fields of one entry of a queue's dead-letter stream.

Written by the worker (:meth:`DeadEntry.fields`, passed to the ``dead`` script) and by
``lua/reclaim.lua`` (entries deleted while pending: reason ``payload_missing``, no payload);
read by the operator view (:func:`parse`, :mod:`taskq.admin`) and replayed from ``payload``.
The field names are a stored format: change them only together with every writer and reader.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from taskq.fieldvalues import text as _text
from taskq.fieldvalues import to_int

ERROR_LIMIT = 2_000
TRACEBACK_LIMIT = 4_000
PAYLOAD_PREFIX = 1_024
"""Bytes of a ``payload_too_large`` dead letter's payload kept (with its size in
``payload_bytes``): enough to see what it was; such a dead letter cannot be replayed."""


@dataclass(frozen=True, slots=True)
class DeadEntry:
    """One dead letter as stored: why the task ended there, and its message (``payload``)."""

    task_id: str
    entry: str
    task: str
    reason: str
    error_type: str
    error: str
    traceback: str
    attempts: int
    enqueued_ms: int | None
    failed_ms: int | None
    worker: str
    payload: bytes
    payload_bytes: int = 0
    """The payload's size when ``payload`` holds only its first bytes (0: it is whole)."""

    @property
    def truncated(self) -> bool:
        """Only the first bytes of the payload were kept: the task cannot be replayed."""
        return self.payload_bytes > len(self.payload)

    def bounded(self) -> DeadEntry:
        """This dead letter with at most :data:`PAYLOAD_PREFIX` bytes of a payload that was
        refused as too large (``reason`` ``payload_too_large``); any other unchanged."""
        if self.reason != "payload_too_large" or len(self.payload) <= PAYLOAD_PREFIX:
            return self
        return replace(self, payload=self.payload[:PAYLOAD_PREFIX],
                       payload_bytes=len(self.payload))

    def fields(self) -> dict[str, str | bytes | int]:
        """The stream entry's field/value pairs (error and traceback truncated)."""
        out: dict[str, str | bytes | int] = {
            "id": self.task_id, "entry": self.entry, "task": self.task, "reason": self.reason,
            "error_type": self.error_type, "error": self.error[:ERROR_LIMIT],
            "traceback": self.traceback[-TRACEBACK_LIMIT:], "attempts": self.attempts,
            "enqueued_ms": self.enqueued_ms or 0, "failed_ms": self.failed_ms or 0,
            "worker": self.worker, "payload": self.payload,
        }
        if self.payload_bytes:
            out["payload_bytes"] = self.payload_bytes
        return out


def parse(fields: dict[bytes, bytes]) -> DeadEntry:
    """A dead letter's fields as read from Redis; missing ones read as empty (or None for
    times: ``enqueued_ms`` 0 means unknown)."""
    return DeadEntry(
        task_id=_text(fields.get(b"id")), entry=_text(fields.get(b"entry")),
        task=_text(fields.get(b"task")), reason=_text(fields.get(b"reason")),
        error_type=_text(fields.get(b"error_type")), error=_text(fields.get(b"error")),
        traceback=_text(fields.get(b"traceback")),
        attempts=to_int(fields.get(b"attempts"), None) or 0,
        enqueued_ms=to_int(fields.get(b"enqueued_ms"), None) or None,
        failed_ms=to_int(fields.get(b"failed_ms"), None), worker=_text(fields.get(b"worker")),
        payload=fields.get(b"payload") or b"",
        payload_bytes=to_int(fields.get(b"payload_bytes"), None) or 0,
    )


def task_of(fields: dict[bytes, bytes]) -> str:
    """The task name of a dead letter (for filtering without a full parse)."""
    return _text(fields.get(b"task"))


