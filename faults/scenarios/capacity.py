"""11 misconfiguration (an evicting maxmemory-policy; the stream deleted under load) and
12 sustained load at 70% of capacity, then overload at 2x."""

from __future__ import annotations

import asyncio
import statistics
import time

from faults import checker
from faults.harness import Env
from faults.ledger import FAILED, OK, Background, produce


async def evicting_policy(env: Env) -> None:
    """Start a worker against Redis with an evicting policy: it must refuse or warn loudly."""
    r = env.result
    for policy in ("allkeys-lru", "volatile-lru"):
        sub = Env(env.folder, policy, env.profile)
        try:
            sub.redis(extra=["--maxmemory", "200mb", "--maxmemory-policy", policy])
            pool = sub.pool(1, respawn=False)
            pool.start()
            proc = pool.procs[0].popen
            await sub.until(lambda p=pool: "maxmemory-policy" in p.logs() or
                            p.procs[0].popen.poll() is not None, 15, "a verdict")
            await asyncio.sleep(0.5)
            logs = pool.logs()
            exited = proc.poll()
            if exited not in (None, 0) and "ConfigError" in logs:
                what = "refused"
            elif "maxmemory-policy" in logs:
                what = "warned"
            else:
                what = "silent"
            r.figures[policy] = what
            r.check(what != "silent", f"a worker on {policy} said nothing")
            tq = sub.app()
            state = await sub.ledger.enqueue(tq, "work", 1, ms=1)
            r.figures[f"{policy}.enqueue"] = state
        finally:
            await sub.close()
    r.notes.append("the producer's enqueue is not checked against the policy (figures "
                   "'*.enqueue'); only workers check it")


async def stream_deleted(env: Env) -> None:
    """DEL the queue's stream (and so its group) under load: workers recreate the group and
    every job enqueued afterwards runs. Jobs in the deleted stream are gone (reported)."""
    r = env.result
    env.redis()
    tq = env.app()
    pool = env.pool(2, concurrency=8, lease_ms=2000)
    pool.start()
    producer = Background(env.ledger, tq, rate=80, batch=4, ms=30)
    await asyncio.sleep(2.5)
    await env.ledger.enqueue(tq, "work", 100, ms=200)  # a backlog to lose
    admin = env.admin()
    t_del = time.monotonic_ns()
    # what can run twice: only what was in flight when the stream went (read just before)
    env.fault(env.in_flight(admin))
    admin.delete(env.keys.stream)
    await asyncio.sleep(5)
    await producer.stop()
    await env.settle(60)
    v = env.verdict(check_records=False)
    admin.close()
    later = {j for j, e in env.ledger.entries.items()
             if e.state == OK and e.t0_ns > t_del + 500_000_000}
    missing = later - v.completed
    r.figures.update(deleted_lost=len(v.lost), later_jobs=len(later),
                     later_missing=len(missing))
    r.check(bool(later) and not missing, f"{len(missing)} of {len(later)} jobs enqueued after "
            "the deletion never ran")
    r.check(not pool.unexpected_exits, f"workers exited: {pool.unexpected_exits}")
    r.check("recreating consumer groups" in pool.logs(), "no worker recreated its group")
    bound = sum(env.rerunnable.values())
    r.figures["dup_bound"] = bound
    checker.report(r, v, max_dup=bound, rerunnable=env.rerunnable, allow_lost=True)


async def load(env: Env) -> None:
    """Calibrate capacity, run at 70% of it (memory must stay flat), then offer 2x with a
    backlog limit: the excess must be refused (BacklogFull), never accepted and lost."""
    r = env.result
    env.redis()
    backlog = 400
    tq = env.app(max_backlog=backlog)
    pool = env.pool(2, env.worker_env(FAULTS_RESULT_TTL="5"), concurrency=16, lease_ms=4000)
    pool.start()
    await asyncio.sleep(1.5)
    admin = env.admin()
    n = 1200
    await env.ledger.enqueue(tq, "work", n // 3, ms=50)
    await env.ledger.enqueue(tq, "work", n // 3, ms=50)
    await env.ledger.enqueue(tq, "work", n - 2 * (n // 3), ms=50)
    # the backlog limit (400) refuses part of that burst: count what was accepted
    accepted = len(env.ledger.jobs(OK))
    t0 = time.monotonic()
    await env.settle(60)
    capacity = accepted / max(0.1, time.monotonic() - t0)
    r.figures["capacity_per_s"] = round(capacity)
    rate = 0.7 * capacity
    samples: list[int] = []

    async def sample() -> None:
        while True:
            samples.append(int(admin.info("memory")["used_memory"]))
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample())
    before = len(env.ledger.entries)
    await produce(env.ledger, tq, rate=rate, seconds=env.profile.sustain_s, batch=10, ms=50)
    sustained = [e for j, e in env.ledger.entries.items() if j > before]
    refused_sustained = sum(1 for e in sustained if e.state != OK)
    sampler.cancel()
    third = max(1, len(samples) // 3)
    head, tail = statistics.median(samples[:third]), statistics.median(samples[-third:])
    growth = tail - head
    r.figures.update(sustain_rate=round(rate), sustain_s=env.profile.sustain_s,
                     mem_head_mb=round(head / 2**20, 2), mem_tail_mb=round(tail / 2**20, 2),
                     refused_at_70pct=refused_sustained)
    r.check(growth <= max(0.2 * head, 2 * 2**20),
            f"memory grew from {head / 2**20:.1f} MB to {tail / 2**20:.1f} MB at 70% load")
    before = len(env.ledger.entries)
    # 2x the measured capacity, and at least more than the workers could ever do
    # (2 x 16 slots of 50 ms tasks = 640/s), so a low measurement cannot hide the overload
    offered = max(2 * capacity, 1.2 * 2 * 16 * 1000 / 50)
    r.figures["overload_rate"] = round(offered)
    await produce(env.ledger, tq, rate=offered, seconds=env.profile.overload_s, batch=20,
                  ms=50)
    over = [e for j, e in env.ledger.entries.items() if j > before]
    refused = [e for e in over if e.state == FAILED]
    r.figures.update(overload_offered=len(over), overload_refused=len(refused),
                     refusals={k: v for k, v in env.ledger.errors.items() if k != "ok"})
    r.check(bool(refused), "2x overload was never refused (BacklogFull)")
    r.check(all(e.error == "BacklogFull" for e in refused),
            f"refusals other than BacklogFull: {[e.error for e in refused][:5]}")
    await env.settle(90)
    admin.close()
    # records live 5 s here (memory must stay flat), so the task log says how jobs ended;
    # no fault: nothing runs twice, and no healthy job may be dead-lettered
    v = env.verdict(check_records=False)
    checker.report(r, v, max_dup=0)
    r.figures["max_backlog"] = backlog
