"""Workflows under SIGKILL: chords of 10 members and chains of 3 steps run while workers are
killed again and again (1,000 of each with --full; 200 of each in the quick profile), beside
a worker that crashes each time a step has finished and before the script completing it runs.

Checked from the task logs (what really ran) and the workflow hashes: every workflow ends
succeeded; every step ran (none lost); a chord's callback started exactly once, more only if
its own worker died while holding it (counted); no chain step and no callback started before
its predecessors ended, and each was given its predecessors' results (the tasks check their
input and log "bad" otherwise). Not vacuous: every workflow was accepted, kills happened, and
they hit steps in flight.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from faults import tasklog
from faults.harness import Env
from taskq import TaskQueue
from taskq.workflow import Workflow, chain, chord, start

MEMBERS = 10
CHORD_BASE = 1_000_000
CHAIN_BASE = 5_000_000
STEP_MS = 5


def chord_jobs(c: int) -> tuple[list[int], int]:
    first = CHORD_BASE + c * (MEMBERS + 1)
    return list(range(first, first + MEMBERS)), first + MEMBERS


def chain_jobs(k: int) -> list[int]:
    first = CHAIN_BASE + k * 4
    return [first, first + 1, first + 2]


async def _start_all(tq: TaskQueue, chords: int, chains: int) -> list[Workflow]:
    member, gather, nxt = (tq.registry[n] for n in ("wf_member", "wf_gather", "wf_next"))
    shapes = []
    for c in range(chords):
        jobs, callback = chord_jobs(c)
        shapes.append(chord([member.message(job=j, ms=STEP_MS) for j in jobs],
                            gather.step(job=callback, first=jobs[0], ms=STEP_MS)))
    for k in range(chains):
        a, b, c_ = chain_jobs(k)
        shapes.append(chain(member.message(job=a, ms=STEP_MS),
                            nxt.step(job=b, ms=STEP_MS), nxt.step(job=c_, ms=STEP_MS)))
    order = list(range(len(shapes)))
    random.Random(7).shuffle(order)  # chords and chains interleaved
    started: list[Workflow | None] = [None] * len(shapes)
    for i in range(0, len(order), 50):
        batch = order[i:i + 50]
        handles = await asyncio.gather(*(start(tq, shapes[j]) for j in batch))
        for j, h in zip(batch, handles, strict=True):
            started[j] = h
    return [w for w in started if w is not None]


def _bad_lines(folder: Path) -> list[str]:
    return [line for path in sorted(folder.glob("tasks.*.log"))
            for line in path.read_text().splitlines() if line.startswith("bad ")]


async def chords_and_chains(env: Env) -> None:
    full = env.profile.name == "full"
    chords = chains = 1000 if full else 200
    env.redis()
    tq = env.app()
    pool = env.pool(3, concurrency=8, lease_ms=2000)
    pool.start()
    env.tend(pool)
    # and a worker that dies each time a step has finished but before the script that
    # completes it (and counts it in its workflow) has run: respawned, it dies again
    crashing = env.pool(1, env.worker_env(FAULTS_CRASH_AT="before_ack"), concurrency=4,
                        lease_ms=2000)
    crashing.start()
    env.tend(crashing)
    await asyncio.sleep(1.5)  # let the workers start
    t0 = time.monotonic()
    starting = asyncio.create_task(_start_all(tq, chords, chains))
    admin = env.admin()
    keys: list[str] = []
    rng = random.Random()
    max_kills = 20 if full else 8

    def statuses() -> list[bytes | None]:
        pipe = admin.pipeline(transaction=False)
        for k in keys:
            pipe.hget(k, "status")
        return pipe.execute()  # type: ignore[no-any-return]

    # kills while the workflows are started and while they run
    enqueue_s = 0.0
    while pool.kills < max_kills:
        if starting.done() and not keys:
            keys = [w.key for w in starting.result()]
            enqueue_s = time.monotonic() - t0
        if keys and all(s == b"succeeded" for s in statuses()):
            break
        killed = pool.kill()
        if killed is not None:
            env.fault(env.in_flight(admin, pid=killed.popen.pid))
        await asyncio.sleep(rng.uniform(0.3, 1.0))
    crashing.respawn = False
    flows = await starting
    keys = [w.key for w in flows]
    enqueue_s = enqueue_s or time.monotonic() - t0
    await env.until(lambda: all(s == b"succeeded" for s in statuses()), 180 if full else 90,
                    "every workflow succeeded")
    done_s = time.monotonic() - t0
    final = statuses()
    admin.close()

    crashes = sum(1 for p in crashing.history if p.popen.poll() == 86)
    env.result.figures.update(workflows=len(flows), kills=pool.kills, crashes=crashes,
                              enqueue_s=round(enqueue_s, 1), done_s=round(done_s, 1))
    env.result.check(len(flows) == chords + chains, f"only {len(flows)} workflows started")
    env.result.check(all(s == b"succeeded" for s in final),
                     f"{sum(1 for s in final if s != b'succeeded')} workflows not succeeded")
    env.result.check(pool.kills >= 3, f"only {pool.kills} kills")
    env.result.check(crashes >= 1, "the before_ack crash point never fired")
    _check_runs(env, chords, chains)


def _check_runs(env: Env, chords: int, chains: int) -> None:
    """What the task logs say: nothing lost, callbacks once, nothing early, inputs right."""
    runs = tasklog.read(env.tasks)
    rerunnable = env.rerunnable
    callbacks = [chord_jobs(c)[1] for c in range(chords)]
    steps = [j for c in range(chords) for j in chord_jobs(c)[0]] + callbacks + [
        j for k in range(chains) for j in chain_jobs(k)]
    lost = [j for j in steps if not runs.ends.get(j)]
    extra_callback_runs = sum(max(0, len(runs.starts.get(j, [])) - 1) for j in callbacks)
    unexplained = [j for j in callbacks
                   if len(runs.starts.get(j, [])) > 1 and rerunnable[j] == 0]
    never_once = [j for j in callbacks if len(runs.starts.get(j, [])) < 1]
    early: list[int] = []

    def first_end(job: int) -> int:
        ends = runs.ends.get(job) or []
        return min((t for _, t in ends), default=1 << 62)

    for c in range(chords):
        jobs, callback = chord_jobs(c)
        ready = max(first_end(j) for j in jobs)
        if any(t < ready for _, _, t in runs.starts.get(callback, [])):
            early.append(callback)
    for k in range(chains):
        for prev, job in zip(chain_jobs(k), chain_jobs(k)[1:], strict=False):
            if any(t < first_end(prev) for _, _, t in runs.starts.get(job, [])):
                early.append(job)
    bad = _bad_lines(env.tasks)
    dup_steps = sum(max(0, len(runs.starts.get(j, [])) - 1) for j in steps)
    r = env.result
    r.figures.update(steps=len(steps), hit=sum(1 for j in steps if rerunnable[j]),
                     dup_runs=dup_steps, callback_reruns=extra_callback_runs)
    r.check(not lost, f"{len(lost)} steps never completed, e.g. {lost[:5]}")
    r.check(not never_once, f"{len(never_once)} callbacks never ran, e.g. {never_once[:5]}")
    r.check(not unexplained, f"callbacks ran twice without their worker dying: {unexplained[:5]}")
    r.check(not early, f"steps started before their predecessors ended: {early[:5]}")
    r.check(not bad, f"steps given a wrong input: {bad[:5]}")
    dup_unexplained = [j for j in steps if len(runs.starts.get(j, [])) > 1 and rerunnable[j] == 0]
    r.check(not dup_unexplained, f"steps ran twice, not in flight at a kill: "
                                 f"{dup_unexplained[:5]}")
    # not vacuous: the kills hit steps in flight
    r.check(sum(rerunnable.values()) > 0, "no kill hit a step in flight")
