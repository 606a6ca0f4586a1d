"""Soak: taskq at 70% of its measured drain capacity for a minute, sampled every second.
Flat memory, a flat stream and a flat worker RSS, and every job run exactly once."""

from __future__ import annotations

import json
import time
from typing import Any

from bench.phases import QUEUE_CPU, Servers, offer_in_background
from bench.procs import WorkerProc, env
from bench.systems import System
from taskq.keys import GROUP, QueueKeys  # the harness runs in the project's venv

COUNT_KEY = "bench:count"
RESULT_TTL_S = 10  # records of finished tasks kept 10 s, so memory reaches a steady state
PRODUCER_CPU = 0  # beside Redis: capacity was measured with CPU 1 all the worker's


def soak(srv: Servers, system: System, capacity: float, seconds: float) -> dict[str, Any]:
    stream = QueueKeys("bench", "bench").stream
    rate = round(0.7 * capacity)
    e = env(srv.sink.url, srv.queue.url, system.concurrency, job="count")
    e["BENCH_RESULT_TTL_S"] = str(RESULT_TTL_S)
    srv.reset()
    worker = WorkerProc(system, e, QUEUE_CPU, "soak")
    samples: list[dict[str, float]] = []
    out: dict[str, Any] = {"system": system.name, "rate": rate, "seconds": seconds,
                           "result_ttl_s": RESULT_TTL_S}
    try:
        time.sleep(1.0)
        producer = offer_in_background(system, e, rate, seconds, PRODUCER_CPU)
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds + 3:
            q = srv.queue.client
            pending = q.xpending(stream, GROUP)["pending"] if q.exists(stream) else 0
            samples.append({
                "t": time.monotonic() - t0,
                "used_memory_mb": srv.queue.used_memory() / 2**20,
                "stream_len": int(q.xlen(stream)),
                "pending": int(pending),
                "worker_rss_mb": worker.rss_bytes() / 2**20,
                "done": int(srv.sink.client.get(COUNT_KEY) or 0),
            })
            time.sleep(1.0)
        stdout, stderr = producer.communicate()
        if producer.returncode != 0:
            out["error"] = stderr[-2000:]
            return out
        sent = int(json.loads(stdout.strip().splitlines()[-1])["sent"])
        deadline = time.monotonic() + 30
        while int(srv.sink.client.get(COUNT_KEY) or 0) < sent and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
    done = int(srv.sink.client.get(COUNT_KEY) or 0)
    out.update(sent=sent, done=done, lost=max(0, sent - done), duplicates=max(0, done - sent),
               samples=samples)
    return out
