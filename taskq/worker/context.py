"""What a worker's parts share: its identity and keys, its clock, and its pause and cancel flags.

:class:`WorkerContext` is built once by the worker's core and handed to each part (reader,
runner, outcomes, completer, maintenance), so none of them needs the :class:`Worker` itself.
Maintenance is the only writer of :class:`Flags` and :class:`Clock`; the others read them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from taskq.keys import QueueKeys
from taskq.worker.config import WorkerConfig

OnTransition = Callable[[str], None]
"""A hook called with the name of a transition the worker is about to make: ``after_read``,
``before_ack``, ``before_retry``, ``before_dead``. The fault suite installs one that kills the
process at a chosen transition; a worker without one pays a single ``is None`` test."""


class Clock:
    """Redis's clock as seen from here: local time plus the offset measured by ``TIME``."""

    __slots__ = ("offset_ms",)

    def __init__(self) -> None:
        self.offset_ms = 0

    async def sync(self, redis: Redis) -> None:
        sec, usec = await redis.time()
        self.offset_ms = int(sec) * 1000 + int(usec) // 1000 - int(time.time() * 1000)

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.offset_ms


@dataclass(slots=True)
class Flags:
    """Paused queues and requested cancellations, as last read from Redis by maintenance."""

    paused: set[str] = field(default_factory=set)
    cancels: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """One worker's identity, configuration and keys, with its clock and flags."""

    id: str
    host: str
    started_at: float  # Unix time
    config: WorkerConfig
    keys: dict[str, QueueKeys]
    """Keys of each queue read: the configured ones, and the priority lanes found since."""
    clock: Clock
    flags: Flags
