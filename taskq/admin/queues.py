"""The operator view of queues: figures, consumers, delayed tasks, recent failures, pause, purge."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from taskq import deadletter, ids, priority, state
from taskq.admin._redis import (
    entry_ms,
    known_queues,
    levels_of,
    queue_exists,
    redis_now_ms,
    require_queue,
)
from taskq.admin.values import ConsumerInfo, DelayedTask, Failure, QueueInfo
from taskq.errors import QueueNotFound
from taskq.fieldvalues import text, to_int
from taskq.keys import GROUP, QueueKeys, queues_key, worker_alive_key
from taskq.records import TaskStatus

if TYPE_CHECKING:
    from taskq.codec import Message
    from taskq.queue import TaskQueue

FAILURE_SCAN = 200
MAX_THROUGHPUT_MINUTES = 120  # the counters expire after 7,200 s (lua/complete.lua)
PURGE_BATCH = 1_000


async def list_queues(tq: TaskQueue) -> list[QueueInfo]:
    """Every queue ever used (or registered), by name."""
    names = await known_queues(tq)
    return list(await asyncio.gather(*(_queue_info(tq, n) for n in names)))


async def queue_page(
    tq: TaskQueue, offset: int = 0, limit: int = 50, match: str | None = None
) -> tuple[int, list[QueueInfo]]:
    """One page of the queues by name (those whose name contains ``match``, case-insensitive):
    how many there are in all, and the figures of ``limit`` of them from ``offset``. Only the
    page's queues are read, so a thousand queues cost one page's reads."""
    names = await known_queues(tq)
    if match:
        needle = match.lower()
        names = [n for n in names if needle in n.lower()]
    page = names[max(0, offset):max(0, offset) + max(0, limit)]
    return len(names), list(await asyncio.gather(*(_queue_info(tq, n) for n in page)))


async def queue_info(tq: TaskQueue, name: str) -> QueueInfo:
    await require_queue(tq, name)
    return await _queue_info(tq, name)


async def _queue_info(tq: TaskQueue, name: str) -> QueueInfo:
    """A queue's figures. Stream figures (length, in flight, waiting, delayed, dead) are its
    own level's (``priority_waiting`` splits the lengths by level); consumers and the counters
    (completions, retries, ...) count every level of a queue: to its user it is one queue."""
    keys = tq.keys(name)
    now = await redis_now_ms(tq)
    minute = now // 60_000
    levels = levels_of(name)
    pipe = tq.redis.pipeline(transaction=False)
    pipe.xlen(keys.stream)
    pipe.zcard(keys.delayed)
    pipe.xlen(keys.dead)
    pipe.exists(keys.paused)
    for level in levels:
        lk = tq.keys(level)
        pipe.hgetall(lk.stats)
        pipe.get(lk.done_minute(minute))
        pipe.get(lk.done_minute(minute - 1))
    length, delayed, dead, paused, *per_level = await pipe.execute()
    group = await state.group_state(tq.redis, keys)
    first = await state.undelivered(tq.redis, keys, group.last_delivered, 1)
    lag = group.lag
    bound = max(0, int(length) - group.pending)
    if lag is None or lag > bound:  # Redis's estimate breaks when entries are deleted: count
        lag = await _count_undelivered(tq, keys, group.last_delivered, bound)
    oldest = max(0.0, (now - entry_ms(first[0][0])) / 1000) if first else None
    elapsed = (now % 60_000) / 60_000
    st: dict[str, int] = {}
    cur = prev = 0
    for i in range(len(levels)):
        stats, c, p = per_level[3 * i: 3 * i + 3]
        for k, v in stats.items():
            st[text(k)] = st.get(text(k), 0) + (to_int(v) or 0)
        cur += to_int(c) or 0
        prev += to_int(p) or 0
    rate = cur + round(prev * (1 - elapsed))
    readers = await _consumer_rows(tq, name) if len(levels) > 1 else None
    return QueueInfo(
        name=name, length=int(length), in_flight=group.pending, lag=int(lag),
        delayed=int(delayed), dead=int(dead),
        consumers=group.consumers if readers is None else len(readers),
        oldest_waiting_age_s=oldest, completed_last_minute=rate,
        completed_total=st.get("completed", 0), retried_total=st.get("retried", 0),
        dead_total=st.get("dead", 0), lost_total=st.get("lost", 0), paused=bool(paused),
        expired_total=st.get("expired", 0), deferred_total=st.get("deferred", 0),
        throttled_total=st.get("throttled", 0),
        priority_waiting=await _lanes_waiting(tq, name, int(length)),
    )


async def _consumer_rows(tq: TaskQueue, name: str) -> dict[str, tuple[int, int]]:
    """The consumers of the queue's group at every level (a lane: its own), by name: entries
    held (summed over the levels) and idle time (the least)."""
    levels = levels_of(name)
    pipe = tq.redis.pipeline(transaction=False)
    for level in levels:
        pipe.xinfo_consumers(tq.keys(level).stream, GROUP)
    found: dict[str, tuple[int, int]] = {}
    for rows in await pipe.execute(raise_on_error=False):
        if not isinstance(rows, list):  # no stream or no group at that level
            continue
        for r in rows:
            n = text(r.get("name"))
            pending, idle = int(r.get("pending") or 0), int(r.get("idle") or 0)
            if n in found:
                pending, idle = pending + found[n][0], min(idle, found[n][1])
            found[n] = (pending, idle)
    return found


async def _lanes_waiting(tq: TaskQueue, name: str, length: int) -> dict[str, int]:
    """Stream lengths of the queue's levels, when it has priority lanes (a lane's own figures
    are those of its name, ``<queue>!high``)."""
    if priority.is_lane(name):
        return {}
    lanes = [lane for lane in priority.lanes(name) if lane != name]
    pipe = tq.redis.pipeline(transaction=False)
    for lane in lanes:
        pipe.xlen(tq.keys(lane).stream)
    sizes = {lane: int(n) for lane, n in zip(lanes, await pipe.execute(), strict=True)}
    if not any(sizes.values()):
        return {}
    sizes[name] = length
    return {priority.level(q): sizes[q] for q in priority.lanes(name)}


async def _count_undelivered(tq: TaskQueue, keys: QueueKeys, after: str, bound: int) -> int:
    """Entries after the group's position: counted when few; else ``bound`` (length minus
    pending, exact while finished entries are deleted, as workers do)."""
    if bound > 1_000:
        return bound
    return len(await state.undelivered(tq.redis, keys, after, bound + 1))


async def throughput(tq: TaskQueue, name: str, minutes: int = 60) -> tuple[int, list[int]]:
    """Completions per wall-clock minute (Redis clock, every priority level of a queue) of the
    last ``minutes`` minutes, oldest first, the current (partial) minute last; with the start
    of that last minute in ms. The per-minute counters live two hours, so at most 120 minutes
    can be asked for."""
    await require_queue(tq, name)
    n = max(1, min(minutes, MAX_THROUGHPUT_MINUTES))
    now = await redis_now_ms(tq)
    last = now // 60_000
    total = [0] * n
    for level in levels_of(name):  # a queue's every priority level (all under one hash tag)
        keys = tq.keys(level)
        counts = await tq.redis.mget([keys.done_minute(m) for m in range(last - n + 1, last + 1)])
        total = [t + (to_int(c) or 0) for t, c in zip(total, counts, strict=True)]
    return last * 60_000, total


async def consumers(tq: TaskQueue, name: str) -> list[ConsumerInfo]:
    """The consumers of the queue's group, at every priority level of a queue: entries held,
    idle time, whether the worker lives."""
    await require_queue(tq, name)
    rows = await _consumer_rows(tq, name)
    names = sorted(rows)
    pipe = tq.redis.pipeline(transaction=False)
    for n in names:
        pipe.exists(worker_alive_key(tq.prefix, n))
    alive = await pipe.execute() if names else []
    return [ConsumerInfo(n, rows[n][0], rows[n][1], bool(a))
            for n, a in zip(names, alive, strict=True)]


async def next_delayed(tq: TaskQueue, name: str, limit: int = 10) -> list[DelayedTask]:
    """The delayed tasks (scheduled or awaiting a retry) that are due first."""
    keys = await require_queue(tq, name)
    n = max(1, limit)
    rows = await state.delayed(tq.redis, keys, None, n, max_scan=n)
    return [DelayedTask(r.id, r.task, r.run_at_ms or 0, r.attempts) for r in rows]


async def recent_failures(tq: TaskQueue, name: str, limit: int = 10) -> list[Failure]:
    """The newest failures, newest first: dead letters, and failed attempts awaiting a retry."""
    keys = await require_queue(tq, name)
    out = []
    for _, fields in await tq.redis.xrevrange(keys.dead, max="+", min="-", count=limit):
        d = deadletter.parse(fields)
        out.append(Failure(d.task_id, d.task or None, "dead", d.error_type or None,
                           d.error or None, d.attempts, d.failed_ms))
    retrying = await state.delayed(tq.redis, keys, TaskStatus.FAILED, FAILURE_SCAN,
                                   max_scan=FAILURE_SCAN)
    out += [Failure(r.id, r.task, "failed", r.error_type, r.error, r.attempts, r.finished_ms)
            for r in retrying]
    out.sort(key=lambda f: f.failed_ms or 0, reverse=True)
    return out[:limit]


async def pause(tq: TaskQueue, name: str) -> QueueNotFound | None:
    """Workers stop taking new tasks from the queue within about a second; running ones finish
    and enqueueing still works. A name that is no queue yet is paused too (pausing before the
    deploy that brings its tasks is legitimate) and registered in the queues set, so that
    ``taskq queues`` shows it paused. Returns None for a known queue, else (not raised) the
    QueueNotFound naming the known queues and the closest one, for the caller's warning about
    a likely typo."""
    keys = tq.keys(name)  # raises InvalidQueueName for a name that cannot be one
    unknown = await _unknown(tq, name)
    await tq.redis.set(keys.paused, b"1")
    if unknown is not None:
        await tq.redis.sadd(queues_key(tq.prefix), name)  # type: ignore[misc]
    return unknown


async def resume(tq: TaskQueue, name: str) -> QueueNotFound | None:
    """Workers take tasks from the queue again. Returns as :func:`pause` does (resuming a name
    that is no queue changes nothing)."""
    keys = tq.keys(name)
    unknown = await _unknown(tq, name)
    await tq.redis.delete(keys.paused)
    return unknown


async def _unknown(tq: TaskQueue, name: str) -> QueueNotFound | None:
    if await queue_exists(tq, name):
        return None
    return QueueNotFound(name, await known_queues(tq))


async def purge_lanes(tq: TaskQueue, name: str) -> list[QueueInfo]:
    """The figures of the lanes :func:`purge_queue` would clear (those that exist), highest
    level first: for a confirmation that says what will be removed."""
    await require_queue(tq, name)
    lanes = (name,) if priority.is_lane(name) else priority.lanes(name)
    out = []
    for lane in lanes:
        try:
            out.append(await queue_info(tq, lane))
        except QueueNotFound:
            continue
    return out


async def purge_queue(tq: TaskQueue, name: str) -> int:
    """Remove every waiting task of a queue: not yet delivered to a worker, or delayed
    (scheduled, awaiting a retry or a limit), in each of its priority lanes (see
    :mod:`taskq.priority`; a lane's name, ``"<queue>!high"``, purges that lane only). Tasks
    delivered to a worker (running, or held by a worker that died until another reclaims them)
    are untouched. The unique keys of the tasks removed are released in the same step (see
    :mod:`taskq.options`). Atomic per batch of 1,000; returns how many were removed. Tasks
    sent while it runs may stay (it stops at a batch that is not full)."""
    await require_queue(tq, name)
    lanes = (name,) if priority.is_lane(name) else priority.lanes(name)
    total = 0
    for lane in lanes:
        keys = tq.keys(lane)
        while True:
            entries, delayed, steps = await _waiting(tq, keys, PURGE_BATCH)
            if not entries and not delayed and not steps:
                break
            if entries or delayed:
                stream_n, delayed_n, _ = await tq.scripts.purge(keys=keys, entries=entries,
                                                                delayed=delayed)
                total += stream_n + delayed_n
            for task_id in steps:
                # a workflow step goes as a cancel by id removes it, which ends its workflow
                # (cancelled) in the same script: removed alone, it left the workflow running
                # for ever (the purge script cannot reach the workflow's keys)
                if await tq.cancel(task_id) in ("delayed", "queued"):
                    total += 1
            if len(entries) + len(delayed) + len(steps) < PURGE_BATCH:
                break  # (what waited is gone: never chase producers that keep sending)
    return total


async def _waiting(
    tq: TaskQueue, keys: QueueKeys, batch: int
) -> tuple[list[tuple[str, str, str | None]], list[tuple[str, str | None]], list[str]]:
    """Up to ``batch`` waiting tasks of one lane, undelivered entries first: (entry id, task id,
    unique key) of each entry, (task id, unique key) of each delayed task, and apart the task
    ids of the workflow steps among them."""
    group = await state.group_state(tq.redis, keys)
    entries: list[tuple[str, str, str | None]] = []
    steps: list[str] = []
    for entry_id, payload in await state.undelivered(tq.redis, keys, group.last_delivered,
                                                     batch):
        msg = state.decode_message(payload)
        task_id = ids.of_entry(keys.queue, entry_id, msg.task_id if msg else None)
        if msg is not None and msg.workflow is not None:
            steps.append(task_id)
        else:
            entries.append((entry_id, task_id, _unique_of(msg)))
    room = batch - len(entries) - len(steps)
    if room <= 0:
        return entries, [], steps
    delayed_ids = [text(t) for t in await tq.redis.zrange(keys.delayed, 0, room - 1)]
    if not delayed_ids:
        return entries, [], steps
    payloads = await tq.redis.hmget(keys.payloads, delayed_ids)  # type: ignore[misc]
    delayed: list[tuple[str, str | None]] = []
    for t, p in zip(delayed_ids, payloads, strict=True):
        msg = state.decode_message(p)
        if msg is not None and msg.workflow is not None:
            steps.append(t)
        else:
            delayed.append((t, _unique_of(msg)))
    return entries, delayed, steps


def _unique_of(msg: Message | None) -> str | None:
    return msg.options.key if msg is not None and msg.options is not None else None
