"""9 SIGTERM drain and rolling restarts, 5 redis-server SIGKILLed and restarted, 6 client
connections killed (CLIENT KILL)."""

from __future__ import annotations

import asyncio
import time

from faults import checker, tasklog
from faults.harness import Env, first_completion_after
from faults.ledger import FAILED, OK, Background


async def rolling_restarts(env: Env) -> None:
    """SIGTERM one worker at a time (20 times) under load; tasks are shorter than the grace
    period, so none may be lost or run twice."""
    env.redis()
    tq = env.app()
    pool = env.pool(3, concurrency=8, lease_ms=2000, grace_s=10)
    pool.start()
    producer = Background(env.ledger, tq, rate=80, batch=4, ms=150)
    await asyncio.sleep(1.5)
    took = []
    t0 = time.monotonic()
    for i in range(env.profile.rolling_restarts):
        slot = i % pool.size
        # a process still importing has no SIGTERM handler yet (it would die by the signal,
        # holding nothing): stop only workers that run, which is what this scenario tests
        await env.until(lambda s=slot: pool.consuming(s), 30, f"worker {slot} consuming")
        took.append(await asyncio.to_thread(pool.replace, slot, 15.0))
        await asyncio.sleep(0.4)
    elapsed = time.monotonic() - t0
    await producer.stop()
    await env.settle(60)
    v = env.verdict()
    # SIGTERM lets running tasks finish within the grace period and acknowledges them: no
    # task is in flight at a fault, so none may run twice, and none may be dead-lettered
    checker.report(env.result, v, max_dup=0)
    # not a vacuous pass: jobs were accepted all along and ran
    offered = len(env.ledger.entries)
    accepted = len(env.ledger.jobs(OK))
    env.result.check(offered >= 0.5 * 80 * elapsed and accepted == offered,
                     f"{accepted} of {offered} jobs accepted in {elapsed:.0f} s at 80/s")
    env.result.check(len(v.completed) >= accepted, f"only {len(v.completed)} of {accepted} ran")
    env.result.figures["accepted"] = accepted
    env.result.figures.update(restarts=len(took), max_stop_s=round(max(took), 2),
                              reruns=sum(1 for s in v.runs.starts.values() if len(s) > 1))
    env.result.check(not pool.unexpected_exits,
                     f"workers exited badly on SIGTERM: {pool.unexpected_exits}")
    env.result.check(not v.dead, f"dead letters: {dict(v.dead)}")


async def redis_restarts(env: Env) -> None:
    """redis-server SIGKILLed and restarted three times under load, per persistence mode."""
    r = env.result
    for mode in ("always", "everysec", "none"):
        sub = Env(env.folder, mode, env.profile)
        try:
            await _redis_restarts(sub, mode)
        finally:
            await sub.close()
        for k, val in sub.result.figures.items():
            r.figures[f"{mode}.{k}"] = val
        r.failures += [f"[{mode}] {f}" for f in sub.result.failures]
        r.notes += [f"[{mode}] {n}" for n in sub.result.notes]


