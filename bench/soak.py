"""Soak: taskq at 70% of its measured drain capacity for a minute, sampled every second.
Flat memory, a flat stream and a flat worker RSS, and every job run exactly once: the jobs are
numbered, each sets its bit in a bitmap on the sink, so lost and duplicated jobs are counted id
by id (a lost job and a duplicate of another cannot cancel out)."""

from __future__ import annotations

import json
import time
from typing import Any

from bench.phases import QUEUE_CPU, Servers, offer_in_background
from bench.procs import WorkerProc, env
from bench.systems import System
from taskq.keys import GROUP, QueueKeys  # the harness runs in the project's venv

SEEN_KEY = "bench:seen"  # as in bench.peers._common (a peer venv module: not imported here)
DUPS_KEY = "bench:dups"
RESULT_TTL_S = 10  # records of finished tasks kept 10 s, so memory reaches a steady state
PRODUCER_CPU = 0  # beside Redis: capacity was measured with CPU 1 all the worker's


def soak(srv: Servers, system: System, capacity: float, seconds: float) -> dict[str, Any]:
    stream = QueueKeys("bench", "bench").stream
    rate = round(0.7 * capacity)
    e = env(srv.sink.url, srv.queue.url, system.concurrency, job="ids")
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
                "done": int(srv.sink.client.bitcount(SEEN_KEY)),
            })
            time.sleep(1.0)
        stdout, stderr = producer.communicate()
        if producer.returncode != 0:
            out["error"] = stderr[-2000:]
            return out
        sent = int(json.loads(stdout.strip().splitlines()[-1])["sent"])
        deadline = time.monotonic() + 30
        while int(srv.sink.client.bitcount(SEEN_KEY)) < sent and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
    tally = by_id(srv.sink.client.get(SEEN_KEY) or b"", srv.sink.client.hgetall(DUPS_KEY), sent)
    out.update(sent=sent, **tally, samples=samples)
    return out


def by_id(seen: bytes, dups: dict[bytes, bytes], sent: int) -> dict[str, Any]:
    """Job ids 0..sent-1 against the bitmap of those that ran (bit i = byte i//8, bit 7-i%8,
    as SETBIT numbers them) and the extra runs per id: each figure counted id by id."""
    ran = {i for i in range(len(seen) * 8) if seen[i // 8] >> (7 - i % 8) & 1}
    lost = sorted(set(range(sent)) - ran)
    extra = {int(k): int(v) for k, v in dups.items()}
    unexpected = sorted(i for i in ran | set(extra) if i >= sent)
    return {"done": len(ran & set(range(sent))), "lost": len(lost), "lost_ids": lost[:20],
            "duplicates": sum(extra.values()), "duplicated_jobs": len(extra),
            "duplicate_ids": sorted(extra)[:20], "unexpected": len(unexpected)}
