"""The message envelope and its msgpack encoding.

A stream entry has one field, ``m``: a msgpack map with short keys (version 1)::

    v  envelope version (1)
    t  task name
    a  positional arguments (JSON-compatible values, as validated at enqueue)
    k  keyword arguments
    n  attempts already made before this delivery (0 on the first)
    e  enqueue time, ms since the epoch (the producer's clock; informational)
    i  task id, present only when it differs from "<queue>:<entry id>" (delayed, retried,
       replayed or handed-back tasks keep the id they were given first)

Decoding never executes or imports anything named in the payload. Failures raise
:class:`~taskq.errors.DecodeError`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

import msgpack

from taskq import ids
from taskq.errors import DecodeError

VERSION = 1
FIELD = b"m"
_is_str = str.__instancecheck__  # map keys are exactly str or bytes (strict_map_key)
_MAX_DEPTH_ERRORS = (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError)


@dataclass(slots=True)
class Message:
    """One task invocation: what is enqueued, and what a worker runs. Treat it as immutable
    (``with_attempts`` and ``dataclasses.replace`` make changed copies); it is not frozen only
    because a frozen dataclass is three times slower to build, once per task in a worker."""

    task: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    enqueued_ms: int = 0
    task_id: str | None = None
    queue: str | None = None

    def with_attempts(self, attempts: int, task_id: str) -> Message:
        return replace(self, attempts=attempts, task_id=task_id)


def encode(message: Message) -> bytes:
    """Encode a message; raises :class:`DecodeError` for values msgpack cannot hold."""
    body: dict[str, Any] = {
        "v": VERSION,
        "t": message.task,
        "a": list(message.args),
        "k": message.kwargs,
        "n": message.attempts,
        "e": message.enqueued_ms,
    }
    if message.task_id is not None:
        body["i"] = message.task_id
    try:
        return _packer().pack(body)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:
        raise DecodeError(f"cannot encode arguments of task {message.task!r}: {exc}") from exc


def decode(data: bytes, max_bytes: int | None = None) -> Message:
    """Decode an envelope, checking its shape; never trusts its content."""
    if max_bytes is not None and len(data) > max_bytes:
        raise DecodeError(f"payload of {len(data)} bytes exceeds {max_bytes}")
    try:
        # msgpack >= 1.0 defaults: raw=False (str stays str), strict_map_key=True (map keys
        # only str or bytes). Passing them costs a third of the call.
        body = msgpack.unpackb(data)
    except _MAX_DEPTH_ERRORS as exc:
        raise DecodeError(f"not valid msgpack: {exc}") from exc
    except Exception as exc:  # msgpack may raise others on hostile input
        raise DecodeError(f"not valid msgpack: {type(exc).__name__}: {exc}") from exc
    if type(body) is dict:
        # The hot path: a well-formed first delivery, checked with exact types in one test;
        # anything else takes the full check, which names the fault.
        task, args, kwargs = body.get("t"), body.get("a"), body.get("k")
        attempts, enqueued = body.get("n"), body.get("e")
        if (body.get("v") == VERSION and type(task) is str and task and type(args) is list
                and type(kwargs) is dict and type(attempts) is int
                and attempts >= 0 and type(enqueued) is int and "i" not in body
                and (not kwargs or all(map(_is_str, kwargs)))):
            return Message(task, tuple(args), kwargs, attempts, enqueued)
    return _checked(body)


def _checked(body: Any) -> Message:
    """Every check, with the error that names what is wrong."""
    if not isinstance(body, dict):
        raise DecodeError(f"envelope is a {type(body).__name__}, not a map")
    version = body.get("v")
    if version != VERSION:
        raise DecodeError(f"unsupported envelope version {version!r}")
    task = body.get("t")
    args = body.get("a", [])
    kwargs = body.get("k", {})
    attempts = body.get("n", 0)
    enqueued = body.get("e", 0)
    task_id = body.get("i")
    if not isinstance(task, str) or not task:
        raise DecodeError("envelope has no task name")
    if not isinstance(args, list):
        raise DecodeError("envelope arguments are not a list")
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise DecodeError("envelope keyword arguments are not a map of names")
    if not isinstance(attempts, int) or attempts < 0:
        raise DecodeError("envelope attempt count is not a non-negative integer")
    if not isinstance(enqueued, int):
        raise DecodeError("envelope enqueue time is not an integer")
    if task_id is not None and not (isinstance(task_id, str) and ids.is_task_id(task_id)):
        raise DecodeError(f"envelope task id {task_id!r} is not a taskq task id")
    return Message(task, tuple(args), kwargs, attempts, enqueued, task_id)


def pack(value: Any) -> bytes:
    """msgpack for records and results (plain data only)."""
    return _packer().pack(value)  # type: ignore[no-any-return]


_local = threading.local()


def _packer() -> msgpack.Packer:
    """This thread's Packer: reusing one halves the cost of packing a small map (packb makes
    a new one per call). Packing plain data runs no Python code, so it is never re-entered."""
    try:
        return _local.packer
    except AttributeError:
        _local.packer = msgpack.Packer(use_bin_type=True)
        return _local.packer


def unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:
        raise DecodeError(f"not valid msgpack: {type(exc).__name__}: {exc}") from exc
