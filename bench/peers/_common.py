"""The job every queue runs, and the command protocol of an adapter.

The job makes exactly one Redis round trip on its own connection to a sink Redis (not the
queue's, so the queue's server counts only the queue's own work):
``RPUSH bench:done "<i> <done µs>"`` (drain and latency phases: the harness reads the list to
measure rates and latencies from the jobs themselves), or ``SETBIT bench:seen <i> 1`` when
``BENCH_JOB=ids`` (the soak, where memory must stay flat: one bit per job id, and the producer
numbers its jobs 0, 1, 2...; a bit already set is a duplicate, counted per id in the hash
``bench:dups``, so lost and duplicated jobs are found id by id and cannot cancel out).

Commands (the last stdout line is JSON):
    enqueue --n N            one call per job; prints {"seconds": ...}
    bulk --n N --chunk C     the queue's bulk API, C jobs per call; prints {"seconds": ...}
    offer --rate R --seconds S
                             jobs at a fixed rate, each with i = send time in µs (with
                             BENCH_JOB=ids: i = 0, 1, 2...); prints {"sent": n}
    worker --concurrency C   run the queue's own worker until SIGTERM
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio

URL = os.environ.get("BENCH_QUEUE_URL", "redis://127.0.0.1:6379/15")  # the queue's Redis
SINK_URL = os.environ.get("BENCH_SINK_URL", URL)  # the job's Redis
DONE_KEY = "bench:done"
SEEN_KEY = "bench:seen"  # a bitmap: bit i set once job i ran
DUPS_KEY = "bench:dups"  # a hash: job id -> extra runs
IDS_MODE = os.environ.get("BENCH_JOB", "list") == "ids"
NO_JOB = os.environ.get("BENCH_JOB", "list") == "none"  # profiling only: the queue's own cost
QUEUE = "bench"

_clients: dict[str, Any] = {}  # made on first use, in the worker process


def now_us() -> int:
    return time.time_ns() // 1000


def job_sync(i: int) -> None:
    """The job, for queues that run plain functions."""
    r = _clients.get("sync")
    if r is None:
        r = _clients["sync"] = redis.Redis.from_url(SINK_URL)
    if IDS_MODE:
        if r.setbit(SEEN_KEY, i, 1):  # already set: this job ran before
            r.hincrby(DUPS_KEY, str(i), 1)
    else:
        r.rpush(DONE_KEY, f"{i} {now_us()}")


async def job_async(i: int) -> None:
    """The job, for asyncio queues (one worker process has one event loop)."""
    if NO_JOB:
        return
    r = _clients.get("async")
    if r is None:
        r = _clients["async"] = redis.asyncio.Redis.from_url(SINK_URL)
    if IDS_MODE:
        if await r.setbit(SEEN_KEY, i, 1):  # already set: this job ran before
            await r.hincrby(DUPS_KEY, str(i), 1)
    else:
        await r.rpush(DONE_KEY, f"{i} {now_us()}")


class Producer:
    """What an adapter gives the protocol: ``send(i)`` one job, ``send_many(ids)`` the bulk
    API (None when the queue has none), ``close()``. Methods may be sync or async."""

    send: Callable[[int], Any]
    send_many: Callable[[list[int]], Any] | None = None

    def close(self) -> Any:
        return None


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    r = fn(*args)
    if inspect.isawaitable(r):
        r = await r
    return r


async def _enqueue(p: Producer, n: int) -> float:
    send = p.send
    if inspect.iscoroutinefunction(send):
        t0 = time.perf_counter()
        for i in range(n):
            await send(i)
    else:
        t0 = time.perf_counter()
        for i in range(n):
            send(i)
    return time.perf_counter() - t0


async def _bulk(p: Producer, n: int, chunk: int) -> float:
    assert p.send_many is not None
    t0 = time.perf_counter()
    for start in range(0, n, chunk):
        await _call(p.send_many, list(range(start, min(n, start + chunk))))
    return time.perf_counter() - t0


async def _offer(p: Producer, rate: float, seconds: float) -> int:
    """Offer ``rate`` jobs a second; above 1,000/s in 10 ms ticks through the bulk API."""
    tick = 1.0 / rate
    per_tick = 1
    if rate > 1000 and p.send_many is not None:
        per_tick = max(1, round(rate * 0.01))
        tick = per_tick / rate
    start = time.perf_counter()
    sent = 0
    k = 0
    while True:
        due = start + k * tick
        now = time.perf_counter()
        if due - start >= seconds:
            break
        if due > now:
            await asyncio.sleep(due - now)
        if per_tick == 1:
            await _call(p.send, sent if IDS_MODE else now_us())
        else:
            assert p.send_many is not None
            ids = list(range(sent, sent + per_tick)) if IDS_MODE else [now_us()] * per_tick
            await _call(p.send_many, ids)
        sent += per_tick
        k += 1
    return sent


async def _produce(make: Callable[[], Any], args: argparse.Namespace) -> dict[str, Any]:
    p: Producer = await _call(make)
    try:
        if args.command == "enqueue":
            return {"seconds": await _enqueue(p, args.n)}
        if args.command == "bulk":
            if p.send_many is None:
                return {"seconds": None}
            return {"seconds": await _bulk(p, args.n, args.chunk)}
        return {"sent": await _offer(p, args.rate, args.seconds)}
    finally:
        await _call(p.close)


def main(make_producer: Callable[[], Any], run_worker: Callable[[int], Any]) -> None:
    """The command line of an adapter module."""
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["enqueue", "bulk", "offer", "worker"])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--chunk", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=50)
    args = ap.parse_args()
    if args.command == "worker":
        r = run_worker(args.concurrency)
        if inspect.iscoroutine(r):
            _run(r)
        return
    out = _run(_produce(make_producer, args))
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


def exec_module(module: str, *argv: str) -> None:
    """Replace this process with ``python -m module argv`` (the queue's own CLI), so the
    harness's pid is the worker's."""
    os.execv(sys.executable, [sys.executable, "-m", module, *argv])


def _run(coro: Any) -> Any:
    """Run a producer or an asyncio worker on uvloop when it is installed (as uvicorn does for
    a FastAPI app): the same event loop for every async peer."""
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
