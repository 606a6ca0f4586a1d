"""13 memory pressure: Redis at maxmemory (noeviction) refuses enqueues cleanly, the workers
drain it without adding to it, and enqueues succeed again; no accepted task is lost."""

from __future__ import annotations

import asyncio

from faults import checker
from faults.app import QUEUE
from faults.harness import Env
from faults.ledger import FAILED, OK
from taskq.admin.queues import pause, resume
from taskq.admin.workers import list_workers

PAD = "x" * 512  # a payload of the size of a real task's arguments
ROOM = 1_500_000  # bytes of maxmemory above what Redis uses at the start


async def memory_pressure(env: Env) -> None:
    """Fill Redis to maxmemory with the queue paused (workers running), see enqueues refused
    with RedisOutOfMemory, resume: the workers drain it, every accepted task ends in a
    terminal record, the workers stay registered, and enqueues succeed again."""
    r = env.result
    env.redis(extra=["--maxmemory-policy", "noeviction"])
    tq = env.app()
    admin = env.admin()
    pool = env.pool(2, concurrency=8)
    try:
        pool.start()
        await env.until(lambda: len(admin.hkeys(f"{env.prefix}:workers")) == 2, 30,
                        "two workers registered")
        await pause(tq, QUEUE)  # the workers hold off while producers fill Redis
        used = int(admin.info("memory")["used_memory"])
        admin.config_set("maxmemory", used + ROOM)
        r.figures["maxmemory"] = used + ROOM
        state = OK
        for _ in range(2_000):  # bounded: 2,000 batches of 20 would be 20 MB
            state = await env.ledger.enqueue(tq, "padded", 20, pad=PAD)
            if state != OK:
                break
        refused = env.ledger.errors.get("RedisOutOfMemory", 0)
        r.figures.update(accepted=len(env.ledger.jobs(OK)), refused=refused,
                         used_at_full=int(admin.info("memory")["used_memory"]))
        r.check(state == FAILED and refused > 0,
                f"filling Redis ended with {state!r}, not a RedisOutOfMemory refusal "
                f"({dict(env.ledger.errors)})")
        await resume(tq, QUEUE)  # a DEL: allowed at maxmemory
        await env.settle(120)
        # the workers were never forgotten, and enqueues succeed again once it drained
        alive = [w.alive for w in await list_workers(tq)]
        r.figures["workers_alive"] = sum(alive)
        r.check(sum(alive) == 2, f"workers alive after the drain: {alive}")

        async def enqueue_ok() -> bool:
            return await env.ledger.enqueue(tq, "padded", 1, pad="again") == OK

        again = -1.0
        for i in range(300):  # up to about 30 s
            if await enqueue_ok():
                again = i * 0.1
                break
            await asyncio.sleep(0.1)
        r.figures["enqueue_ok_after_s"] = again
        r.check(again >= 0, "enqueues were still refused 30 s after the queue drained")
        await env.settle(60)
        stats = admin.hgetall(env.keys.stats)
        r.figures["records_lean"] = int(stats.get(b"records_lean", 0))
        r.figures["used_after"] = int(admin.info("memory")["used_memory"])
        r.check(not pool.unexpected_exits, f"workers exited: {pool.unexpected_exits}")
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
    checker.report(r, env.verdict())
