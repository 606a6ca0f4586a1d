"""Per-enqueue options beyond the delay: a unique key, an absolute run-at time, an expiry.

``task.with_options(key=..., unique_for=..., at=..., expires=...)`` builds one
:class:`SendOptions` and attaches it to the message (``Message.options``); a message without
any of them carries ``None`` and costs nothing. What reaches the worker travels in the
envelope (``u``, ``uf``, ``ex``; see :mod:`taskq.codec`); the run-at time and the HTTP request's
fingerprint only steer the enqueue.

- ``key``: while a task with the same key (of the same task name, in its queue) is queued,
  delayed, running or retrying, enqueueing that key again returns the existing task's handle
  (``handle.deduplicated``) instead of adding a second task, whatever the arguments: the key
  alone dedupes (an HTTP request's fingerprint, below, is the one exception). Atomic with the add
  (:mod:`taskq.lua.enqueue_with`). The key is released by the script that ends the task.
- ``unique_for``: keep the key this long after the task succeeded (same id returned).
- ``at``: run at this timezone-aware time (the Redis clock decides when it has come).
- ``expires``: a task not started by then is not run; it ends with status ``expired``.
- ``concurrency_key``: run at most the task's ``concurrency_limit`` (1 when it has none) tasks
  with this key at once, in the queue (across its priority lanes): the per-enqueue form of
  ``@tq.task(concurrency_key=...)``, which it overrides for this message (the slots of one
  key value are shared by both forms). Travels in the envelope (``ck``); the worker's limiter
  (:mod:`taskq.worker.limiter`) takes the slot.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskq.errors import DecodeError, InvalidOption

KEY_MAX = 200
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")

Expiry = timedelta | datetime | float | int


@dataclass(frozen=True, slots=True)
class SendOptions:
    """Options of one message. ``key`` is the full unique key (``"<task>:<key>"``)."""

    key: str | None = None
    unique_for_ms: int = 0
    expires_ms: int | None = None
    run_at_ms: int | None = None
    delay_ms: int = 0  # (``with_options(delay=...).message(...)``) counted on the Redis clock
    fingerprint: str = ""  # what an HTTP request asked for (Idempotency-Key); '' = key alone
    unknown_since_ms: int | None = None  # first found unregistered by a worker (deploy grace)
    concurrency_key: str | None = None  # one concurrency limit's key for this message only

    def to_envelope(self, body: dict[str, Any]) -> None:
        if self.key is not None:
            body["u"] = self.key
            if self.unique_for_ms > 0:
                body["uf"] = self.unique_for_ms
        if self.expires_ms is not None:
            body["ex"] = self.expires_ms
        if self.unknown_since_ms is not None:
            body["ug"] = self.unknown_since_ms
        if self.concurrency_key is not None:
            body["ck"] = self.concurrency_key

    @staticmethod
    def from_envelope(body: dict[str, Any]) -> SendOptions | None:
        key, keep, expires = body.get("u"), body.get("uf", 0), body.get("ex")
        unknown, slot_key = body.get("ug"), body.get("ck")
        if key is None and expires is None and unknown is None and slot_key is None:
            return None
        if slot_key is not None and not (isinstance(slot_key, str) and slot_key):
            raise DecodeError("envelope concurrency key is not a string")
        if unknown is not None and not is_ms(unknown):
            raise DecodeError(f"envelope 'ug' is not a time in ms {MS_RANGE}")
        if key is not None and not (isinstance(key, str) and key):
            raise DecodeError("envelope unique key is not a string")
        if not is_ms(keep) or keep < 0:
            raise DecodeError(f"envelope unique_for is not a non-negative number of ms {MS_RANGE}")
        if expires is not None and not is_ms(expires):
            raise DecodeError(f"envelope expiry is not a time in ms {MS_RANGE}")
        return SendOptions(key, keep, expires, unknown_since_ms=unknown,
                           concurrency_key=slot_key)


MS_MAX = 2**53 - 1
"""The largest time or duration in ms an envelope may carry (exact as a Lua number, about
285,000 years): a larger one (msgpack holds up to 2**64 - 1) is a malformed message."""
MS_RANGE = f"(an integer within +-{MS_MAX})"


def is_ms(value: object) -> bool:
    """An envelope's time or duration in ms: an int (not a bool) within +-:data:`MS_MAX`."""
    return type(value) is int and -MS_MAX <= value <= MS_MAX


