"""The operator view of workers: who is registered, alive or not, and forgetting dead ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq import heartbeat, state
from taskq.admin.values import WorkerInfo
from taskq.fieldvalues import text
from taskq.keys import worker_alive_key, workers_key
from taskq.records import TaskRecord

if TYPE_CHECKING:
    from taskq.queue import TaskQueue


async def list_workers(tq: TaskQueue) -> list[WorkerInfo]:
    """Every registered worker, alive ones first, then by id."""
    raw = await tq.redis.hgetall(workers_key(tq.prefix))  # type: ignore[misc]
    items = sorted((text(k), v) for k, v in raw.items())
    if not items:
        return []
    pipe = tq.redis.pipeline(transaction=False)
    for wid, _ in items:
        pipe.exists(worker_alive_key(tq.prefix, wid))
    alive = await pipe.execute()
    out = [_worker(heartbeat.decode(wid, v), bool(a))
           for (wid, v), a in zip(items, alive, strict=True)]
    out.sort(key=lambda w: (not w.alive, w.id))
    return out


async def worker_info(tq: TaskQueue, worker_id: str) -> WorkerInfo | None:
    """One registered worker, or None."""
    raw = await tq.redis.hget(workers_key(tq.prefix), worker_id)  # type: ignore[misc]
    if raw is None:
        return None
    alive = await tq.redis.exists(worker_alive_key(tq.prefix, worker_id))
    return _worker(heartbeat.decode(worker_id, raw), bool(alive))


async def held_tasks(tq: TaskQueue, worker_id: str, limit: int = 100) -> list[TaskRecord]:
    """The tasks a worker holds (delivered to it, not yet finished), oldest first, over the
    queues its heartbeat names. A dead worker's held tasks wait for a live worker to reclaim
    them."""
    info = await worker_info(tq, worker_id)
    if info is None:
        return []
    out: list[TaskRecord] = []
    for q in info.queues:
        if len(out) >= limit:
            break
        out += await state.running(tq.redis, tq.keys(q), limit - len(out), consumer=worker_id)
    return out


def _worker(b: heartbeat.Heartbeat, alive: bool) -> WorkerInfo:
    return WorkerInfo(
        id=b.id, host=b.host, pid=b.pid, queues=list(b.queues), concurrency=b.concurrency,
        in_flight=b.in_flight, processed=b.processed, succeeded=b.succeeded, failed=b.failed,
        retried=b.retried, dead=b.dead, reclaimed=b.reclaimed, started_ms=b.started_ms,
        heartbeat_ms=b.heartbeat_ms, stopping=b.stopping, alive=alive,
    )


async def clean_dead_workers(tq: TaskQueue) -> int:
    """Forget workers whose heartbeat expired; their consumers are removed from each queue's
    group only when they hold no entries (held ones are reclaimed by live workers first)."""
    dead = [w for w in await list_workers(tq) if not w.alive]
    for w in dead:
        for q in w.queues:
            try:
                await tq.scripts.forget_consumer(keys=tq.keys(q), consumer=w.id)
            except Exception:  # no stream or group: nothing to forget
                continue
    if dead:
        await tq.redis.hdel(workers_key(tq.prefix), *(w.id for w in dead))  # type: ignore[misc]
    return len(dead)
