"""1 control, 2 workers SIGKILLed at random moments, 3 crash points inside each transition."""

from __future__ import annotations

import asyncio
import random
import time

from faults import checker
from faults.harness import Env
from faults.ledger import produce


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
    while not producer.done():
        pool.kill()
        await asyncio.sleep(rng.uniform(0.4, 1.6))
    await producer
    t0 = time.monotonic()
    await env.settle(90)
    v = env.verdict()
    bound = pool.kills * concurrency
    checker.report(env.result, v, max_dup=bound)
    env.result.figures.update(kills=pool.kills, dup_bound=bound,
                              drain_after_s=round(time.monotonic() - t0, 1))
    reasons = {r for rs in v.dead_reasons.values() for r in rs}
    env.result.check(reasons <= {"worker_lost"}, f"dead-letter reasons {reasons}")
    env.result.figures["dead_worker_lost"] = sum(v.dead.values())


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
            crash_pool.tend()
            await asyncio.sleep(0.2)
        crash_pool.respawn = False
        exits = [p.popen.poll() for p in crash_pool.history]
        crashes[point] = sum(1 for c in exits if c == 86)
        await asyncio.to_thread(crash_pool.stop, 5.0)
    healthy = env.pool(2, concurrency=8, lease_ms=2000)
    healthy.start()
    await env.settle(90)
    v = env.verdict()
    kills = sum(crashes.values())
    checker.report(env.result, v, max_dup=kills * 4)
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
