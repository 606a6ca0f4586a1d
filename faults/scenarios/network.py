"""7 a TCP proxy in front of Redis adds latency, resets connections, stalls them half-open and
drops replies. Dead connections must be noticed within the socket timeout, nothing lost, and
latency alone must not make any lease run out."""

from __future__ import annotations

import asyncio
import re
import time

import redis

from faults import checker, tasklog
from faults.harness import Env
from faults.ledger import produce
from faults.proxy import Proxy

SOCKET_TIMEOUT_S = 2.0
RECLAIMED = re.compile(r"reclaimed entry")


def _completed(admin: redis.Redis, key: str) -> int:
    return int(admin.hget(key, "completed") or 0)


async def _recovery(env: Env, admin: redis.Redis, limit: float) -> float:
    """Seconds until Redis has counted 10 more completions."""
    base = _completed(admin, env.keys.stats)
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if _completed(admin, env.keys.stats) >= base + 10:
            return time.monotonic() - t0
        await asyncio.sleep(0.05)
    return -1.0


async def proxy_faults(env: Env) -> None:
    r = env.result
    server = env.redis()
    proxy = Proxy(server.port)
    await proxy.start()
    url = f"redis://127.0.0.1:{proxy.port}/0"
    tq = env.app(url, socket_timeout=SOCKET_TIMEOUT_S)
    pool = env.pool(2, env.worker_env(url, FAULTS_SOCKET_TIMEOUT=str(SOCKET_TIMEOUT_S)),
                    concurrency=8, lease_ms=6000)
    pool.start()
    admin = env.admin()
    stop = asyncio.Event()
    producer = asyncio.create_task(produce(env.ledger, tq, rate=60, seconds=300, batch=3,
                                           ms=20, stop=stop))
    try:
        await asyncio.sleep(2.0)
        # latency alone: 150 ms on every chunk, both ways
        proxy.latency(0.15)
        await asyncio.sleep(6.0)
        proxy.latency(0.0)
        await asyncio.sleep(0.5)
        reclaims = len(RECLAIMED.findall(pool.logs()))
        reruns = sum(1 for s in tasklog.read(env.tasks).starts.values() if len(s) > 1)
        r.figures.update(latency_reclaims=reclaims, latency_reruns=reruns)
        r.check(reclaims == 0 and reruns == 0,
                f"latency alone caused {reclaims} reclaims and {reruns} re-runs")
        limit = SOCKET_TIMEOUT_S + 3.0
        for fault in ("reset", "stall", "drop"):
            t0 = time.monotonic_ns()
            n = getattr(proxy, fault)()
            # what can run twice: entries read and not acknowledged when the connections
            # broke (read at once, and again once completions resume, before the 6 s lease
            # can run out), and enqueues under way meanwhile (the producer sends them again)
            at_fault = env.in_flight(admin)
            took = await _recovery(env, admin, 20)
            env.fault(at_fault, env.in_flight(admin),
                      env.enqueues_during(t0, time.monotonic_ns()))
            r.figures[f"{fault}_conns"] = n
            r.figures[f"{fault}_recovery_s"] = round(took, 2)
            r.check(0 <= took <= limit, f"after {fault} of {n} connections, completions "
                    f"resumed after {took:.1f} s (limit {limit:.0f} s)")
            await asyncio.sleep(1.0)
    finally:
        stop.set()
        await producer
    await env.settle(60)
    v = env.verdict()
    bound = sum(env.rerunnable.values())
    r.figures["dup_bound"] = bound
    checker.report(r, v, max_dup=bound, rerunnable=env.rerunnable)
    r.check(not pool.unexpected_exits, f"workers exited: {pool.unexpected_exits}")
    admin.close()
    await proxy.close()
