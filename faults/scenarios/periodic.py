"""Worker SIGKILLs during periodic schedule ticks: no tick lost, none enqueued twice.

Three workers fire a 1-second schedule (catch-up policy ``all``: even a tick that came due
while no worker ran must be enqueued, once) while random ones are SIGKILLed just after tick
times, when the passes fire, and respawned. The schedule's periodic log (written by the same
script that enqueues, atomically) must hold every tick of the window once and no skip, and every
task it names must run.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time

from faults.app import QUEUE, ticks_ran_key
from faults.harness import Env

EVERY_S = 1.0


def _fires(admin_log: list[tuple[bytes, dict[bytes, bytes]]]) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in admin_log]


async def schedule_kills(env: Env) -> None:
    r = env.result
    env.redis()
    env.app()
    pool = env.pool(3, env.worker_env(FAULTS_SCHEDULE_EVERY_S=str(EVERY_S)), lease_ms=2000)
    pool.start()
    env.tend(pool)
    admin = env.admin()
    log_key = f"{{{env.prefix}:{QUEUE}}}:periodic-log"
    await env.until(lambda: admin.xlen(log_key) >= 1, 60, "a first tick fired")
    seconds = 12 * env.profile.scale
    rng = random.Random()
    t_end = time.monotonic() + seconds
    near_tick = 0
    while time.monotonic() < t_end:
        sec, usec = admin.time()
        into = (int(sec) * 1000 + int(usec) // 1000) % 1000 / 1000  # past the last tick, s
        # aim at the first half second after a tick, when the workers' passes fire it
        await asyncio.sleep((1.0 - into) + rng.uniform(0.0, 0.5))
        killed = pool.kill()
        if killed is not None:
            near_tick += 1
        await asyncio.sleep(rng.uniform(0.3, 1.2))
    await env.until(lambda: len(pool.alive()) == 3, 30, "the pool respawned")
    # two more ticks after the last kill, then stop and read the log
    last = admin.xlen(log_key)
    await env.until(lambda: admin.xlen(log_key) >= last + 2, 30, "ticks after the kills")
    log = _fires(admin.xrange(log_key))
    fired = [(int(e["k"]), e["t"]) for e in log if e["w"] == "fired"]
    skips = [e for e in log if e["w"] != "fired"]
    ticks = [t for t, _ in fired]
    holes = [(a, b) for a, b in itertools.pairwise(ticks) if b - a != 1000]
    tasks = {t for _, t in fired}

    def ran_all() -> bool:
        ran = {x.decode() for x in admin.smembers(ticks_ran_key(env.prefix))}  # type: ignore[union-attr]
        return tasks <= ran

    await env.until(ran_all, 60, "every fired tick ran")
    runs = int(admin.get(f"{env.prefix}:ticks-runs") or 0)  # type: ignore[arg-type]
    admin.close()
    logs = [p.log.read_text(errors="replace") for p in pool.history if p.killed and p.log.exists()]
    fired_by_killed = sum(text.count("schedule tick: enqueued") for text in logs)
    firing = sum(1 for p in pool.history if p.log.exists()
                 and "schedule tick: enqueued" in p.log.read_text(errors="replace"))
    r.figures.update(ticks=len(ticks), kills=pool.kills, near_tick=near_tick,
                     firing_processes=firing, fired_by_killed=fired_by_killed,
                     task_runs=runs, skipped=len(skips))
    r.check(not holes, f"ticks missing between: {holes[:5]}")
    r.check(len(set(ticks)) == len(ticks), "a tick was enqueued twice")
    r.check(len(tasks) == len(ticks), "two ticks share a task id")
    r.check(not skips, f"ticks skipped: {skips[:3]}")
    r.check(not pool.unexpected_exits, f"workers exited: {pool.unexpected_exits}")
    # not a vacuous pass: the window's ticks fired, kills hit processes that were firing ticks
    r.check(len(ticks) >= 0.7 * seconds, f"only {len(ticks)} ticks in {seconds:.0f} s")
    r.check(pool.kills >= 4, f"only {pool.kills} kills")
    r.check(fired_by_killed > 0 and firing >= 3,
            f"kills hit no firing worker ({fired_by_killed} fires by killed processes, "
            f"{firing} processes fired)")