def unique_key(task: str, key: str) -> str:
    """The stored form of a unique key: scoped by the task's name. Raises InvalidOption (a
    ValueError) for a key that is not 1 to 200 printable ASCII characters (no spaces)."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidOption(f"a unique key must be 1 to {KEY_MAX} printable ASCII characters "
                         f"without spaces, not {key!r}")
    return f"{task}:{key}"


def check_delay(delay_s: float | None) -> float | None:
    """A delay in seconds as given (None: none); a negative one (or NaN) is refused: ``0`` is
    "now", and a time in the past is ``at=`` (which runs at once)."""
    if delay_s is not None and not delay_s >= 0:
        raise InvalidOption(f"delay must be 0 or more seconds, not {delay_s!r} (0 runs now)")
    return delay_s


def aware_ms(value: datetime, what: str) -> int:
    """Epoch ms of a timezone-aware datetime; a naive one is refused (whose clock is it?)."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise InvalidOption(f"{what} must be a timezone-aware datetime (e.g. "
                         f"datetime.now(timezone.utc) + ...), not a naive one: {value!r}")
    return int(value.timestamp() * 1000)


def expiry_ms(expires: Expiry, now_ms: int | None = None) -> int:
    """Epoch ms of an expiry given as a datetime (aware), or as a timedelta or seconds from
    now (the producer's clock)."""
    if isinstance(expires, datetime):
        return aware_ms(expires, "expires")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    span = expires.total_seconds() if isinstance(expires, timedelta) else float(expires)
    if span <= 0:
        raise InvalidOption("expires must be in the future")
    return now + int(span * 1000)


def check_concurrency_key(key: str) -> str:
    """A per-enqueue concurrency key: 1 to 200 printable ASCII characters (no spaces), else
    InvalidOption (a ValueError)."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidOption(f"a concurrency_key must be 1 to {KEY_MAX} printable ASCII "
                            f"characters without spaces, not {key!r}")
    return key


def build(task: str, *, key: str | None, unique_for: timedelta | float | int | None,
          at: datetime | None, expires: Expiry | None,
          concurrency_key: str | None = None) -> SendOptions | None:
    """The options of ``task.with_options(...)``; None when none is given."""
    if (key is None and unique_for is None and at is None and expires is None
            and concurrency_key is None):
        return None
    if unique_for is not None and key is None:
        raise InvalidOption("unique_for needs a key")
    keep = unique_for.total_seconds() if isinstance(unique_for, timedelta) else unique_for
    if keep is not None and keep < 0:
        raise InvalidOption("unique_for must not be negative")
    return SendOptions(
        key=None if key is None else unique_key(task, key),
        unique_for_ms=int((keep or 0) * 1000),
        expires_ms=None if expires is None else expiry_ms(expires),
        run_at_ms=None if at is None else aware_ms(at, "at"),
        concurrency_key=(None if concurrency_key is None
                         else check_concurrency_key(concurrency_key)),
    )


def routed(message_options: SendOptions | None) -> bool:
    """Whether a message needs the enqueue-with-options script (a key or a run-at time); an
    expiry alone travels in the envelope of a plain enqueue."""
    return message_options is not None and (
        message_options.key is not None or message_options.run_at_ms is not None
        or message_options.delay_ms > 0)


def due(message_options: SendOptions | None, batch_delay_ms: int) -> str:
    """The due spec of the enqueue-with-options script: '' ready now, 'd<ms>' in ms, 'a<ms>'
    at epoch ms (Redis clock)."""
    if message_options is not None:
        if message_options.run_at_ms is not None:
            return f"a{message_options.run_at_ms}"
        if message_options.delay_ms > 0:
            return f"d{message_options.delay_ms}"
    return f"d{batch_delay_ms}" if batch_delay_ms > 0 else ""
