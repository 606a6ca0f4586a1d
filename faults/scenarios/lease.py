"""4 a lease lost while its worker is still alive: taken away with XCLAIM, or lost while the
worker is frozen (SIGSTOP) past its lease. The stale owner's completion must be rejected and
Redis must count each task completed exactly once."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time

import redis

from faults import checker, tasklog
from faults.harness import Env
from taskq.keys import GROUP
from taskq.records import bucket_key, decode_record

THIEF = "faults-thief"
DISCARDED = re.compile(
    r"lease lost on [^:\s]+:(\S+): another worker owns it now; outcome discarded")


def discarded(logs: str) -> set[str]:
    """Entries whose outcome a worker reported refused (its completion was rejected)."""
    return set(DISCARDED.findall(logs))


def _pending(admin: redis.Redis, stream: str) -> list[dict[str, object]]:
    try:
        return admin.xpending_range(stream, GROUP, "-", "+", 1000)  # type: ignore[no-any-return]
    except redis.exceptions.ResponseError:  # NOGROUP: no worker has started yet
        return []


def _stats_completed(admin: redis.Redis, key: str) -> int:
    return int(admin.hget(key, "completed") or 0)


async def _steal(env: Env, admin: redis.Redis, n: int) -> set[bytes]:
    """XCLAIM running entries away from their worker to a consumer that never runs them; keep
    them fresh until their first run has ended (so no worker reclaims them meanwhile)."""
    stolen: set[bytes] = set()
    stream = env.keys.stream
    deadline = time.monotonic() + 20
    while len(stolen) < n and time.monotonic() < deadline:
        runs = tasklog.read(env.tasks)
        started = {j for j, s in runs.starts.items() if s}
        for p in _pending(admin, stream):
            entry = p["message_id"]
            if p["consumer"] != THIEF.encode() and entry not in stolen and started:
                admin.xclaim(stream, GROUP, THIEF, 0, [entry])
                stolen.add(entry)  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
    # hold them until every job has ended once (the stale owners finished and were refused)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        mine = [p["message_id"] for p in _pending(admin, stream) if p["consumer"] == THIEF.encode()]
        if mine:
            admin.xclaim(stream, GROUP, THIEF, 0, mine, justid=True)
        ended = tasklog.read(env.tasks).completed()
        if len(ended) >= len(env.ledger.entries):
            break
        await asyncio.sleep(0.3)
    await asyncio.sleep(0.5)
    return stolen


async def lease_lost(env: Env) -> None:
    env.redis()
    tq = env.app()
    admin = env.admin()
    r = env.result
    # A: stolen with XCLAIM while the owner runs the task
    pool = env.pool(1, concurrency=6, lease_ms=2000, prefetch=0)
    pool.start()
    await env.ledger.enqueue(tq, "work", 6, ms=1500)
    stolen = await _steal(env, admin, 6)
    r.figures["stolen"] = len(stolen)
    await env.settle(30)
    logs = pool.logs()
    stolen_ids = {e.decode() for e in stolen}
    rejected = discarded(logs) & stolen_ids
    r.figures["stale_rejected"] = len(rejected)
    r.check(len(stolen) >= 3, f"only {len(stolen)} entries could be stolen")
    r.check(rejected == stolen_ids, f"stolen {sorted(stolen_ids)} but the stale owner's "
            f"completion was refused only for {sorted(rejected)}")
    await asyncio.to_thread(pool.stop)
    # B: the owner frozen past its lease (SIGSTOP), another worker reclaims, then SIGCONT
    frozen_pool = env.pool(1, concurrency=6, lease_ms=2000, prefetch=0)
    frozen_pool.start()
    await asyncio.sleep(1.5)
    first = len(env.ledger.entries)
    await env.ledger.enqueue(tq, "work", 6, ms=1500)
    await env.until(lambda: len(tasklog.read(env.tasks).starts) >= first + 6, 15,
                    "frozen worker started its jobs")
    frozen = frozen_pool.procs[0].popen.pid
    os.kill(frozen, signal.SIGSTOP)
    other = env.pool(1, concurrency=6, lease_ms=2000)
    other.start()
    try:
        await env.until(lambda: len(tasklog.read(env.tasks).completed()) >= first + 6, 30,
                        "other worker completed the frozen worker's jobs")
    finally:
        os.kill(frozen, signal.SIGCONT)
    await env.settle(30)
    await asyncio.sleep(1.0)  # the thawed worker finishes its stale attempts
    thawed = discarded(frozen_pool.logs())
    r.figures["thawed_rejected"] = len(thawed)
    r.check(len(thawed) >= 1, "the thawed worker reported no refused completion")
    _exactly_once(env, admin, other.procs[0].popen.pid, first)
    v = env.verdict(extra_consumers=1)
    # what runs twice is made so here: each stolen entry and each of the 6 frozen worker's
    # entries runs once more (no other fault)
    checker.report(env.result, v, max_dup=len(stolen) + 6)
    admin.close()


def _exactly_once(env: Env, admin: redis.Redis, other_pid: int, first: int) -> None:
    r = env.result
    completed = _stats_completed(admin, env.keys.stats)
    r.figures["redis_completions"] = completed
    r.check(completed == len(env.ledger.entries),
            f"Redis counted {completed} completions for {len(env.ledger.entries)} tasks")
    wrong = []
    for job, e in env.ledger.entries.items():
        if job <= first or not e.task_id:
            continue
        raw = admin.hget(bucket_key(env.keys, e.task_id), e.task_id)
        rec = decode_record(e.task_id, env.keys.queue, raw) if raw else None
        if rec is None or f":{other_pid}:" not in (rec.worker or ""):
            wrong.append(job)
    r.check(not wrong, f"jobs {wrong} were finished by the frozen (stale) worker")
