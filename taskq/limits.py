"""Rate limits and concurrency limits of a task: their declaration, parsing and keys.

``@tq.task(rate_limit="100/m")`` lets at most 100 attempts of the task start per minute across
every worker and process, evenly spaced (GCRA: one start every 600 ms, no burst);
``concurrency_limit=N`` lets at most N run at once; ``concurrency_key=`` alone means one at a
time per key. ``rate_limit_key=``/``concurrency_key=`` make the limit per key: the name of a
parameter whose value is the key, or a function of the arguments by name returning it.

The state lives in Redis under the queue's hash tag (shared by its priority lanes), changed only
by Lua scripts on Redis's clock: ``taskq/lua/throttle.lua`` decides (and takes a concurrency
slot), the scripts that end an attempt (complete, retry, dead, release) free the slot, and a
slot whose worker died is freed when its lease runs out. See :mod:`taskq.worker.limiter`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

KeyOf = str | Callable[[Mapping[str, Any]], object]
"""A limit's key: a parameter name (its value is the key), or a function of the arguments by
name that returns it (``lambda a: a["customer"].split("@")[1]``)."""

_UNITS = {"s": 1_000, "sec": 1_000, "second": 1_000, "m": 60_000, "min": 60_000,
          "minute": 60_000, "h": 3_600_000, "hour": 3_600_000}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")
MAX_KEY_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` starts per ``per_ms`` milliseconds."""

    count: int
    per_ms: int

    @property
    def interval_ms(self) -> float:
        """The spacing of starts (GCRA's emission interval)."""
        return self.per_ms / self.count

    def __str__(self) -> str:
        return f"{self.count}/{self.per_ms / 1000:g}s"


def parse_rate(text: str) -> Rate:
    """``"100/m"``, ``"10/s"``, ``"5/h"``, ``"30/10s"`` -> :class:`Rate`; ValueError otherwise."""
    m = _RATE.match(text.lower())
    unit = _UNITS.get(m.group(3)) if m else None
    if m is None or unit is None:
        raise ValueError(f"rate_limit {text!r} is not 'N/s', 'N/m', 'N/h' or 'N/<k>s'")
    count, times = int(m.group(1)), int(m.group(2) or 1)
    if count < 1 or times < 1:
        raise ValueError(f"rate_limit {text!r} must allow at least 1 per period")
    return Rate(count, unit * times)


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of one task (see the module). Built by ``@tq.task``; None when it has none."""

    rate: Rate | None = None
    rate_key: KeyOf | None = None
    concurrency: int | None = None
    concurrency_key: KeyOf | None = None
    fixed_concurrency_key: str | None = None  # given per enqueue: the key itself

    def __post_init__(self) -> None:
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency_limit must be at least 1")
        if self.rate_key is not None and self.rate is None:
            raise ValueError("rate_limit_key needs a rate_limit")

    @classmethod
    def of(cls, rate_limit: str | Rate | None, rate_limit_key: KeyOf | None,
           concurrency_limit: int | None, concurrency_key: KeyOf | None) -> Limits | None:
        """The limits ``@tq.task`` was given, or None. ``concurrency_key`` without a
        ``concurrency_limit`` means one at a time per key."""
        if rate_limit is None and concurrency_limit is None and concurrency_key is None:
            if rate_limit_key is not None:
                raise ValueError("rate_limit_key needs a rate_limit")
            return None
        rate = parse_rate(rate_limit) if isinstance(rate_limit, str) else rate_limit
        if concurrency_key is not None and concurrency_limit is None:
            concurrency_limit = 1
        return cls(rate, rate_limit_key, concurrency_limit, concurrency_key)

    def check_keys(self, parameters: Collection[str]) -> None:
        """Raise ValueError when a key names a parameter the task does not have."""
        for what, key in (("rate_limit_key", self.rate_key),
                          ("concurrency_key", self.concurrency_key)):
            if isinstance(key, str) and key not in parameters:
                raise ValueError(f"{what} {key!r} is not a parameter of the task")


def key_value(key: KeyOf, arguments: Mapping[str, Any]) -> str:
    """The key of one invocation: the named argument's value, or what the function returns,
    as text (at most MAX_KEY_LENGTH characters; longer ones are cut and marked)."""
    value = arguments.get(key) if isinstance(key, str) else key(arguments)
    text = value if isinstance(value, str) else repr(value)
    if len(text) > MAX_KEY_LENGTH:
        text = text[:MAX_KEY_LENGTH] + f"~{len(text)}"
    return text


def state_name(task: str, key: str | None) -> str:
    """The name of one limit's state (under the queue's ``limit:<kind>:`` keys)."""
    return task if key is None else f"{task}:{key}"


def with_concurrency_key(limits: Limits | None, key: str) -> Limits:
    """The limits of a message sent with ``with_options(concurrency_key=key)``: the task's
    (or none), with a concurrency limit of the task's ``concurrency_limit`` (1 when it has
    none) on ``key``, which replaces the task's own concurrency key for this message."""
    base = limits if limits is not None else Limits()
    return Limits(base.rate, base.rate_key, base.concurrency or 1, None, key)
