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
    c  trace context, present only when the producer traces (:mod:`taskq.tracing`): a map of
       strings as the OpenTelemetry propagator writes it (``traceparent``, ``tracestate``)
    w  workflow step, present only for a step of a workflow (see :mod:`taskq.workflow`):
       ``[workflow id, step index, parameter taking the input ("" none), [queues]]``
    x  the step's input, appended by the script that enqueues the step (the previous step's
       result, or a chord's list of results); it becomes the keyword argument named in ``w``
    s  the periodic tick the task was fired for, ms since the epoch, present only in a task
       enqueued by a periodic schedule (appended by ``lua/periodic_fire.lua``)
    z  that schedule's timezone (an IANA name), present only in a periodic schedule's message

Optional, present only when the task was sent with these options (see :mod:`taskq.options`):

    u  unique key (the task's name and the key given, ``"<task>:<key>"``)
    uf ms the unique key is kept after the task succeeded
    ex expiry: ms since the epoch after which the task is not started

Decoding never executes or imports anything named in the payload. Failures raise
:class:`~taskq.errors.DecodeError`.
"""

from __future__ import annotations

import base64
import math
import threading
from dataclasses import dataclass, field, replace
from typing import Any

import msgpack

from taskq import ids
from taskq.errors import DecodeError
from taskq.options import MS_MAX, MS_RANGE, SendOptions, is_ms

VERSION = 1
FIELD = b"m"
ATTEMPTS_MAX = 2**31 - 1
"""The most attempts an envelope may say were made: a larger count (msgpack holds up to
2**64 - 1) is a malformed message, dead-lettered as such."""
_is_str = str.__instancecheck__  # map keys are exactly str or bytes (strict_map_key)
_MAX_DEPTH_ERRORS = (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError)


@dataclass(frozen=True, slots=True)
class WorkflowRef:
    """Where a message stands in a workflow: the workflow's id, the step's index, the
    parameter that takes the step's input ("" for none) and the workflow's queues (their
    streams are where the script finishing this step may enqueue the next ones)."""

    id: str
    step: int
    param: str
    queues: tuple[str, ...]

    def plain(self) -> list[Any]:
        return [self.id, self.step, self.param, list(self.queues)]


def _name_ok(name: Any) -> bool:
    """A queue name (as :class:`~taskq.keys.QueueKeys` accepts one) or id part: checked here
    so that a hostile envelope cannot make the worker's complete call fail for a batch."""
    return (isinstance(name, str) and bool(name)
            and not any(c.isspace() or not c.isprintable() for c in name))


def _workflow_ref(value: Any) -> WorkflowRef:
    if (isinstance(value, list) and len(value) == 4 and _name_ok(value[0])
            and ":" in value[0] and _name_ok(value[0].rpartition(":")[0])
            and type(value[1]) is int and 0 <= value[1] < 2**31 and isinstance(value[2], str)
            and isinstance(value[3], list) and value[3] and all(map(_name_ok, value[3]))):
        return WorkflowRef(value[0], value[1], value[2], tuple(value[3]))
    raise DecodeError("envelope workflow field is not [id, step, parameter, [queues]]")


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
    trace: dict[str, str] | None = None
    workflow: WorkflowRef | None = None
    options: SendOptions | None = None  # unique key, run-at, expiry (None: none of them)
    scheduled_ms: int | None = None  # the periodic tick it was fired for (None: not periodic)
    scheduled_tz: str | None = None  # the timezone of that schedule

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
    if message.workflow is not None:
        body["w"] = message.workflow.plain()
    if message.trace:  # (empty: traced, but the span was not recorded)
        body["c"] = message.trace
    if message.options is not None:
        message.options.to_envelope(body)
    if message.scheduled_ms is not None:
        body["s"] = message.scheduled_ms
    if message.scheduled_tz is not None:
        body["z"] = message.scheduled_tz
    try:
        return _packer().pack(body)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:
        raise DecodeError(f"cannot encode arguments of task {message.task!r}: {exc}") from exc


INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
MAX_NESTING = 500
"""Deepest nesting of lists and maps an argument may have (msgpack's packer stops at 511)."""


def argument_errors(message: Message) -> list[dict[str, Any]]:
    """Why the arguments of ``message`` cannot be encoded, one error per argument in pydantic's
    shape (``loc`` names the argument); empty if each argument alone can be. Called only after
    :func:`encode` failed, to turn a msgpack error into a validation error."""
    errors: list[dict[str, Any]] = []
    named: list[tuple[int | str, Any]] = [*enumerate(message.args), *message.kwargs.items()]
    for loc, value in named:
        problem = _unencodable(value, MAX_NESTING)
        if problem is not None:
            errors.append({"loc": (loc,), "msg": problem, "type": "unencodable"})
    return errors


def _unencodable(value: Any, depth: int) -> str | None:
    """What makes ``value`` impossible to encode, or None (iterative: no recursion limit)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, level = stack.pop()
        if level > depth:
            return f"nested deeper than {depth} levels"
        if isinstance(v, bool) or v is None or isinstance(v, float | bytes):
            continue
        if isinstance(v, int):
            if not INT_MIN <= v <= INT_MAX:
                return "integer outside the 64-bit range (-2**63 to 2**64-1)"
        elif isinstance(v, str):
            if not _utf8(v):
                return "string that is not valid Unicode (a lone surrogate)"
        elif isinstance(v, list | tuple):
            stack.extend((item, level + 1) for item in v)
        elif isinstance(v, dict):
            for k, item in v.items():
                stack.append((k, level + 1))
                stack.append((item, level + 1))
        else:
            return f"a {type(v).__name__} cannot be encoded"
    return None


def nesting(value: Any) -> int:
    """How deeply lists and maps nest in ``value`` (0 for a scalar); iterative."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, level = stack.pop()
        if isinstance(v, list | tuple):
            stack.extend((item, level + 1) for item in v)
            deepest = max(deepest, level + 1)
        elif isinstance(v, dict):
            stack.extend((item, level + 1) for item in v.values())
            deepest = max(deepest, level + 1)
    return deepest


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def json_safe(value: Any) -> Any:
    """``value`` with what JSON cannot hold made showable: bytes (a msgpack ``bin`` written by
    another producer) become ``{"$bytes": "<base64>"}``, NaN and infinities become ``None``,
    strings with lone surrogates are repaired with U+FFFD, other odd types their ``repr``.
    Iterative, so a deeply nested value cannot exhaust the stack."""
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        v, parent, slot = stack.pop()
        if v is None or isinstance(v, bool | int):
            out: Any = v
        elif isinstance(v, float):
            out = v if math.isfinite(v) else None
        elif isinstance(v, str):
            out = v if _utf8(v) else v.encode(errors="replace").decode()
        elif isinstance(v, bytes | bytearray | memoryview):
            out = {"$bytes": base64.b64encode(bytes(v)).decode()}
        elif isinstance(v, list | tuple | set | frozenset):
            out = [None] * len(v)
            stack.extend((item, out, i) for i, item in enumerate(v))
        elif isinstance(v, dict):
            out = {}
            for k, item in v.items():
                key = k if isinstance(k, str) and _utf8(k) else str(json_safe(k))
                out[key] = None
                stack.append((item, out, key))
        else:
            out = repr(v)
        parent[slot] = out
    return root[0]


def decode(data: bytes, max_bytes: int | None = None) -> Message:
    """Decode an envelope, checking its shape; never trusts its content."""
    if max_bytes is not None and len(data) > max_bytes:
        raise DecodeError(f"payload of {len(data)} bytes exceeds {max_bytes}")
    try:
        # msgpack >= 1.0 defaults: raw=False (str stays str), strict_map_key=True (map keys
        # only str or bytes). Passing them costs a third of the call.
        body = msgpack.unpackb(data)
    except _MAX_DEPTH_ERRORS as exc:
        raise DecodeError(f"not valid msgpack: {_why(exc)}") from exc
    except Exception as exc:  # msgpack may raise others on hostile input
        raise DecodeError(f"not valid msgpack: {type(exc).__name__}: {_why(exc)}") from exc
    if type(body) is dict:
        # The hot path: a well-formed first delivery (the six fields, none optional),
        # checked with exact types in one test;
        # anything else takes the full check, which names the fault.
        task, args, kwargs = body.get("t"), body.get("a"), body.get("k")
        attempts, enqueued = body.get("n"), body.get("e")
        if (body.get("v") == VERSION and type(task) is str and task and type(args) is list
                and type(kwargs) is dict and type(attempts) is int
                and 0 <= attempts <= ATTEMPTS_MAX and type(enqueued) is int
                and -MS_MAX <= enqueued <= MS_MAX and len(body) == 6
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
    trace = body.get("c")
    if not isinstance(task, str) or not task:
        raise DecodeError("envelope has no task name")
    if not isinstance(args, list):
        raise DecodeError("envelope arguments are not a list")
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise DecodeError("envelope keyword arguments are not a map of names")
    if type(attempts) is not int or not 0 <= attempts <= ATTEMPTS_MAX:
        raise DecodeError(f"envelope attempt count is not an integer from 0 to {ATTEMPTS_MAX}")
    if not is_ms(enqueued):
        raise DecodeError(f"envelope enqueue time is not a time in ms {MS_RANGE}")
    if task_id is not None and not (isinstance(task_id, str) and ids.is_task_id(task_id)):
        raise DecodeError(f"envelope task id {task_id!r} is not a taskq task id")
    if trace is not None and not (isinstance(trace, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in trace.items())):
        raise DecodeError("envelope trace context is not a map of strings")
    workflow = None
    if "w" in body:
        workflow = _workflow_ref(body["w"])
        if workflow.param and "x" in body:  # the step's input, appended when it was enqueued
            kwargs = {**kwargs, workflow.param: body["x"]}
    options = SendOptions.from_envelope(body)  # raises DecodeError for malformed fields
    scheduled, zone = body.get("s"), body.get("z")
    if scheduled is not None and not is_ms(scheduled):
        raise DecodeError(f"envelope periodic tick is not a time in ms {MS_RANGE}")
    if zone is not None and not (isinstance(zone, str) and _name_ok(zone)):
        raise DecodeError("envelope periodic timezone is not a name")
    return Message(task, tuple(args), kwargs, attempts, enqueued, task_id, trace=trace,
                   workflow=workflow, options=options, scheduled_ms=scheduled,
                   scheduled_tz=zone)


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
        raise DecodeError(f"not valid msgpack: {type(exc).__name__}: {_why(exc)}") from exc


def _why(exc: Exception) -> str:
    """What a msgpack error says, or what it means when it says nothing (a FormatError: a byte
    such as 0xc1 that starts no msgpack value)."""
    text = str(exc)
    if text:
        return text
    if isinstance(exc, msgpack.FormatError):
        return "a byte that starts no msgpack value (FormatError)"
    if isinstance(exc, msgpack.StackError):
        return "nested too deeply (StackError)"
    return type(exc).__name__
