"""1 control, 2 workers SIGKILLed at random moments, 3 crash points inside each transition."""

from __future__ import annotations

import asyncio
import random
import time

import redis

from faults import checker
from faults.harness import Env
from faults.ledger import OK, produce
from faults.workers import WorkerPool


async def control(env: Env) -> None:
    """No fault: every job completes once."""
    env.redis()
    tq = env.app()
    pool = env.pool(2, concurrency=8)
    pool.start()
    n = env.profile.n(600)
    await produce(env.ledger, tq, rate=300, seconds=n / 300, batch=20, ms=5)
    await env.settle(60)
    v = env.verdict()
    # no fault: nothing can run twice, and no healthy job may be dead-lettered
    checker.report(env.result, v, max_dup=0)
    env.result.check(v.figures["enq_ok"] == n, f"only {v.figures['enq_ok']} of {n} enqueued")
    env.result.check(not pool.unexpected_exits, f"workers exited: {pool.unexpected_exits}")


async def kill_workers(env: Env) -> None:
    """SIGKILL random workers while a producer runs; the harness respawns them."""
    env.redis()
    tq = env.app()
    concurrency = 8
    pool = env.pool(3, concurrency=concurrency, lease_ms=2000)
    pool.start()
    env.tend(pool)
    seconds = 10 * env.profile.scale
    producer = asyncio.create_task(produce(env.ledger, tq, rate=120, seconds=seconds,
                                           batch=6, ms=40))
    await asyncio.sleep(1.5)  # let the workers start
    rng = random.Random()
    admin = env.admin()
    while not producer.done():
        # a kill that hits a worker still starting up (or one that happens to hold nothing)
        # tests nothing: aim at a consuming worker that holds entries, at a random moment
        killed = pool.kill(await _busy_slot(env, pool, admin, rng))  # returns once it is gone
        if killed is not None:
            # what can run twice: the entries the dead process held (running, finished but
            # not yet acknowledged, prefetched), frozen under its consumer until the lease
            # (2 s) lets another worker reclaim them; read right after the kill
            env.fault(env.in_flight(admin, pid=killed.popen.pid))
        await asyncio.sleep(rng.uniform(0.4, 1.6))
    await producer
    admin.close()
    t0 = time.monotonic()
    await env.settle(90)
    v = env.verdict()
    bound = sum(env.rerunnable.values())
    # a healthy job ("work", 25 attempts) cannot die 25 times in these few kills: no healthy
    # dead letter is expected, not even worker_lost
    checker.report(env.result, v, max_dup=bound, rerunnable=env.rerunnable)
    env.result.figures.update(kills=pool.kills, dup_bound=bound,
                              drain_after_s=round(time.monotonic() - t0, 1))
    env.result.check(pool.kills < 25, f"{pool.kills} kills: healthy jobs may die 25 times")
    # not a vacuous pass: jobs were offered, accepted and ran, and kills hit work in flight
    offered = len(env.ledger.entries)
    accepted = len(env.ledger.jobs(OK))
    env.result.check(offered >= 0.5 * 120 * seconds and accepted == offered,
                     f"{accepted} of {offered} jobs accepted (about {120 * seconds:.0f} offered)")
    env.result.check(len(v.completed) >= accepted, f"only {len(v.completed)} of {accepted} ran")
    env.result.check(pool.kills >= 3 and bound > 0,
                     f"{pool.kills} kills, {bound} entries in flight at them: nothing was hit")


async def _busy_slot(env: Env, pool: WorkerPool, admin: redis.Redis,
                     rng: random.Random, within: float = 2.0) -> int | None:
    """A random slot whose worker is consuming and holds entries now; after ``within`` seconds
    without one, any live slot's (None: the pool picks)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        busy = [slot for slot, p in pool.procs.items()
                if p.popen.poll() is None and pool.consuming(slot)
                and env.in_flight(admin, pid=p.popen.pid)]
        if busy:
            return rng.choice(busy)
        await asyncio.sleep(0.05)
    return None


CRASH_POINTS = ("after_read", "before_ack", "before_retry", "before_dead")


async def crash_points(env: Env) -> None:
    """For each crash point: a worker that dies there (respawned, dies again) beside a healthy
    one. Jobs include ones that fail once (retry) and ones that always fail (dead letter)."""
    env.redis()
    tq = env.app()
    per_point = env.profile.n(60)
    crashes: dict[str, int] = {}
    for point in CRASH_POINTS:
        crash_pool = env.pool(1, env.worker_env(FAULTS_CRASH_AT=point), concurrency=4,
                              lease_ms=2000)
        crash_pool.start()
        await asyncio.sleep(1.0)  # the crashing worker gets the first reads
        await env.ledger.enqueue(tq, "work", per_point, ms=5)
        await env.ledger.enqueue(tq, "flaky", per_point // 3, fails=1)
        await env.ledger.enqueue(tq, "doomed", per_point // 6)
        # let it crash and come back a few times, then let a healthy worker finish the rest
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and len(crash_pool.history) < 4:
            env.note_deaths(crash_pool)  # what each crash left in flight, before a respawn
            crash_pool.tend()
            await asyncio.sleep(0.2)
        crash_pool.respawn = False
        exits = [p.popen.poll() for p in crash_pool.history]
        crashes[point] = sum(1 for c in exits if c == 86)
        await asyncio.to_thread(crash_pool.stop, 5.0)
        env.note_deaths(crash_pool)  # a crash during the stop too (no other worker runs yet)
    healthy = env.pool(2, concurrency=8, lease_ms=2000)
    healthy.start()
    await env.settle(90)
    v = env.verdict()
    # what can run twice: what each crashed process held, measured at each death; a healthy
    # job sharing a crashing process several times may be dead-lettered worker_lost (flaky
    # has 6 attempts), nothing else
    bound = sum(env.rerunnable.values())
    checker.report(env.result, v, max_dup=bound, rerunnable=env.rerunnable,
                   expected_dead={"worker_lost"})
    env.result.figures["dup_bound"] = bound
    env.result.figures.update({f"crash_{k}": n for k, n in crashes.items()})
    for point, n in crashes.items():
        env.result.check(n > 0, f"crash point {point} never fired")
    back = checker.attempts_never_go_back(v)
    env.result.check(not back, f"attempt counters went back for jobs {back[:10]}")
    doomed = {j for j, e in env.ledger.entries.items() if e.task == "doomed"}
    env.result.check(doomed <= set(v.dead), f"doomed jobs not dead-lettered: "
                     f"{sorted(doomed - set(v.dead))[:10]}")
    not_doomed_dead = set(v.dead) - doomed
    reasons = {r for j in not_doomed_dead for r in v.dead_reasons[j]}
    env.result.check(reasons <= {"worker_lost"},
                     f"healthy jobs dead-lettered for {reasons}")
    env.result.figures["dead_worker_lost"] = len(not_doomed_dead)
