"""The operator API: inspect queues, consumers and workers; pause, purge, cancel; dead letters.

Every function takes a :class:`~taskq.TaskQueue` (only its connection and prefix are used, so
read-only calls need no registered task). Values are frozen dataclasses whose ``to_dict`` is the
stable JSON shape of both the ``taskq`` CLI and the HTTP API. Unknown queues raise
:class:`QueueNotFound`; unknown task ids :class:`~taskq.errors.TaskNotFound`.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from taskq import ids
from taskq.admin_dead import dead_letter, dead_letters, purge_dead, replay_dead
from taskq.admin_redis import (
    decode_message,
    entry_ms,
    group_state,
    known_queues,
    redis_now_ms,
    require_queue,
    text,
    to_int,
    undelivered,
)
from taskq.admin_tasks import list_tasks, purge_queue
from taskq.admin_values import (
    ConsumerInfo,
    DeadLetter,
    DeadLetterNotFound,
    DelayedTask,
    Failure,
    QueueInfo,
    QueueNotFound,
    WorkerInfo,
)
from taskq.errors import TaskNotFound
from taskq.keys import GROUP, worker_alive_key, workers_key
from taskq.records import TaskRecord, TaskStatus, bucket_key, decode_record

if TYPE_CHECKING:
    from taskq.queue import TaskQueue

__all__ = [
    "ConsumerInfo",
    "DeadLetter",
    "DeadLetterNotFound",
    "DelayedTask",
    "Failure",
    "QueueInfo",
    "QueueNotFound",
    "WorkerInfo",
    "cancel",
    "clean_dead_workers",
    "consumers",
    "dead_letter",
    "dead_letters",
    "list_queues",
    "list_tasks",
    "list_workers",
    "next_delayed",
    "pause",
    "purge_dead",
    "purge_queue",
    "queue_info",
    "recent_failures",
    "replay_dead",
    "resume",
    "task_record",
]

FAILURE_SCAN = 200


# -- queues ---------------------------------------------------------------------------------


async def list_queues(tq: TaskQueue) -> list[QueueInfo]:
    """Every queue ever used (or registered), by name."""
    names = await known_queues(tq)
    return list(await asyncio.gather(*(_queue_info(tq, n) for n in names)))


async def queue_info(tq: TaskQueue, name: str) -> QueueInfo:
    await require_queue(tq, name)
    return await _queue_info(tq, name)


async def _queue_info(tq: TaskQueue, name: str) -> QueueInfo:
    keys = tq.keys(name)
    now = await redis_now_ms(tq)
    minute = now // 60_000
    pipe = tq.redis.pipeline(transaction=False)
    pipe.xlen(keys.stream)
    pipe.zcard(keys.delayed)
    pipe.xlen(keys.dead)
    pipe.hgetall(keys.stats)
    pipe.exists(keys.paused)
    pipe.get(keys.done_minute(minute))
    pipe.get(keys.done_minute(minute - 1))
    length, delayed, dead, stats, paused, cur, prev = await pipe.execute()
    group = await group_state(tq, keys)
    first = await undelivered(tq, keys, group.last_delivered, 1)
    lag = group.lag
    bound = max(0, int(length) - group.pending)
    if lag is None or lag > bound:  # Redis's estimate breaks when entries are deleted: count
        lag = await _count_undelivered(tq, keys, group.last_delivered, bound)
    oldest = max(0.0, (now - entry_ms(first[0][0])) / 1000) if first else None
    elapsed = (now % 60_000) / 60_000
    rate = int(to_int(cur) or 0) + round((to_int(prev) or 0) * (1 - elapsed))
    st = {text(k): to_int(v) or 0 for k, v in stats.items()}
    return QueueInfo(
        name=name, length=int(length), in_flight=group.pending, lag=int(lag),
        delayed=int(delayed), dead=int(dead), consumers=group.consumers,
        oldest_waiting_age_s=oldest, completed_last_minute=rate,
        completed_total=st.get("completed", 0), retried_total=st.get("retried", 0),
        dead_total=st.get("dead", 0), lost_total=st.get("lost", 0), paused=bool(paused),
    )


async def _count_undelivered(tq: TaskQueue, keys: Any, after: str, bound: int) -> int:
    """Entries after the group's position: counted when few; else ``bound`` (length minus
    pending, exact while finished entries are deleted, as workers do)."""
    if bound > 1_000:
        return bound
    return len(await undelivered(tq, keys, after, bound + 1))


async def consumers(tq: TaskQueue, name: str) -> list[ConsumerInfo]:
    """The consumers of the queue's group: entries held, idle time, whether the worker lives."""
    keys = await require_queue(tq, name)
    try:
        rows = await tq.redis.xinfo_consumers(keys.stream, GROUP)
    except Exception:  # no stream or no group yet
        return []
    names = [text(r.get("name")) for r in rows]
    pipe = tq.redis.pipeline(transaction=False)
    for n in names:
        pipe.exists(worker_alive_key(tq.prefix, n))
    alive = await pipe.execute() if names else []
    return [
        ConsumerInfo(n, int(r.get("pending") or 0), int(r.get("idle") or 0), bool(a))
        for n, r, a in zip(names, rows, alive, strict=True)
    ]


