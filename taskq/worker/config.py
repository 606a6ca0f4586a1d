"""WorkerConfig: how one worker consumes (queues, concurrency, prefetch, leases, periods)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

QueueOrder = Literal["strict", "weighted"]


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """How a worker consumes. Times in ms unless named ``_s``."""

    queues: tuple[str, ...] = ("default",)
    concurrency: int = 100
    prefetch: int | None = None  # entries held beyond those running; default concurrency // 4
    batch: int = 200
    block_ms: int = 1_000
    lease_ms: int = 6_000
    renew_every_ms: int = 2_000
    reclaim_every_ms: int = 1_000
    promote_every_ms: int = 100
    heartbeat_every_ms: int = 2_000
    flags_every_ms: int = 500
    schedules_every_ms: int = 500
    schedules: bool = True  # sync and fire the app's periodic schedules (taskq.periodic)
    grace_s: float = 25.0
    threads: int | None = None
    processes: int | None = None
    name: str | None = None
    queue_order: QueueOrder | None = None
    """How a worker of several queues reads them: None (one read of all at once, each up to
    the batch), "strict" (in the order given: a later queue only when the earlier ones are
    empty) or "weighted" (each read picks an order at random, the first queue weighted n, the
    next n-1, ... the last 1). A queue's priority lanes are always read highest first."""
    # Operations (see taskq/worker/limits.py): exit once the queues are empty (``burst``),
    # after ``max_tasks`` attempts, or when the process's memory passes ``max_memory_mb``.
    burst: bool = False
    max_tasks: int | None = None
    max_memory_mb: int | None = None
    blocked_warn_ms: int = 1_000
    """An event loop blocked this long (an async task calling something blocking) is logged
    with the task that blocks it (see :mod:`taskq.worker.loopwatch`)."""
    keep_leases_blocked_s: float = 300.0
    """How long the loop watch keeps the leases of a worker whose event loop is blocked; past
    it the worker is taken for stuck and other workers take its entries over."""
    unknown_grace_s: float = 300.0
    """How long a task name this worker does not know is handed back (every few seconds, no
    attempt used) before it is dead-lettered as ``unknown_task``: a rolling deploy's grace."""

    def __post_init__(self) -> None:
        if self.queue_order not in (None, "strict", "weighted"):
            raise ValueError("queue_order must be 'strict' or 'weighted'")
        if not self.queues:
            raise ValueError("a worker needs at least one queue")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.max_tasks is not None and self.max_tasks < 1:
            raise ValueError("max_tasks must be at least 1")
        if self.max_memory_mb is not None and self.max_memory_mb < 1:
            raise ValueError("max_memory_mb must be at least 1")
        if self.unknown_grace_s < 0:
            raise ValueError("unknown_grace_s must not be negative")
        if self.renew_every_ms * 2 >= self.lease_ms:
            raise ValueError("leases must be renewed at least twice per lease period")

    @property
    def capacity(self) -> int:
        prefetch = self.prefetch if self.prefetch is not None else max(1, self.concurrency // 4)
        return self.concurrency + prefetch
