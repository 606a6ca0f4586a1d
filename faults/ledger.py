"""The producer and its ledger: every enqueue recorded as ok, failed (a definite refusal) or
unknown (a timeout or a broken connection: it may or may not have been added)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError

from taskq import BacklogFull, PayloadTooLarge, TaskqError, TaskQueue, TaskValidationError
from taskq.errors import RedisOutOfMemory

OK, FAILED, UNKNOWN = "ok", "failed", "unknown"


@dataclass
class Entry:
    job: int
    task: str
    state: str
    task_id: str | None
    t0_ns: int  # monotonic, just before the enqueue call
    t1_ns: int  # monotonic, when it answered
    delay_s: float = 0.0
    error: str = ""


class Ledger:
    def __init__(self) -> None:
        self.entries: dict[int, Entry] = {}
        self.next_job = 1
        self.errors: Counter[str] = Counter()

    def jobs(self, state: str) -> set[int]:
        return {j for j, e in self.entries.items() if e.state == state}

    def counts(self) -> dict[str, int]:
        c = Counter(e.state for e in self.entries.values())
        return {OK: c[OK], FAILED: c[FAILED], UNKNOWN: c[UNKNOWN]}

    async def enqueue(self, tq: TaskQueue, task: str, n: int, *, delay: float | None = None,
                      timeout: float = 6.0, **kwargs: Any) -> str:
        """Enqueue ``n`` jobs of ``task`` in one call (each gets ``job=<id>``)."""
        t = tq.registry[task]
        jobs = list(range(self.next_job, self.next_job + n))
        self.next_job += n
        msgs = [t.build((), {"job": j, **kwargs}) for j in jobs]
        t0 = time.monotonic_ns()
        state, error, ids = OK, "", [None] * n
        try:
            handles = await asyncio.wait_for(tq.enqueue_many(msgs, delay=delay), timeout)
            ids = [h.id for h in handles]
        except (BacklogFull, PayloadTooLarge, TaskValidationError, AuthenticationError,
                RedisOutOfMemory) as exc:  # (OOM: the enqueue script's first write refused)
            state, error = FAILED, type(exc).__name__
        except RedisConnectionError as exc:
            # refused at connect: nothing was sent; otherwise we cannot know
            state = FAILED if "connecting" in str(exc) else UNKNOWN
            error = type(exc).__name__
        except (TimeoutError, RedisError, TaskqError, OSError) as exc:
            state, error = UNKNOWN, type(exc).__name__
        t1 = time.monotonic_ns()
        self.errors[error or OK] += n
        for j, tid in zip(jobs, ids, strict=True):
            self.entries[j] = Entry(j, task, state, tid, t0, t1, delay or 0.0, error)
        return state


async def produce(ledger: Ledger, tq: TaskQueue, *, rate: float, seconds: float,
                  batch: int = 10, ms: int = 20, task: str = "work",
                  stop: asyncio.Event | None = None) -> None:
    """Enqueue about ``rate`` jobs per second for ``seconds`` (or until ``stop``)."""
    t_end = time.monotonic() + seconds
    interval = batch / rate
    next_at = time.monotonic()
    while time.monotonic() < t_end and not (stop and stop.is_set()):
        await ledger.enqueue(tq, task, batch, ms=ms)
        next_at += interval
        pause = next_at - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        else:
            next_at = time.monotonic()  # behind (an outage): do not burst to catch up


class Background:
    """A producer running in the background until :meth:`stop` (bounded by ``seconds``)."""

    def __init__(self, ledger: Ledger, tq: TaskQueue, *, rate: float, batch: int, ms: int,
                 seconds: float = 300) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(produce(ledger, tq, rate=rate, seconds=seconds,
                                                 batch=batch, ms=ms, stop=self._stop))

    async def stop(self) -> None:
        self._stop.set()
        await self._task
