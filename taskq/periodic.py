"""Periodic schedules: what to enqueue (a message) and when (a cron expression in a timezone, or
a fixed period), and the tick arithmetic.

A schedule's *ticks* are instants in Unix ms. A cron schedule's ticks are the matches of its
expression on the wall clock of its timezone, computed by cronsim (Debian cron's rules across
DST changes: a daily 02:30 on a spring-forward day fires once, at 03:00, the first minute after
the gap; on a fall-back day once, at the first 02:30; expressions that match more often than
hourly match in both copies of the repeated hour). An ``every`` schedule's ticks are the
multiples of its period since the Unix epoch (``every=timedelta(minutes=5)`` fires at :00, :05,
... UTC), the same for every worker and across restarts.

This module only computes; firing (one atomic claim per tick in Redis, on Redis's clock) is the
worker's (:mod:`taskq.worker.schedules`, ``lua/periodic_fire.lua``), and the operator view is
:mod:`taskq.admin.schedules`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from taskq import codec
from taskq.codec import Message

MAX_TICKS = 100
"""The most ticks of one schedule a worker passes to one firing call."""


class CatchUp(StrEnum):
    """What happens to ticks that came due while no worker ran (see the docs' *Periodic tasks*).

    ``once`` (the default): one task, for the latest of them. ``skip``: none; the schedule
    goes on from its next tick. ``all``: one task per missed tick (at most ``MAX_TICKS`` per
    pass of a worker, so a long outage is caught up over several passes, in tick order)."""

    ONCE = "once"
    SKIP = "skip"
    ALL = "all"


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Spec:
    """When a schedule fires: ``cron`` in ``timezone``, or every ``every_ms``."""

    cron: str | None = None
    every_ms: int | None = None
    timezone: str = "UTC"
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every_ms is None):
            raise ValueError("a schedule needs exactly one of cron= and every=")
        if self.every_ms is not None and self.every_ms < 1000:
            raise ValueError("every= must be at least one second")
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {self.timezone!r}: {exc}") from None
        object.__setattr__(self, "_zone", zone)
        if self.cron is not None:
            try:
                CronSim(self.cron, datetime.now(zone))
            except CronSimError as exc:
                raise ValueError(f"invalid cron expression {self.cron!r}: {exc}") from None

    @classmethod
    def of(cls, cron: str | None, every: timedelta | float | None, timezone: str) -> Spec:
        every_ms = None
        if every is not None:
            s = every.total_seconds() if isinstance(every, timedelta) else float(every)
            every_ms = round(s * 1000)
        return cls(cron=cron, every_ms=every_ms, timezone=timezone)

    def text(self) -> str:
        """How the schedule reads in listings: ``0 6 * * * (Europe/Berlin)``, ``every 30s``."""
        if self.cron is not None:
            return f"{self.cron} ({self.timezone})"
        every_ms = self.every_ms or 0
        if every_ms % 1000:
            return f"every {every_ms}ms"
        return f"every {every_ms // 1000}s"

    def ticks(self, after_ms: int, *, until_ms: int, limit: int = MAX_TICKS) -> list[int]:
        """The ticks after ``after_ms`` (excluded) up to ``until_ms`` (included), at most
        ``limit``, in order."""
        out: list[int] = []
        if self.every_ms is not None:
            every = self.every_ms
            t = (after_ms // every + 1) * every
            while t <= until_ms and len(out) < limit:
                out.append(t)
                t += every
            return out
        assert self.cron is not None
        start = datetime.fromtimestamp(after_ms / 1000, self._zone)
        for dt in CronSim(self.cron, start):
            t = _ms(dt)
            if t <= after_ms:  # (cronsim works in whole seconds)
                continue
            if t > until_ms or len(out) >= limit:
                break
            out.append(t)
        return out

    def next_ticks(self, after_ms: int, count: int) -> list[int]:
        """The next ``count`` ticks after ``after_ms``."""
        return self.ticks(after_ms, until_ms=2**62, limit=count)

    def to_dict(self) -> dict[str, Any]:
        return {"cron": self.cron, "every_ms": self.every_ms, "timezone": self.timezone}


@dataclass(frozen=True, slots=True)
class Schedule:
    """A message enqueued at every tick of ``spec``; identified by ``name`` in Redis."""

    name: str
    message: Message
    spec: Spec
    catch_up: CatchUp = CatchUp.ONCE
    payload: bytes = field(init=False, repr=False, compare=False)
    digest: str = field(init=False, repr=False, compare=False)
    """Changes whenever what is enqueued or when it is does (a redefinition in code)."""

    def __post_init__(self) -> None:
        if not self.name or any(not c.isprintable() for c in self.name):
            raise ValueError(f"{self.name!r} is not a valid schedule name (printable, non-empty)")
        if not self.message.queue:
            raise ValueError("the message has no queue: build it with task.message(...)")
        # The envelope without its enqueue time: a schedule declared again is the same one.
        # It carries the schedule's timezone; the firing script appends each task's tick.
        payload = codec.encode(replace(self.message, enqueued_ms=0,
                                       scheduled_tz=self.spec.timezone))
        put = object.__setattr__
        put(self, "payload", payload)
        put(self, "digest", hashlib.sha256(
            payload + b"\0" + self.info().encode()).hexdigest()[:20])

    def message_at(self, enqueued_ms: int) -> bytes:
        """The envelope a tick enqueues, with its enqueue time and the schedule's timezone
        (``lua/periodic_fire.lua`` appends the tick itself, field ``s``)."""
        return codec.encode(replace(self.message, enqueued_ms=enqueued_ms,
                                    scheduled_tz=self.spec.timezone))

    @property
    def queue(self) -> str:
        return self.message.queue or ""

    def info(self) -> str:
        """What operators see of the definition (JSON, stored beside the payload)."""
        return json.dumps({"task": self.message.task, "queue": self.queue,
                           **self.spec.to_dict(), "catch_up": str(self.catch_up)},
                          sort_keys=True)

