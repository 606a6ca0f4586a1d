"""The read model: what state a task is in, answered once from what Redis holds of it.

A task's state comes from up to four places of its queue: its record (written when it failed,
ended or was cancelled; :mod:`taskq.records`), the delayed set (scheduled, or awaiting a retry),
the stream (its entry, not yet delivered) and the group's pending list (delivered, running).
:func:`resolve` is the one rule that turns what was observed into a :class:`TaskRecord`;
:func:`status` (one task) and :func:`list_tasks` (a queue's tasks by status) only gather the
observations. ``TaskQueue.status``, :mod:`taskq.admin`, the CLI and the HTTP API read through it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from taskq import cluster, codec, ids
from taskq.codec import Message
from taskq.errors import RedisOutOfMemory, TaskNotFound
from taskq.keys import GROUP, QueueKeys
from taskq.records import BUCKET_MS, TaskRecord, TaskStatus, bucket_key, decode_record

RECORD_STATUSES = (TaskStatus.SUCCEEDED, TaskStatus.DEAD, TaskStatus.CANCELLED,
                   TaskStatus.EXPIRED)
PAGE = 500
MAX_RECORD_FIELDS = 50_000
MAX_DELAYED_SCAN = 100_000


@dataclass(frozen=True, slots=True)
class Pending:
    """A delivered entry not yet finished: who holds it and how often it was delivered."""

    consumer: str
    deliveries: int


@dataclass(frozen=True, slots=True)
class Observed:
    """What Redis holds of one task; each part None when absent. ``entry`` is set only when
    the entry was found (in the stream or the pending list); ``body`` is its message."""

    task_id: str
    queue: str
    record: TaskRecord | None = None
    progress: dict[str, Any] | None = None
    run_at_ms: int | None = None
    delayed_payload: bytes | None = None
    entry: str | None = None
    body: bytes | None = None
    pending: Pending | None = None


def resolve(o: Observed) -> TaskRecord | None:
    """The task's state: an ended record wins; then delayed (``failed`` when a failure was
    recorded, else ``queued``); then its entry (``running`` while pending, else ``queued``).
    None when it is nowhere and has no ended record."""
    rec = o.record
    if rec is not None and rec.terminal:
        return rec
    if o.run_at_ms is not None:
        status = TaskStatus.FAILED if rec is not None else TaskStatus.QUEUED
        return _with_message(rec or TaskRecord(o.task_id, o.queue, status), status,
                             o.delayed_payload, run_at_ms=o.run_at_ms)
    if o.entry is None:
        return None
    p = o.pending
    if p is None:
        return _with_message(rec or TaskRecord(o.task_id, o.queue, TaskStatus.QUEUED),
                             TaskStatus.QUEUED, o.body, entry_id=o.entry, deliveries=None,
                             worker=None)
    out = _with_message(rec or TaskRecord(o.task_id, o.queue, TaskStatus.RUNNING),
                        TaskStatus.RUNNING, o.body, entry_id=o.entry, deliveries=p.deliveries,
                        worker=p.consumer)
    if p.deliveries:  # the attempt now running
        out = dataclasses.replace(out, attempts=_attempts_of(o.body) + p.deliveries)
    if o.progress:
        out = dataclasses.replace(out, progress=o.progress.get("p"),
                                  progress_message=o.progress.get("m"))
    return out


# -- one task --------------------------------------------------------------------------------


async def _snapshot(redis: Redis, keys: QueueKeys, bucket: str, task_id: str, *,
                    transaction: bool) -> list[Any]:
    if transaction and cluster.is_cluster(redis):
        # redis-py's Cluster transaction queues each command through a thread and an event
        # loop of its own; a client not yet initialized would open (and leak) its first
        # connections there (the CLI's `taskq task ID`, whose first command this is)
        await cluster.primaries(redis)  # type: ignore[arg-type]
    pipe = redis.pipeline(transaction=transaction)
    pipe.hmget(bucket, [task_id, task_id + ":p"])
    pipe.hget(keys.entries, task_id)
    # (ZSCORE by execute_command: redis-py 6's Cluster transaction fails on zscore's kwargs)
    pipe.execute_command("ZSCORE", keys.delayed, task_id)
    pipe.hget(keys.payloads, task_id)
    replies: list[Any] = await pipe.execute()
    return replies


async def status(redis: Redis, keys: QueueKeys, task_id: str) -> TaskRecord:
    """Where task ``task_id`` of the queue of ``keys`` is now; raises TaskNotFound."""
    record: TaskRecord | None = None
    for _ in range(_READS):
        found, record = await _observe(redis, keys, task_id)
        if found is not None:
            return found
        # The task moved between the snapshot and the entry's reads (promoted, read, ended):
        # an ended record answers; otherwise look again rather than answer a stale state.
        raw = await redis.hget(bucket_key(keys, task_id), task_id)  # type: ignore[misc]
        if raw:
            record = decode_record(task_id, keys.queue, raw)
            if record.terminal:
                return record
    if record is not None:
        return record
    raise TaskNotFound(task_id)


_READS = 3  # snapshots tried before a moving task's last record is answered as it is


async def _observe(redis: Redis, keys: QueueKeys,
                   task_id: str) -> tuple[TaskRecord | None, TaskRecord | None]:
    """The resolved state (None when the task was found nowhere) and the record read."""
    queue = keys.queue
    bucket = bucket_key(keys, task_id)
    # One snapshot (MULTI/EXEC; all keys share the queue's hash tag): read apart, a promote
    # landing between the entries and the delayed reads hid the task from both.
    try:
        replies = await _snapshot(redis, keys, bucket, task_id, transaction=True)
    except RedisOutOfMemory:
        # At maxmemory Redis refuses every command queued in a MULTI, reads too. Promotion
        # (an XADD) is refused then as well, so reading apart cannot miss a promote.
        replies = await _snapshot(redis, keys, bucket, task_id, transaction=False)
    (raw, progress), entry_raw, due, delayed_payload = replies
    record = decode_record(task_id, queue, raw) if raw else None
    seen = Observed(task_id, queue, record, codec.unpack(progress) if progress else None,
                    None if due is None else int(due), delayed_payload)
    if (record is None or not record.terminal) and due is None:
        entry = ids.entry_of(task_id, _text(entry_raw) or None)
        if entry is not None:
            seen = await _with_entry(redis, keys, seen, entry)
    return resolve(seen), record


async def _with_entry(redis: Redis, keys: QueueKeys, seen: Observed, entry: str) -> Observed:
    pipe = redis.pipeline(transaction=False)
    pipe.xpending_range(keys.stream, GROUP, min=entry, max=entry, count=1)
    pipe.xrange(keys.stream, min=entry, max=entry, count=1)
    pending, rows = await pipe.execute(raise_on_error=False)
    body = rows[0][1].get(codec.FIELD) if isinstance(rows, list) and rows else None
    if isinstance(pending, list) and pending:
        p = pending[0]
        return dataclasses.replace(seen, entry=entry, body=body, pending=Pending(
            _text(p["consumer"]), int(p["times_delivered"])))
    if isinstance(rows, list) and rows:
        return dataclasses.replace(seen, entry=entry, body=body)
    return seen


async def waiting_message(redis: Redis, keys: QueueKeys, task_id: str) -> bytes | None:
    """The message of a delayed or queued task (for the record of a cancel), or None."""
    pipe = redis.pipeline(transaction=False)
    pipe.hget(keys.payloads, task_id)
    pipe.hget(keys.entries, task_id)
    payload, entry_raw = await pipe.execute()
    if payload:
        return bytes(payload)
    entry = ids.entry_of(task_id, _text(entry_raw) if entry_raw else None)
    if entry is None:
        return None
    rows = await redis.xrange(keys.stream, min=entry, max=entry, count=1)
    body = rows[0][1].get(codec.FIELD) if rows else None
    return bytes(body) if body else None


# -- a queue's tasks -------------------------------------------------------------------------


async def list_tasks(
    redis: Redis, keys: QueueKeys, status: TaskStatus | str | None, limit: int, *,
    result_ttl_ms: int,
) -> list[TaskRecord]:
    """Tasks of a queue: ``queued`` (not yet delivered, then delayed without a failure),
    ``running`` (delivered, unfinished), ``failed`` (awaiting a retry), ``succeeded``/``dead``/
    ``cancelled`` (recent records, newest first, bounded work). No status: running, queued,
    failed, then recent records."""
    wanted = [TaskStatus(status)] if status is not None else [
        TaskStatus.RUNNING, TaskStatus.QUEUED, TaskStatus.FAILED, *RECORD_STATUSES]
    out: list[TaskRecord] = []
    for st in wanted:
        room = limit - len(out)
        if room <= 0:
            break
        if st is TaskStatus.RUNNING:
            out += await running(redis, keys, room)
        elif st is TaskStatus.QUEUED:
            out += await waiting(redis, keys, room)
            if len(out) < limit:
                out += await delayed(redis, keys, TaskStatus.QUEUED, limit - len(out))
        elif st is TaskStatus.FAILED:
            out += await delayed(redis, keys, TaskStatus.FAILED, room)
        elif status is not None:
            out += await ended(redis, keys, {st}, room, result_ttl_ms=result_ttl_ms)
    if status is None and len(out) < limit:
        out += await ended(redis, keys, set(RECORD_STATUSES), limit - len(out),
                           result_ttl_ms=result_ttl_ms)
    return out[:limit]


async def running(redis: Redis, keys: QueueKeys, limit: int,
                  consumer: str | None = None) -> list[TaskRecord]:
    """Delivered, unfinished tasks (the group's pending list, oldest first); with ``consumer``
    only those that consumer (a worker) holds."""
    try:
        pending = await redis.xpending_range(keys.stream, GROUP, min="-", max="+", count=limit,
                                             consumername=consumer)
    except Exception:  # no stream or group
        return []
    if not pending:
        return []
    pipe = redis.pipeline(transaction=False)
    for p in pending:
        e = _text(p["message_id"])
        pipe.xrange(keys.stream, min=e, max=e, count=1)
    entries = [
        (_text(p["message_id"]), rows[0][1].get(codec.FIELD) if rows else None,
         Pending(_text(p["consumer"]), int(p["times_delivered"])))
        for p, rows in zip(pending, await pipe.execute(), strict=True)
    ]
    return await _of_entries(redis, keys, entries, TaskStatus.RUNNING)


async def waiting(redis: Redis, keys: QueueKeys, limit: int) -> list[TaskRecord]:
    """Entries not yet delivered to the group, oldest first."""
    position = await group_state(redis, keys)
    rows = await undelivered(redis, keys, position.last_delivered, limit)
    return await _of_entries(redis, keys, [(e, b, None) for e, b in rows], TaskStatus.QUEUED)


async def _of_entries(
    redis: Redis, keys: QueueKeys, entries: Sequence[tuple[str, bytes | None, Pending | None]],
    want: TaskStatus,
) -> list[TaskRecord]:
    if not entries:
        return []
    queue = keys.queue
    task_ids = [ids.of_entry(queue, e, _task_id_in(body)) for e, body, _ in entries]
    pipe = redis.pipeline(transaction=False)
    for tid in task_ids:
        pipe.hmget(bucket_key(keys, tid), [tid, tid + ":p"])
    out = []
    for tid, (entry, body, pending), (raw, progress) in zip(
        task_ids, entries, await pipe.execute(), strict=True
    ):
        rec = resolve(Observed(
            tid, queue, _record_or_none(tid, queue, raw),
            codec.unpack(progress) if progress else None, entry=entry, body=body,
            pending=pending,
        ))
        if rec is not None and rec.status is want:
            out.append(rec)
    return out


async def delayed(
    redis: Redis, keys: QueueKeys, want: TaskStatus | None, limit: int, *,
    max_scan: int = MAX_DELAYED_SCAN,
) -> list[TaskRecord]:
    """Delayed tasks due first: with a failure recorded they are ``failed``, else ``queued``
    (``want`` None: both). Looks at most ``max_scan`` delayed tasks."""
    queue = keys.queue
    out: list[TaskRecord] = []
    start = 0
    while len(out) < limit and start < max_scan:
        count = min(PAGE, max_scan - start)
        rows = await redis.zrange(keys.delayed, start, start + count - 1, withscores=True)
        if not rows:
            break
        start += count
        tids = [_text(t) for t, _ in rows]
        pipe = redis.pipeline(transaction=False)
        pipe.hmget(keys.payloads, tids)
        for t in tids:
            pipe.hget(bucket_key(keys, t) if ids.is_task_id(t) else keys.records(0), t)
        payloads, *records = await pipe.execute()
        for tid, (_, due), payload, raw in zip(tids, rows, payloads, records, strict=True):
            rec = _record_or_none(tid, queue, raw)
            if raw and rec is None:  # a failure was recorded, though unreadable
                rec = TaskRecord(tid, queue, TaskStatus.FAILED)
            found = resolve(Observed(tid, queue, rec, run_at_ms=int(due),
                                     delayed_payload=payload))
            if found is not None and (want is None or found.status is want):
                out.append(found)
                if len(out) >= limit:
                    break
    return out


async def ended(
    redis: Redis, keys: QueueKeys, statuses: set[TaskStatus], limit: int, *,
    result_ttl_ms: int,
) -> list[TaskRecord]:
    """Records of ended tasks, newest bucket first; stops after MAX_RECORD_FIELDS fields."""
    now_bucket = int(time.time() * 1000) // BUCKET_MS
    oldest = now_bucket - max(1, result_ttl_ms // BUCKET_MS + 2)
    out: list[TaskRecord] = []
    examined = 0
    bucket = now_bucket + 1
    while bucket > oldest and len(out) < limit and examined < MAX_RECORD_FIELDS:
        chunk = list(range(bucket, max(oldest, bucket - 1000), -1))
        bucket -= len(chunk)
        pipe = redis.pipeline(transaction=False)
        for b in chunk:
            pipe.exists(keys.records(b))
        present = [b for b, n in zip(chunk, await pipe.execute(), strict=True) if n]
        for b in present:
            found: list[TaskRecord] = []
            async for field, raw in redis.hscan_iter(keys.records(b), count=500):
                examined += 1
                tid = _text(field)
                if not ids.is_task_id(tid):
                    continue
                rec = _record_or_none(tid, keys.queue, raw)
                if rec is not None and rec.status in statuses:
                    found.append(rec)
            found.sort(key=lambda r: (r.finished_ms or 0, r.id), reverse=True)
            out += found
            if len(out) >= limit or examined >= MAX_RECORD_FIELDS:
                break
    return out[:limit]


# -- the stream and its group ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupState:
    """The consumer group of a queue: consumers, entries pending, its read position."""

    exists: bool
    consumers: int
    pending: int
    last_delivered: str
    lag: int | None


async def group_state(redis: Redis, keys: QueueKeys) -> GroupState:
    try:
        groups = await redis.xinfo_groups(keys.stream)
    except ResponseError:  # no stream yet
        return GroupState(False, 0, 0, "0-0", None)
    for g in groups:
        if _text(g.get("name")) == GROUP:
            lag = g.get("lag")
            return GroupState(
                True, int(g.get("consumers") or 0), int(g.get("pending") or 0),
                _text(g.get("last-delivered-id")) or "0-0",
                None if lag is None else int(lag),
            )
    return GroupState(False, 0, 0, "0-0", None)


async def undelivered(
    redis: Redis, keys: QueueKeys, after: str, count: int
) -> list[tuple[str, bytes | None]]:
    """Up to ``count`` stream entries after ``after`` (not yet delivered), oldest first."""
    rows = await redis.xrange(keys.stream, min=f"({after}", max="+", count=count)
    return [(_text(eid), fields.get(codec.FIELD)) for eid, fields in rows]


# -- decoding --------------------------------------------------------------------------------


def decode_message(payload: bytes | None) -> Message | None:
    """The message of a payload, or None when there is none or it cannot be decoded."""
    if not payload:
        return None
    try:
        return codec.decode(payload)
    except Exception:
        return None


def _task_id_in(body: bytes | None) -> str | None:
    msg = decode_message(body)
    return msg.task_id if msg else None


def _record_or_none(task_id: str, queue: str, raw: bytes | None) -> TaskRecord | None:
    if not raw:
        return None
    try:
        return decode_record(task_id, queue, raw)
    except Exception:
        return None


def _attempts_of(payload: bytes | None) -> int:
    msg = decode_message(payload)
    return msg.attempts if msg else 0


def _with_message(
    rec: TaskRecord, status: TaskStatus, payload: bytes | None, **changes: Any
) -> TaskRecord:
    msg = decode_message(payload)
    if msg is not None:
        changes.update(task=msg.task, args=list(msg.args), kwargs=msg.kwargs,
                       enqueued_ms=msg.enqueued_ms or None,
                       attempts=max(rec.attempts, msg.attempts))
        unknown_since = msg.options.unknown_since_ms if msg.options is not None else None
        if unknown_since is not None and rec.error is None:  # (deferred by a worker)
            changes.update(error_type="TaskNotRegistered", error=unknown_note(msg.task,
                                                                             unknown_since))
    return dataclasses.replace(rec, status=status, **changes)


def unknown_note(task: str, since_ms: int) -> str:
    """What a task whose name a worker did not know is waiting for (it is still queued)."""
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(since_ms / 1000))
    return (f"waiting for a worker that knows task {task}: a worker that does not know it "
            f"handed it back at {at} UTC (its app does not import the task's module); it is "
            f"dead-lettered as unknown_task if none knows it within the workers' deploy grace "
            f"(--unknown-grace-s, 300 s by default)")


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
