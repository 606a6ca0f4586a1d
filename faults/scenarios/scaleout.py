"""s19, s20: failovers under load: a Redis Cluster primary SIGKILLed (its replica is promoted) and a
Sentinel failover with a backlog, each with and without the write guarantee (``min_replicas``).

Without the guarantee the loss of acknowledged enqueues is counted and reported (Redis
replicates asynchronously: the old master acknowledged writes its successor never got); with it,
none may be lost (an enqueue the replicas did not confirm fails with NotReplicated, and the
ledger counts it as "unknown"). Duplicates are bounded by what was read or finished on the old
master from the fault until clients followed the new one, and counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from faults import checker, topology
from faults.harness import Env, completions_since
from faults.ledger import OK, UNKNOWN, Background
from faults.topology import LocalCluster, LocalSentinel

RATE = 300  # jobs/s offered; 1 worker of concurrency 4 runs about 150/s of 20 ms jobs: a backlog


def _skip(env: Env) -> bool:
    missing = topology.available()
    if missing:
        env.result.skipped = missing
    return bool(missing)


async def sentinel_failover(env: Env, guarantee: bool) -> None:
    if _skip(env):
        return
    setup = LocalSentinel(env.folder / "sentinel")
    await asyncio.to_thread(setup.start)
    try:
        env.servers += [setup.master, setup.replica]
        env.server = setup.master
        await _under_load(env, setup.url, guarantee, lambda: _sentinel_fault(env, setup))
    finally:
        setup.stop()


async def _sentinel_fault(env: Env, setup: LocalSentinel) -> None:
    new = await asyncio.to_thread(setup.failover, 60.0, True)
    env.server = new


async def cluster_kill(env: Env, guarantee: bool) -> None:
    if _skip(env):
        return
    cluster = LocalCluster(env.folder / "cluster")
    await asyncio.to_thread(cluster.start)
    try:
        env.servers += cluster.nodes
        env.server = cluster.primary_of(env.keys.stream)
        await _under_load(env, cluster.url, guarantee, lambda: _cluster_fault(env, cluster))
    finally:
        cluster.stop()


async def _cluster_fault(env: Env, cluster: LocalCluster) -> None:
    victim = cluster.primary_of(env.keys.stream)
    cluster.kill(victim)
    await asyncio.to_thread(cluster.wait_failover, victim, env.keys.stream)
    env.server = cluster.primary_of(env.keys.stream)


async def _under_load(env: Env, url: str, guarantee: bool,
                      fault: Callable[[], Awaitable[None]]) -> None:
    tq = env.app(url=url)
    if guarantee:
        tq.min_replicas, tq.replicas_timeout_ms = 1, 1000
    pool = env.pool(1, env=env.worker_env(url=url), concurrency=4)
    pool.start()
    env.tend(pool)
    producer = Background(env.ledger, tq, rate=RATE, batch=10, ms=20, seconds=120)
    await asyncio.sleep(3 * env.profile.scale)  # a backlog builds
    admin = env.admin()
    backlog = admin.xlen(env.keys.stream)
    in_flight = env.in_flight(admin)
    admin.close()
    t0 = time.monotonic_ns()
    await fault()
    t1 = time.monotonic_ns()
    await asyncio.sleep(2 * env.profile.scale)  # the producer goes on against the new master
    await producer.stop()
    await env.settle(120)
    v = env.verdict(check_records=False)
    # what can run twice: what was in flight at the fault, and what finished meanwhile on the
    # old master (its acks may be lost with it)
    window = completions_since(env, t0) - completions_since(env, t1)
    bound = len(in_flight) + max(window, 0) + len(env.enqueues_during(t0, t1))
    checker.report(env.result, v, max_dup=bound, allow_lost=not guarantee)
    offered = len(env.ledger.entries)
    accepted = len(env.ledger.jobs(OK))
    env.result.figures.update(
        guarantee=guarantee, backlog_at_fault=backlog, fault_s=round((t1 - t0) / 1e9, 1),
        offered=offered, accepted=accepted, unknown=len(env.ledger.jobs(UNKNOWN)),
        lost_acknowledged=len(v.lost), dup_bound=bound,
        refused_unreplicated=env.ledger.errors.get("NotReplicated", 0))
    if guarantee:
        env.result.check(not v.lost, f"{len(v.lost)} acknowledged enqueues lost with "
                                     "min_replicas=1")
    # not a vacuous pass: a backlog was there, the fault hit, work went on after it
    env.result.check(backlog > 0, "no backlog at the fault")
    env.result.check(accepted > 0.5 * offered, f"only {accepted} of {offered} accepted")
    env.result.check(completions_since(env, t1) > 0, "nothing ran after the failover")


async def sentinel_failover_unguarded(env: Env) -> None:
    """Sentinel failover with a backlog, no write guarantee: the loss is counted."""
    await sentinel_failover(env, guarantee=False)


async def sentinel_failover_guarded(env: Env) -> None:
    """Sentinel failover with a backlog, ``min_replicas=1``: no acknowledged enqueue lost."""
    await sentinel_failover(env, guarantee=True)


async def cluster_kill_unguarded(env: Env) -> None:
    """A Cluster primary SIGKILLed under load, no write guarantee: the loss is counted."""
    await cluster_kill(env, guarantee=False)


async def cluster_kill_guarded(env: Env) -> None:
    """A Cluster primary SIGKILLed under load, ``min_replicas=1``: nothing acknowledged lost."""
    await cluster_kill(env, guarantee=True)