async def _redis_restarts(env: Env, mode: str) -> None:
    r = env.result
    server = env.redis(mode)
    tq = env.app()
    pool = env.pool(2, concurrency=8, lease_ms=2000)
    pool.start()
    producer = Background(env.ledger, tq, rate=100, batch=5, ms=10)
    await asyncio.sleep(2.0)
    outages: list[tuple[int, int]] = []
    recoveries: list[float] = []
    for _ in range(3):
        # a backlog at the moment of the kill: queued, running and finishing entries
        await env.ledger.enqueue(tq, "work", 150, ms=200)
        await asyncio.sleep(0.3)
        t_kill = time.monotonic_ns()
        server.kill()
        await asyncio.sleep(1.0)
        server.start()
        t_up = time.monotonic_ns()
        outages.append((t_kill, t_up))
        if mode != "none":
            # what can run twice: entries unacknowledged at the kill (AOF restores the group's
            # pending list as it was; read it before any lease runs out, so before a reclaim)
            # and enqueues caught by the kill (the producer sends them again)
            admin = env.admin()
            env.fault(env.in_flight(admin), env.enqueues_during(t_kill, t_up))
            admin.close()
        await env.until(lambda t=t_up: first_completion_after(env, t) is not None, 15,
                        "workers resumed after the restart")
        back = first_completion_after(env, t_up)
        recoveries.append(back if back is not None else -1)
        await asyncio.sleep(1.5)
    await producer.stop()
    await env.settle(60)
    _outage_enqueues(env, outages)
    r.figures["resume_s_max"] = round(max(recoveries), 2)
    r.check(all(0 <= x <= 5 for x in recoveries), f"workers resumed after {recoveries} s")
    r.check(not pool.unexpected_exits, f"workers exited: {pool.unexpected_exits}")
    v = env.verdict(check_records=mode != "none")
    if mode == "none":
        # the restart empties Redis: nothing in flight is left to run again
        checker.report(r, v, max_dup=0, allow_lost=True)
        r.figures["lost_reported"] = len(v.lost)
        r.check(len(v.lost) > 0, "Redis without persistence lost its backlog, yet the checker "
                "found nothing lost: the check is blind")
        logs = pool.logs()
        r.check("recreating consumer groups" in logs,
                "no worker said it recreated its consumer group")
        after = [j for j, e in env.ledger.entries.items()
                 if e.state == OK and e.t0_ns > outages[-1][1]]
        missing = [j for j in after if j not in v.completed]
        r.check(not missing, f"{len(missing)} jobs enqueued after the last restart never ran")
    else:
        bound = sum(env.rerunnable.values())
        r.figures["dup_bound"] = bound
        checker.report(r, v, max_dup=bound, rerunnable=env.rerunnable)


def _outage_enqueues(env: Env, outages: list[tuple[int, int]]) -> None:
    r = env.result
    during = [e for e in env.ledger.entries.values()
              if any(a <= e.t0_ns and e.t1_ns <= b for a, b in outages)]
    ok = [e.job for e in during if e.state == OK]
    r.check(not ok, f"{len(ok)} enqueues reported success while Redis was down")
    slow = max(((e.t1_ns - e.t0_ns) / 1e9 for e in during if e.state != OK), default=0.0)
    r.figures["outage_enqueues"] = len(during)
    r.figures["outage_failed"] = sum(1 for e in during if e.state == FAILED)
    r.figures["fail_fast_s"] = round(slow, 2)
    r.check(slow <= 3.0, f"an enqueue took {slow:.1f} s to fail during the outage")


async def client_kill(env: Env) -> None:
    """CLIENT KILL every normal connection (workers' and producer's) repeatedly."""
    r = env.result
    env.redis()
    tq = env.app()
    pool = env.pool(2, concurrency=8, lease_ms=2000)
    pool.start()
    producer = Background(env.ledger, tq, rate=100, batch=5, ms=10)
    await asyncio.sleep(2.0)
    admin = env.admin()
    killed = 0
    t_end = time.monotonic() + 8
    while time.monotonic() < t_end:
        t0 = time.monotonic_ns()
        killed += int(admin.execute_command("CLIENT", "KILL", "TYPE", "normal",
                                            "SKIPME", "yes"))
        # what can run twice: entries read and not yet acknowledged at the kill (an ack lost
        # with its connection leaves the entry to be reclaimed), read right after it (before
        # any lease runs out), and enqueues caught by the kill (the producer sends them again)
        env.fault(env.in_flight(admin), env.enqueues_during(t0, time.monotonic_ns()))
        await asyncio.sleep(0.5)
    t_last = time.monotonic_ns()
    await asyncio.sleep(6)
    await producer.stop()
    await env.settle(60)
    admin.close()
    runs = tasklog.read(env.tasks)
    per_s = [sum(1 for t in runs.end_times() if t_last + i * 10**9 <= t < t_last + (i + 1) * 10**9)
             for i in range(6)]
    back = next((i + 1 for i, n in enumerate(per_s) if n >= 50), None)
    r.figures.update(connections_killed=killed, per_s_after=per_s, back_within_s=back)
    r.check(back is not None and back <= 5, f"throughput after the kills: {per_s} per second")
    r.check(not pool.unexpected_exits, f"workers exited: {pool.unexpected_exits}")
    v = env.verdict()
    bound = sum(env.rerunnable.values())
    r.figures["dup_bound"] = bound
    checker.report(r, v, max_dup=bound, rerunnable=env.rerunnable)
