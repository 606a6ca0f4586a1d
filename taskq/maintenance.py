"""The worker's periodic duties, each its own loop, each surviving Redis errors.

- renew: reset the idle time of every entry held (running or prefetched), owner-checked, so
  that healthy long tasks are never taken away; entries found lost are dropped or discarded.
- reclaim: take over entries idle longer than the lease (their worker died), with their
  delivery count, so poison that kills its process ends in the dead letters.
- promote: move due delayed tasks and retries to the stream (any worker; atomic; no scheduler).
- heartbeat: register the worker with its figures; a key with a TTL says it is alive.
- flags: refresh paused queues and cancel requests; forget idle, empty, dead consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from taskq.connection import REDIS_ERRORS
from taskq.heartbeat import Heartbeat
from taskq.keys import GROUP, worker_alive_key, workers_key

if TYPE_CHECKING:
    from taskq.worker import Worker

log = logging.getLogger(__name__)

_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, ResponseError)
FORGET_CONSUMERS_EVERY_S = 60.0
CANCEL_REQUEST_TTL_MS = 600_000
FORGET_IDLE_MS = 600_000


def loops(w: Worker) -> Iterator[tuple[str, Coroutine[Any, Any, None]]]:
    c = w.config
    yield "taskq-renew", _every(w, c.renew_every_ms, renew, jitter=False)
    yield "taskq-reclaim", _every(w, c.reclaim_every_ms, reclaim)
    yield "taskq-promote", _every(w, c.promote_every_ms, promote)
    yield "taskq-heartbeat", _every(w, c.heartbeat_every_ms, heartbeat, first=True)
    yield "taskq-flags", _every(w, c.flags_every_ms, flags, first=True)


async def _every(w: Worker, period_ms: int, duty: Callable[[Worker], Awaitable[None]],
                 jitter: bool = True, first: bool = False) -> None:
    if not first:
        await asyncio.sleep(period_ms / 1000 * (random.random() if jitter else 1.0))
    while True:
        try:
            await duty(w)
        except asyncio.CancelledError:
            raise
        except _ERRORS as exc:
            log.warning("%s failed: %s: %s", duty.__name__, type(exc).__name__, exc)
        except Exception:
            log.exception("%s failed", duty.__name__)
        period = period_ms / 1000
        await asyncio.sleep(period * (0.8 + 0.4 * random.random()) if jitter else period)


async def renew(w: Worker) -> None:
    by_queue: dict[str, list[str]] = {}
    for (queue, entry), _ in list(w.held.items()):
        by_queue.setdefault(queue, []).append(entry)
    for queue, entries in by_queue.items():
        lost = await w.app.scripts.renew(w.keys[queue], w.id, entries)
        for entry in lost:
            d = w.held.get((queue, entry))
            # Reported already, or handed to the completer (which may just have acked it):
            # the complete script's own owner check decides those.
            if d is None or d.lost or d.acking:
                continue
            d.lost = True
            w.counters.lost_leases += 1
            log.warning("lease lost on entry %s of %s (another worker took it)", entry, queue)
            if not d.started:  # its runner (if it has one yet) returns at once: d.lost
                w.held.pop((queue, entry), None)


async def reclaim(w: Worker) -> None:
    if w.stopping:
        return
    for queue, keys in w.keys.items():
        if queue in w.paused:
            continue
        room = w.config.capacity - len(w.held)
        if room <= 0:
            return
        cursor = "0-0"
        for _ in range(10):  # bounded per cycle
            cursor, got, missing = await w.app.scripts.reclaim(
                keys, w.id, w.config.lease_ms, cursor, room, 5, w.app.dead_letter_cap
            )
            if missing:
                log.error("%d pending entries of %s were deleted before they ran; "
                          "dead-lettered as payload_missing", missing, queue)
            for r in got:
                w.counters.reclaimed += 1
                log.info("reclaimed entry %s of %s (delivery %d)", r.entry_id, queue,
                         r.deliveries)
                w.accept(queue, r.entry_id, r.payload or None, r.deliveries)
            room -= len(got)
            if cursor == "0-0" or room <= 0:
                break


async def promote(w: Worker) -> None:
    for keys in w.keys.values():
        for _ in range(20):  # bounded per cycle
            moved, _missing = await w.app.scripts.promote(keys, 500)
            if moved < 500:
                break


async def heartbeat(w: Worker) -> None:
    c = w.counters
    info = Heartbeat(
        id=w.id, host=w.host, pid=os.getpid(), queues=list(w.config.queues),
        concurrency=w.config.concurrency, in_flight=len(w.held),
        processed=c.processed, succeeded=c.succeeded, failed=c.failed,
        retried=c.retried, dead=c.dead, reclaimed=c.reclaimed,
        lost_leases=c.lost_leases, started_ms=int(w.started_at * 1000),
        heartbeat_ms=int(time.time() * 1000), stopping=w.stopping,
    )
    pipe = w.app.redis.pipeline(transaction=False)
    pipe.set(worker_alive_key(w.app.prefix, w.id), b"1",
             px=w.config.heartbeat_every_ms * 3 + 1000)
    pipe.hset(workers_key(w.app.prefix), w.id, info.encode())
    await pipe.execute()
    await w.sync_clock()


async def flags(w: Worker) -> None:
    pipe = w.app.redis.pipeline(transaction=False)
    queues = list(w.keys)
    for q in queues:
        pipe.exists(w.keys[q].paused)
        pipe.hgetall(w.keys[q].cancels)
    replies = await pipe.execute()
    paused = {q for q, n in zip(queues, replies[0::2], strict=True) if n}
    if paused != w.paused:
        log.info("paused queues: %s", ", ".join(sorted(paused)) or "none")
    w.paused = paused
    cancels: set[str] = set()
    stale_before = w.redis_now_ms() - CANCEL_REQUEST_TTL_MS
    for q, requests in zip(queues, replies[1::2], strict=True):
        stale = [k for k, at in requests.items() if int(at) < stale_before]
        if stale:  # asked for tasks that had already ended: nobody will act on them
            await w.app.redis.hdel(w.keys[q].cancels, *stale)  # type: ignore[misc]
        cancels.update(k.decode() if isinstance(k, bytes) else k for k in requests)
    w.cancels = cancels
    if cancels:
        for d in list(w.held.values()):
            if d.task_id in cancels and not d.cancel:
                d.cancel = True
                if d.ctx is not None:
                    d.ctx.request_cancel()
                if d.runner is not None and d.started:
                    task = w.app.registry.get(d.ctx.task) if d.ctx else None
                    if task is not None and task.is_async:
                        d.runner.cancel()
    now = time.monotonic()
    if now - w.forgot_consumers_at > FORGET_CONSUMERS_EVERY_S:
        w.forgot_consumers_at = now
        await forget_consumers(w)


async def forget_consumers(w: Worker) -> None:
    """Remove consumers that are idle, hold nothing and belong to no live worker."""
    for keys in w.keys.values():
        try:
            consumers = await w.app.redis.xinfo_consumers(keys.stream, GROUP)
        except ResponseError:
            continue
        for c in consumers:
            name = c["name"].decode() if isinstance(c["name"], bytes) else str(c["name"])
            if name == w.id or int(c["pending"]) > 0 or int(c["idle"]) < FORGET_IDLE_MS:
                continue
            if await w.app.redis.exists(worker_alive_key(w.app.prefix, name)):
                continue
            if await w.app.scripts.forget_consumer(keys, name):
                log.info("forgot idle consumer %s of %s", name, keys.queue)


async def unregister(w: Worker) -> None:
    pipe = w.app.redis.pipeline(transaction=False)
    pipe.delete(worker_alive_key(w.app.prefix, w.id))
    pipe.hdel(workers_key(w.app.prefix), w.id)
    await pipe.execute()
    for keys in w.keys.values():
        with contextlib.suppress(ResponseError):
            await w.app.scripts.forget_consumer(keys, w.id)
