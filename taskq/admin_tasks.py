"""Listing a queue's tasks by status, and purging the waiting ones."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from taskq import ids
from taskq.admin_redis import (
    PAGE,
    decode_message,
    group_state,
    message_task_id,
    require_queue,
    text,
    undelivered,
)
from taskq.keys import GROUP, QueueKeys
from taskq.records import BUCKET_MS, TaskRecord, TaskStatus, decode_record

if TYPE_CHECKING:
    from taskq.queue import TaskQueue

RECORD_STATUSES = (TaskStatus.SUCCEEDED, TaskStatus.DEAD, TaskStatus.CANCELLED)
MAX_RECORD_FIELDS = 50_000
MAX_DELAYED_SCAN = 100_000
PURGE_BATCH = 1_000


async def list_tasks(
    tq: TaskQueue, name: str, status: TaskStatus | str | None = None, limit: int = 50
) -> list[TaskRecord]:
    """Tasks of a queue: ``queued`` (not yet delivered, then delayed without a failure),
    ``running`` (delivered, unfinished), ``failed`` (awaiting a retry), ``succeeded``/``dead``/
    ``cancelled`` (recent records, newest first, bounded work). No status: running, queued,
    failed, then recent records."""
    keys = await require_queue(tq, name)
    wanted = [TaskStatus(status)] if status is not None else [
        TaskStatus.RUNNING, TaskStatus.QUEUED, TaskStatus.FAILED, *RECORD_STATUSES]
    out: list[TaskRecord] = []
    for st in wanted:
        room = limit - len(out)
        if room <= 0:
            break
        if st is TaskStatus.RUNNING:
            out += await _running(tq, keys, room)
        elif st is TaskStatus.QUEUED:
            out += await _queued(tq, keys, room)
            if len(out) < limit:
                out += await _delayed(tq, keys, TaskStatus.QUEUED, limit - len(out))
        elif st is TaskStatus.FAILED:
            out += await _delayed(tq, keys, TaskStatus.FAILED, room)
        elif status is not None:
            out += await _records(tq, keys, {st}, room)
    if status is None and len(out) < limit:
        out += await _records(tq, keys, set(RECORD_STATUSES), limit - len(out))
    return out[:limit]


def _from_message(queue: str, entry: str, payload: bytes | None, status: TaskStatus,
                  **extra: object) -> TaskRecord:
    msg = decode_message(payload)
    return TaskRecord(
        id=message_task_id(queue, entry, msg), queue=queue, status=status,
        task=msg.task if msg else None, args=list(msg.args) if msg else [],
        kwargs=dict(msg.kwargs) if msg else {}, attempts=msg.attempts if msg else 0,
        enqueued_ms=(msg.enqueued_ms or None) if msg else None, entry_id=entry,
        **extra,  # type: ignore[arg-type]
    )


async def _queued(tq: TaskQueue, keys: QueueKeys, limit: int) -> list[TaskRecord]:
    group = await group_state(tq, keys)
    rows = await undelivered(tq, keys, group.last_delivered, limit)
    return [_from_message(keys.queue, e, p, TaskStatus.QUEUED) for e, p in rows]


async def _running(tq: TaskQueue, keys: QueueKeys, limit: int) -> list[TaskRecord]:
    try:
        pending = await tq.redis.xpending_range(keys.stream, GROUP, min="-", max="+",
                                                count=limit)
    except Exception:  # no stream or group
        return []
    if not pending:
        return []
    pipe = tq.redis.pipeline(transaction=False)
    for p in pending:
        e = text(p["message_id"])
        pipe.xrange(keys.stream, min=e, max=e, count=1)
    out = []
    for p, rows in zip(pending, await pipe.execute(), strict=True):
        payload = rows[0][1].get(b"m") if rows else None
        out.append(_from_message(keys.queue, text(p["message_id"]), payload, TaskStatus.RUNNING,
                                 worker=text(p["consumer"]),
                                 deliveries=int(p["times_delivered"])))
    return out


async def _delayed(tq: TaskQueue, keys: QueueKeys, status: TaskStatus,
                   limit: int) -> list[TaskRecord]:
    """Delayed tasks due first: with a failure record they are ``failed``, else ``queued``."""
    out: list[TaskRecord] = []
    start = 0
    while len(out) < limit and start < MAX_DELAYED_SCAN:
        rows = await tq.redis.zrange(keys.delayed, start, start + PAGE - 1, withscores=True)
        if not rows:
            break
        start += PAGE
        tids = [text(t) for t, _ in rows]
        pipe = tq.redis.pipeline(transaction=False)
        pipe.hmget(keys.payloads, tids)
        for t in tids:
            pipe.hget(keys.records(ids.time_ms(t) // BUCKET_MS) if ids.is_task_id(t)
                      else keys.records(0), t)
        payloads, *records = await pipe.execute()
        for (raw_id, due), payload, raw in zip(rows, payloads, records, strict=True):
            tid = text(raw_id)
            failed = bool(raw) and status is TaskStatus.FAILED
            if bool(raw) != (status is TaskStatus.FAILED):
                continue
            rec = _from_message(keys.queue, "", payload, status, run_at_ms=int(due))
            if failed:
                try:
                    old = decode_record(tid, keys.queue, raw)
                    rec = _merge_failure(rec, old)
                except Exception:
                    pass
            out.append(_replace_id(rec, tid))
            if len(out) >= limit:
                break
    return out


def _replace_id(rec: TaskRecord, tid: str) -> TaskRecord:
    return replace(rec, id=tid, entry_id=None)


def _merge_failure(rec: TaskRecord, old: TaskRecord) -> TaskRecord:
    return replace(rec, attempts=max(rec.attempts, old.attempts), started_ms=old.started_ms,
                   finished_ms=old.finished_ms, error_type=old.error_type, error=old.error,
                   traceback=old.traceback, worker=old.worker)


async def _records(tq: TaskQueue, keys: QueueKeys, statuses: set[TaskStatus],
                   limit: int) -> list[TaskRecord]:
    """Records of ended tasks, newest bucket first; stops after MAX_RECORD_FIELDS fields."""
    now_bucket = int(time.time() * 1000) // BUCKET_MS
    oldest = now_bucket - max(1, tq.result_ttl_ms // BUCKET_MS + 2)
    out: list[TaskRecord] = []
    examined = 0
    bucket = now_bucket + 1
    while bucket > oldest and len(out) < limit and examined < MAX_RECORD_FIELDS:
        chunk = list(range(bucket, max(oldest, bucket - 1000), -1))
        bucket -= len(chunk)
        pipe = tq.redis.pipeline(transaction=False)
        for b in chunk:
            pipe.exists(keys.records(b))
        present = [b for b, n in zip(chunk, await pipe.execute(), strict=True) if n]
        for b in present:
            found: list[TaskRecord] = []
            async for field, raw in tq.redis.hscan_iter(keys.records(b), count=500):
                examined += 1
                tid = text(field)
                if not ids.is_task_id(tid):
                    continue
                try:
                    rec = decode_record(tid, keys.queue, raw)
                except Exception:
                    continue
                if rec.status in statuses:
                    found.append(rec)
            found.sort(key=lambda r: (r.finished_ms or 0, r.id), reverse=True)
            out += found
            if len(out) >= limit or examined >= MAX_RECORD_FIELDS:
                break
    return out[:limit]


async def purge_queue(tq: TaskQueue, name: str) -> int:
    """Remove every waiting task (not yet delivered, or delayed); running ones are untouched.
    Atomic per batch of 1,000; returns how many were removed."""
    keys = await require_queue(tq, name)
    total = 0
    while True:
        stream_n, delayed_n = await tq.scripts.purge(keys, PURGE_BATCH)
        n = stream_n + delayed_n
        total += n
        if n < PURGE_BATCH:
            return total