async def next_delayed(tq: TaskQueue, name: str, limit: int = 10) -> list[DelayedTask]:
    """The delayed tasks (scheduled or awaiting a retry) that are due first."""
    keys = await require_queue(tq, name)
    rows = await tq.redis.zrange(keys.delayed, 0, max(0, limit - 1), withscores=True)
    if not rows:
        return []
    task_ids = [text(t) for t, _ in rows]
    payloads = await tq.redis.hmget(keys.payloads, task_ids)  # type: ignore[misc]
    out = []
    for (tid, due), payload in zip(zip(task_ids, (r[1] for r in rows), strict=True), payloads,
                                   strict=True):
        msg = decode_message(payload)
        out.append(DelayedTask(tid, msg.task if msg else None, int(due),
                               msg.attempts if msg else 0))
    return out


async def recent_failures(tq: TaskQueue, name: str, limit: int = 10) -> list[Failure]:
    """The newest failures, newest first: dead letters, and failed attempts awaiting a retry."""
    keys = await require_queue(tq, name)
    dead = await tq.redis.xrevrange(keys.dead, max="+", min="-", count=limit)
    out = [
        Failure(text(f.get(b"id")), text(f.get(b"task")) or None, "dead",
                text(f.get(b"error_type")) or None, text(f.get(b"error")) or None,
                to_int(f.get(b"attempts")) or 0, to_int(f.get(b"failed_ms"), None))
        for _, f in dead
    ]
    retrying = await tq.redis.zrange(keys.delayed, 0, FAILURE_SCAN - 1)
    task_ids = [text(t) for t in retrying if ids.is_task_id(text(t))]
    if task_ids:
        pipe = tq.redis.pipeline(transaction=False)
        for tid in task_ids:
            pipe.hget(bucket_key(keys, tid), tid)
        for tid, raw in zip(task_ids, await pipe.execute(), strict=True):
            rec = _record_or_none(tid, name, raw)
            if rec is not None and rec.status is TaskStatus.FAILED:
                out.append(Failure(tid, rec.task, "failed", rec.error_type, rec.error,
                                   rec.attempts, rec.finished_ms))
    out.sort(key=lambda f: f.failed_ms or 0, reverse=True)
    return out[:limit]


def _record_or_none(task_id: str, queue: str, raw: bytes | None) -> TaskRecord | None:
    if not raw:
        return None
    try:
        return decode_record(task_id, queue, raw)
    except Exception:
        return None


async def pause(tq: TaskQueue, name: str) -> None:
    """Workers stop taking new tasks from the queue within about a second; running ones finish
    and enqueueing still works."""
    keys = await require_queue(tq, name)
    await tq.redis.set(keys.paused, b"1")


async def resume(tq: TaskQueue, name: str) -> None:
    keys = await require_queue(tq, name)
    await tq.redis.delete(keys.paused)


# -- tasks ----------------------------------------------------------------------------------


async def task_record(tq: TaskQueue, task_id: str) -> TaskRecord:
    """Everything known of a task; raises TaskNotFound."""
    return await tq.status(task_id)


async def cancel(tq: TaskQueue, task_id: str) -> str:
    """'delayed' or 'queued' (removed before it ran), 'running' (its worker is asked to stop),
    or 'unknown' (it already ended); raises TaskNotFound for a string that is no task id."""
    if not ids.is_task_id(task_id):
        raise TaskNotFound(task_id)
    return await tq.cancel(task_id)


# -- workers --------------------------------------------------------------------------------


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
    out = [_worker(wid, v, bool(a)) for (wid, v), a in zip(items, alive, strict=True)]
    out.sort(key=lambda w: (not w.alive, w.id))
    return out


def _worker(wid: str, raw: bytes, alive: bool) -> WorkerInfo:
    try:
        d: dict[str, Any] = json.loads(raw)
        if not isinstance(d, dict):
            d = {}
    except ValueError:
        d = {}

    def num(key: str) -> int:
        return to_int(d.get(key)) or 0

    return WorkerInfo(
        id=wid, host=str(d.get("host", "")), pid=to_int(d.get("pid"), None),
        queues=[str(q) for q in d.get("queues") or []], concurrency=num("concurrency"),
        in_flight=num("in_flight"), processed=num("processed"), succeeded=num("succeeded"),
        failed=num("failed"), retried=num("retried"), dead=num("dead"),
        reclaimed=num("reclaimed"), started_ms=to_int(d.get("started"), None),
        heartbeat_ms=to_int(d.get("heartbeat"), None), stopping=bool(d.get("stopping")),
        alive=alive,
    )


async def clean_dead_workers(tq: TaskQueue) -> int:
    """Forget workers whose heartbeat expired; their consumers are removed from each queue's
    group only when they hold no entries (held ones are reclaimed by live workers first)."""
    dead = [w for w in await list_workers(tq) if not w.alive]
    for w in dead:
        for q in w.queues:
            try:
                await tq.scripts.forget_consumer(tq.keys(q), w.id)
            except Exception:  # no stream or group: nothing to forget
                continue
    if dead:
        await tq.redis.hdel(workers_key(tq.prefix), *(w.id for w in dead))  # type: ignore[misc]
    return len(dead)

