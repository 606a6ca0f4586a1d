"""Registered tasks: options, argument validation against the signature, typed enqueue."""

from __future__ import annotations

import contextlib
import inspect
import json
import time
import types
import typing
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Concatenate, Generic, NotRequired, ParamSpec, TypeVar

import pydantic
from pydantic import ConfigDict, TypeAdapter
from typing_extensions import TypedDict

from taskq import codec, options
from taskq.codec import Message
from taskq.context import TaskContext
from taskq.errors import ContextMissing, InvalidOption, TaskValidationError
from taskq.limits import Limits
from taskq.priority import Priority, lane
from taskq.retry import RetryPolicy
from taskq.workflow.step import Step

if TYPE_CHECKING:
    from taskq.handle import SyncTaskHandle, TaskHandle
    from taskq.queue import TaskQueue

P = ParamSpec("P")
R = TypeVar("R")
P2 = ParamSpec("P2")
A = TypeVar("A")

Seconds = float | int | timedelta


def seconds(value: Seconds | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """How a task runs. Set per task in ``@tq.task(...)``."""

    queue: str = "default"
    max_attempts: int = 3
    timeout_s: float | None = None
    cpu_bound: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    result_ttl_s: float | None = None
    priority: Priority | None = None
    """The default priority of its enqueues (None: normal; see :mod:`taskq.priority`)."""
    limits: Limits | None = None
    """Rate and concurrency limits (None: none, and the worker checks nothing)."""

    def __post_init__(self) -> None:
        lane(self.queue, self.priority)  # raises ValueError for an unknown level
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError("timeout must be positive")


_PLAIN = (int, str, float, bool, type(None))
_SCALARS = (int, str, float, bool)


def _is_plain(hint: Any) -> bool:
    """True for types whose validated values are msgpack-ready as they are."""
    if hint in _PLAIN:
        return True
    origin = typing.get_origin(hint)
    if origin in (list, dict, typing.Union, types.UnionType):
        return all(a is Ellipsis or _is_plain(a) for a in typing.get_args(hint))
    return False


class Signature:
    """The argument schema of a task function, validated with pydantic."""

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self.name = name
        self.sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)
        self.context_param: str | None = None
        fields: dict[str, Any] = {}
        for p in self.sig.parameters.values():
            hint = hints.get(p.name, Any)
            if hint is TaskContext:
                self.context_param = p.name
                continue
            if p.kind is inspect.Parameter.VAR_POSITIONAL:
                hint = tuple[hint, ...]  # type: ignore[valid-type]
            elif p.kind is inspect.Parameter.VAR_KEYWORD:
                hint = dict[str, hint]  # type: ignore[valid-type]
            fields[p.name] = hint
        # Callers never pass the injected context: arguments bind to the other parameters.
        self._bind_sig = self.sig.replace(parameters=[
            p for p in self.sig.parameters.values() if p.name != self.context_param])
        plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        params = [p for p in self.sig.parameters.values() if p.name in fields]
        self._simple = all(p.kind in plain for p in params)
        self._names = frozenset(fields)
        self._required = frozenset(p.name for p in params if p.default is p.empty)
        self._defaults = {p.name: p.default for p in params if p.default is not p.empty}
        self._positional = [
            p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ]
        if self.context_param is not None:  # an injected context breaks the order: bind
            self._simple = False
        self._all_positional = self._simple and self._required <= set(self._positional)
        # Arguments of JSON-native types are already plain data once validated: no dump needed.
        self._plain_types = all(_is_plain(t) for t in fields.values())
        # Parameters all of one scalar type each (int, str, float, bool; no constraints): a value
        # of exactly that type is valid as it is, so a worker can skip pydantic for it.
        self._scalars: tuple[tuple[str, type], ...] | None = (
            tuple((n, t) for n, t in fields.items())
            if self._simple and all(t in _SCALARS for t in fields.values()) else None
        )
        # Defaults are filled in before validation; the schema shows them as optional.
        schema_fields = {
            n: (NotRequired[t] if n in self._defaults else t)
            for n, t in fields.items()
        }
        td = TypedDict(f"{name}_arguments", schema_fields)  # type: ignore[misc]
        td.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
        self.adapter: TypeAdapter[Any] = TypeAdapter(td)
        self._validator = self.adapter.validator  # the core validator, without the wrapper
        self.fields = fields
        ret = hints.get("return", Any)
        if inspect.iscoroutinefunction(fn) and typing.get_origin(ret) is Coroutine:
            ret = typing.get_args(ret)[-1]
        self.returns: Any = ret
        self.return_adapter: TypeAdapter[Any] | None = (
            None if ret in (Any, None, type(None)) else TypeAdapter(ret)
        )

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self._all_positional and not kwargs and len(args) == len(self._positional):
            if not self._defaults:  # (lengths checked above)
                return dict(zip(self._positional, args, strict=True))
            return {**self._defaults, **dict(zip(self._positional, args, strict=True))}
        if self._simple and len(args) <= len(self._positional) and kwargs.keys() <= self._names:
            # The common case, without inspect's binding: plain parameters, no duplicates.
            given = self._positional[: len(args)]
            if not kwargs.keys() & given:
                # Missing ones too: validation names them along with every other error.
                return {**self._defaults, **dict(zip(given, args, strict=True)), **kwargs}
        if self._simple and len(args) <= len(self._positional):
            self._unexpected(args, kwargs)
        try:
            bound = self._bind_sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise TaskValidationError(self.name, [{"loc": (), "msg": str(exc)}]) from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def _unexpected(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise for keyword arguments the task does not take, with every error of the others
        (an HTTP body with a typo and a wrong type answers both at once)."""
        extra = sorted(kwargs.keys() - self._names)
        given = self._positional[: len(args)]
        if not extra or kwargs.keys() & given:
            return
        errors: list[dict[str, Any]] = [
            {"loc": (name,), "msg": "unexpected keyword argument",
             "type": "unexpected_keyword_argument"} for name in extra]
        known = {k: v for k, v in kwargs.items() if k in self._names}
        try:
            self._validate({**self._defaults, **dict(zip(given, args, strict=True)), **known})
        except TaskValidationError as exc:
            errors += exc.errors
        raise TaskValidationError(self.name, errors)

    def _validate(self, data: dict[str, Any]) -> dict[str, Any]:
        try:
            result: dict[str, Any] = self._validator.validate_python(data)
            return result
        except pydantic.ValidationError as exc:
            errors = [
                {"loc": e["loc"], "msg": e["msg"], "type": e["type"]} for e in exc.errors()
            ]
            raise TaskValidationError(self.name, errors) from None

    def _split(self, values: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for p in self.sig.parameters.values():
            if p.name not in values:
                continue
            v = values[p.name]
            if p.kind is inspect.Parameter.POSITIONAL_ONLY:
                args.append(v)
            elif p.kind is inspect.Parameter.VAR_POSITIONAL:
                args.extend(v)
            elif p.kind is inspect.Parameter.VAR_KEYWORD:
                kwargs.update(v)
            else:
                kwargs[p.name] = v
        return tuple(args), kwargs

    def serialize(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Validate arguments and return them as plain data for the envelope."""
        values = self._validate(self._bind(args, kwargs))
        if not self._plain_types:
            try:
                values = self.adapter.dump_python(values, mode="json")
            except (ValueError, RecursionError) as exc:  # e.g. "Maximum serialization depth"
                deepest = max(values, key=lambda name: codec.nesting(values[name]), default="")
                raise TaskValidationError(self.name, [
                    {"loc": (deepest,) if deepest else (),
                     "msg": f"cannot be serialized: {exc}", "type": "serialization"}]) from None
        if self._simple:  # plain parameters: every value goes by name
            return (), values
        return self._split(values)

    def first_param(self) -> str:
        """The first parameter a caller passes (after an injected context); "" if none."""
        return next(iter(self._bind_sig.parameters), "")

    def serialize_partial(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], omit: str
    ) -> dict[str, Any]:
        """Validate every argument but ``omit`` (a workflow step's input, given when the step
        is enqueued) and return them by name, as plain data. Only for tasks whose parameters
        can all be passed by name (no ``*args``, ``**kwargs`` or positional-only ones)."""
        params = list(self._bind_sig.parameters.values())
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        if omit not in self._bind_sig.parameters:
            raise TaskValidationError(self.name, [
                {"loc": (omit,), "msg": "no such parameter takes the step's input",
                 "type": "workflow"}])
        if any(p.kind not in named for p in params):
            raise TaskValidationError(self.name, [
                {"loc": (), "msg": "a workflow step's task takes every argument by name (no "
                 "*args, **kwargs or positional-only parameters)", "type": "workflow"}])
        rest = self._bind_sig.replace(parameters=[p for p in params if p.name != omit])
        try:
            bound = rest.bind(*args, **kwargs)
        except TypeError as exc:
            raise TaskValidationError(self.name, [{"loc": (), "msg": str(exc)}]) from None
        bound.apply_defaults()
        values = dict(bound.arguments)
        adapter = self._partial_adapter(omit)
        try:
            checked = adapter.validate_python(values)
            plain: dict[str, Any] = adapter.dump_python(checked, mode="json")
        except pydantic.ValidationError as exc:
            errors = [{"loc": e["loc"], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
            raise TaskValidationError(self.name, errors) from None
        return plain

    def _partial_adapter(self, omit: str) -> TypeAdapter[Any]:
        td = TypedDict(f"{self.name}_step_arguments",  # type: ignore[misc]
                       {n: t for n, t in self.fields.items() if n != omit})
        td.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
        return TypeAdapter(td)

    def for_call(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Validate plain data from an envelope into the Python values the function takes."""
        scalars = self._scalars
        if scalars is not None and not args and len(kwargs) == len(scalars):
            # Every parameter given by name (as producers write them) with a value of exactly
            # its type: pydantic would return them as they are.
            for name, kind in scalars:
                if type(kwargs.get(name)) is not kind:
                    break
            else:
                return (), kwargs
        values = self._validate(self._bind(args, kwargs))
        if self._simple:  # plain parameters: every value goes by name, as validated
            return (), values
        return self._split(values)

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments by name; defaulted ones optional, defaults shown."""
        schema = self.adapter.json_schema()
        props = schema.get("properties", {})
        for name, default in self._defaults.items():
            if name in props:
                with contextlib.suppress(TypeError, ValueError):
                    json.dumps(default)
                    props[name] = {**props[name], "default": default}
        schema.setdefault("required", [])
        return schema


class Task(Generic[P, R]):
    """A registered task. Call ``enqueue`` to run it in a worker; call it directly to run here."""

    def __init__(
        self, app: TaskQueue, fn: Callable[..., Any], name: str, options: TaskOptions
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.options = options
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = Signature(name, fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.options.queue}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        return self.fn(*args, **kwargs)

    def _pop_delay(self, kwargs: dict[str, Any]) -> float | None:
        if "delay" in kwargs and "delay" not in self.signature.fields:
            return options.check_delay(seconds(kwargs.pop("delay")))
        return None

    def message(self, *args: P.args, **kwargs: P.kwargs) -> Message:
        """A validated message for :meth:`TaskQueue.enqueue_many` (or a workflow's first
        step: every argument given)."""
        try:
            return self.build(args, dict(kwargs))
        except TaskValidationError as exc:
            if any(e.get("type") == "missing" for e in exc.errors):
                # (``chain(a.message(1), b.message())``: b meant to take a's result)
                exc.args = (f"{exc}. (In a workflow, a step that takes the previous step's "
                            f"result is {self.fn.__name__}.step(...), not .message(...).)",)
            raise

    def build(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], queue: str | None = None,
        level: Priority | None = None,
    ) -> Message:
        plain_args, plain_kwargs = self.signature.serialize(args, kwargs)
        q = queue or self.options.queue
        level = level or self.options.priority
        return Message(
            task=self.name,
            args=plain_args,
            kwargs=plain_kwargs,
            enqueued_ms=int(time.time() * 1000),
            queue=q if level is None else lane(q, level),
        )

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Validate and enqueue. ``delay=`` (seconds or timedelta) is accepted at run time when
        the task has no parameter of that name; the typed way is ``task.with_options(delay=...)``.
        """
        kw = dict(kwargs)
        delay = self._pop_delay(kw)
        msg = self.build(args, kw)
        if delay is None:
            return await self.app.enqueue_one(msg)
        (handle,) = await self.app.enqueue_many([msg], delay=delay)
        return handle

    def enqueue_sync(self, *args: P.args, **kwargs: P.kwargs) -> SyncTaskHandle[R]:
        """:meth:`enqueue` for synchronous code (a plain ``def`` route, a script); the handle
        blocks: ``.status()``, ``.result(timeout=)``, ``.cancel()``."""
        kw = dict(kwargs)
        delay = self._pop_delay(kw)
        msg = self.build(args, kw)
        (handle,) = self.app.enqueue_many_sync([msg], delay=delay)
        return handle

    def with_options(
        self, *, delay: Seconds | None = None, queue: str | None = None,
        key: str | None = None, unique_for: Seconds | None = None,
        at: datetime | None = None, expires: timedelta | datetime | None = None,
        priority: Priority | None = None, concurrency_key: str | None = None,
    ) -> BoundTask[P, R]:
        """Enqueue options: ``delay`` or ``at`` (a timezone-aware time), another ``queue``, a
        ``priority`` level ("high", "normal", "low"; see :mod:`taskq.priority`), a unique
        ``key`` (kept ``unique_for`` after success), ``expires`` (not started by then: ends
        ``expired``), a ``concurrency_key`` (at most the task's ``concurrency_limit``, or 1,
        of this key at once); see :mod:`taskq.options`. Raises InvalidOption (a ValueError)
        for a negative ``delay``, a naive ``at`` or ``expires``, a malformed key, ``delay`` and
        ``at`` together, or an unknown level."""
        if priority is not None:
            lane(queue or self.options.queue, priority)  # check the level
        if delay is not None and at is not None:
            raise InvalidOption("give delay or at, not both")
        if at is not None:
            options.aware_ms(at, "at")
        if isinstance(expires, datetime):
            options.aware_ms(expires, "expires")
        if key is not None:
            options.unique_key(self.name, key)
        if unique_for is not None and key is None:
            raise InvalidOption("unique_for needs a key")
        if concurrency_key is not None:
            options.check_concurrency_key(concurrency_key)
        return BoundTask(self, options.check_delay(seconds(delay)), queue, priority, key,
                         seconds(unique_for), at, expires, concurrency_key)

    def step(
        self: Task[Concatenate[A, P2], R], *args: P2.args, **kwargs: P2.kwargs
    ) -> Step[A, R]:
        """A workflow step (see :mod:`taskq.workflow`) whose first parameter takes the result
        of the step before it; the other arguments are given here, validated now."""
        return self.step_into(self.signature.first_param(), *args, **kwargs)

    def step_into(self, param: str, *args: Any, **kwargs: Any) -> Step[Any, R]:
        """A workflow step whose parameter ``param`` takes the result of the step before it
        (checked to exist now; its type is checked when the step runs)."""
        return Step(self.name, self.options.queue, param,
                    self.signature.serialize_partial(args, kwargs, param))


@dataclass(frozen=True, slots=True)
class BoundTask(Generic[P, R]):
    """A task with enqueue options fixed, fully typed:
    ``task.with_options(delay=5).enqueue(...)``."""

    task: Task[P, R]
    delay_s: float | None
    queue: str | None
    priority: Priority | None = None
    key: str | None = None
    unique_for_s: float | None = None
    at: datetime | None = None
    expires: timedelta | datetime | None = None
    concurrency_key: str | None = None

    def message(self, *args: P.args, **kwargs: P.kwargs) -> Message:
        """A validated message with these options, for :meth:`TaskQueue.enqueue_many` (a
        ``delay`` given here travels with the message: a batch's own ``delay=`` applies to the
        messages without one)."""
        msg = self._build(args, dict(kwargs))
        if not self.delay_s:
            return msg
        delay_ms = int(self.delay_s * 1000)
        opts = msg.options or options.SendOptions()
        return replace(msg, options=replace(opts, delay_ms=delay_ms))

    def _build(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Message:
        msg = self.task.build(args, kwargs, self.queue, self.priority)
        opts = options.build(self.task.name, key=self.key, unique_for=self.unique_for_s,
                             at=self.at, expires=self.expires,
                             concurrency_key=self.concurrency_key)
        return msg if opts is None else replace(msg, options=opts)

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        msg = self._build(args, dict(kwargs))
        if not self.delay_s:
            return await self.task.app.enqueue_one(msg)
        (handle,) = await self.task.app.enqueue_many([msg], delay=self.delay_s)
        return handle

    def enqueue_sync(self, *args: P.args, **kwargs: P.kwargs) -> SyncTaskHandle[R]:
        msg = self._build(args, dict(kwargs))
        (handle,) = self.task.app.enqueue_many_sync([msg], delay=self.delay_s)
        return handle


class ContextTask(Task[P, R]):
    """A task whose first parameter is the injected :class:`TaskContext`: it is enqueued with
    its other arguments only (typed as ``Concatenate[TaskContext, P]``), and a direct call
    passes the context first."""

    # The direct call takes the context the enqueue methods leave out, hence the override.
    def __call__(  # type: ignore[override]
        self, ctx: TaskContext, /, *args: P.args, **kwargs: P.kwargs
    ) -> Any:
        if not isinstance(ctx, TaskContext):  # report("2024-01"): the context left out
            raise ContextMissing(self.name, ctx)
        return self.fn(ctx, *args, **kwargs)


def takes_context(fn: Callable[..., Any]) -> bool:
    """True when the first parameter of ``fn`` is annotated :class:`TaskContext`."""
    first = next(iter(inspect.signature(fn).parameters.values()), None)
    if first is None:
        return False
    return typing.get_type_hints(fn).get(first.name) is TaskContext


def with_queue(message: Message, queue: str) -> Message:
    return replace(message, queue=queue)
