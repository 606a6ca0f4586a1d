"""Unique keys under worker SIGKILLs: one live task per key, whatever the priority.

Six producers (each its own connection) enqueue a few hundred keys over and over, each time at
a random priority level (high, normal, low) and sometimes delayed, while random workers running
keyed tasks are SIGKILLed and respawned. Every enqueue is timed on the machine's monotonic
clock, as are the tasks' start and end lines (see :mod:`faults.tasklog`). Checks:

- at most one live task per key at any moment: the runs of two tasks of one key never overlap,
  and a task was accepted with a new id only after every run of the key's previous task ended
  (its key is released by the script that ends it, after its last run);
- an enqueue answered "deduplicated" names a task accepted for that key, and never runs itself;
- every accepted task (an enqueue with a key not held) completes; more than once only if one of
  its runs was in a killed process (at least once, not exactly once);
- no key is left held once every task has ended.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass
from typing import Any

from faults import tasklog
from faults.app import QUEUE
from faults.harness import Env
from faults.workers import WorkerPool
from taskq import TaskQueue, priority
from taskq.keys import QueueKeys

KEYS = 300
PRODUCERS = 6
LEVELS: tuple[priority.Priority, ...] = ("high", "normal", "low")


@dataclass(frozen=True)
class Sent:
    job: int
    key: int
    task_id: str
    deduplicated: bool
    t0_ns: int
    t1_ns: int


async def _produce(tq: TaskQueue, jobs: itertools.count[int], until: float,
                   out: list[Sent], errors: list[str]) -> None:
    keyed = tq.registry["keyed"]
    rng = random.Random()
    while time.monotonic() < until:
        job, key = next(jobs), rng.randrange(KEYS)
        delay = rng.choice((None, None, None, 0.3))
        level = rng.choice(LEVELS)
        t0 = time.monotonic_ns()
        try:
            h = await keyed.with_options(  # type: ignore[attr-defined]
                key=f"k{key}", priority=level, delay=delay).enqueue(job, key, rng.randint(20, 120))
        except Exception as exc:  # Redis is not faulted here: any error is a failure
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        out.append(Sent(job, key, h.id, h.deduplicated, t0, time.monotonic_ns()))
        await asyncio.sleep(rng.uniform(0.0, 0.02))


def _running_pids(runs: tasklog.Runs, dead: set[int]) -> set[int]:
    out: set[int] = set()
    for job, starts in runs.starts.items():
        ended = {pid for pid, _ in runs.ends.get(job, [])}
        out |= {pid for pid, _, _ in starts if pid not in ended and pid not in dead}
    return out


async def unique_keys(env: Env) -> None:
    env.redis()
    producers = [env.app() for _ in range(PRODUCERS)]
    pool = env.pool(3, concurrency=8, lease_ms=2000)
    pool.start()
    env.tend(pool)
    admin = env.admin()
    await env.until(lambda: any(pool.consuming(s) for s in pool.procs), 30, "a worker consuming")
    seconds = 12 * env.profile.scale
    sent: list[Sent] = []
    errors: list[str] = []
    jobs = itertools.count(1)
    until = time.monotonic() + seconds
    work = [asyncio.create_task(_produce(tq, jobs, until, sent, errors)) for tq in producers]
    rng = random.Random()
    dead: set[int] = set()
    await asyncio.sleep(1.0)
    while time.monotonic() < until:
        busy = _running_pids(tasklog.read(env.tasks), dead)
        slots = [s for s, p in pool.procs.items() if p.popen.pid in busy and p.popen.poll() is None]
        killed = pool.kill(rng.choice(slots)) if slots else None
        if killed is not None:
            dead.add(killed.popen.pid)
        await asyncio.sleep(rng.uniform(0.5, 1.2) if killed is not None else 0.05)
    await asyncio.gather(*work)

    jobs_accepted = {s.job for s in sent if not s.deduplicated}

    def all_ended() -> bool:
        return jobs_accepted <= tasklog.read(env.tasks).completed()

    await env.until(all_ended, 60, "every accepted task ended")
    lanes = [QueueKeys(env.prefix, q) for q in priority.lanes(QUEUE)]

    def drained() -> bool:
        return all(admin.xlen(k.stream) == 0 and admin.zcard(k.delayed) == 0 for k in lanes)

    await env.until(drained, 30, "every lane drained (acked and deleted)")
    held = list(admin.scan_iter(match=f"{env.keys.tag}:uniq:*", count=1000))
    admin.close()

    _check(env, pool, sent, errors, held)


def _check(env: Env, pool: WorkerPool, sent: list[Sent], errors: list[str],
           held: list[Any]) -> None:
    r = env.result
    accepted = {s.task_id: s for s in sent if not s.deduplicated}
    by_job = {s.job: s for s in accepted.values()}
    runs = tasklog.read(env.tasks)
    killed_pids = {p.popen.pid for p in pool.history if p.killed}
    r.figures.update(enqueues=len(sent), accepted=len(accepted), kills=pool.kills,
                     keys_used=len({s.key for s in accepted.values()}))
    r.check(not errors, f"enqueues failed: {errors[:3]}")
    # deduplicated answers name a task of their own key; their own job never runs
    by_key: dict[int, list[Sent]] = {}
    for s in accepted.values():
        by_key.setdefault(s.key, []).append(s)
    wrong = [s for s in sent if s.deduplicated and (
        s.task_id not in accepted or accepted[s.task_id].key != s.key)]
    r.check(not wrong, f"deduplicated answers naming another key's task: {wrong[:3]}")
    stray = [j for j in runs.starts if j not in by_job]
    r.check(not stray, f"jobs of deduplicated enqueues ran: {stray[:5]}")
    # one live task per key: spans of a key's tasks are disjoint, and ordered with acceptance
    overlaps, early = [], []
    for key, tasks in by_key.items():
        spans = []
        for s in tasks:
            times = [t for _, _, t in runs.starts.get(s.job, [])]
            times += [t for _, t in runs.ends.get(s.job, [])]
            if times:
                spans.append((min(times), max(times), s))
        spans.sort(key=lambda x: x[0])
        for (_, a1, a), (b0, _, b) in itertools.pairwise(spans):
            if b0 <= a1:
                overlaps.append((key, a.task_id, b.task_id))
            if b.t1_ns <= a1:  # b's enqueue returned before a's last run ended
                early.append((key, a.task_id, b.task_id))
    r.figures.update(max_tasks_per_key=max((len(t) for t in by_key.values()), default=0))
    r.check(not overlaps, f"two tasks of one key ran at once: {overlaps[:3]}")
    r.check(not early, f"a key's task accepted while its previous one lived: {early[:3]}")
    # at least once: every accepted task completed; twice only after a kill hit one of its runs
    missing = [s.task_id for s in accepted.values() if not runs.ends.get(s.job)]
    r.check(not missing, f"accepted tasks that never completed: {missing[:5]}")
    twice = [s.job for s in accepted.values() if len(runs.ends.get(s.job, [])) > 1]
    unexplained = [j for j in twice
                   if not any(pid in killed_pids for pid, _, _ in runs.starts[j])]
    cut = sum(1 for job, starts in runs.starts.items() for pid, _, _ in starts
              if pid in killed_pids and pid not in {p for p, _ in runs.ends.get(job, [])})
    r.figures.update(completed_twice=len(twice), runs_cut_by_kills=cut, keys_left=len(held))
    r.check(not unexplained, f"completed twice without a kill: {unexplained[:5]}")
    r.check(not held, f"unique keys left held after every task ended: {held[:3]}")
    r.check(not pool.unexpected_exits, f"workers exited: {pool.unexpected_exits}")
    # not a vacuous pass: keys were contended across levels and kills hit running keyed tasks
    r.check(len(accepted) >= 300 * env.profile.scale,
            f"only {len(accepted)} tasks accepted")
    r.check(len(sent) - len(accepted) >= 100, "too few enqueues were deduplicated")
    r.check(pool.kills >= 4 and cut > 0, f"{pool.kills} kills, {cut} runs hit")
