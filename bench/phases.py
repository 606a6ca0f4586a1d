"""One trial of each phase for one system. Every trial starts from empty servers.

CPU placement (2 cores): both Redis servers on CPU 0, the queue (producer and worker) on CPU 1.
The scaling phase lets the worker processes run on any CPU (several processes pinned to one
core cannot scale).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from bench.procs import WorkerProc, env, produce, start_produce
from bench.server import RedisServer, diff
from bench.systems import System

QUEUE_CPU = 1
DONE_KEY = "bench:done"


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    repeats: int
    enqueue_n: int  # single enqueue; also the drain backlog
    bulk_n: int
    bulk_chunk: int
    drain_cap_s: float  # a drain stops counting after this long
    latency_rate: float
    latency_s: float
    latency_repeats: int
    scaling_n: int
    scaling_procs: tuple[int, ...]
    scaling_repeats: int
    soak_s: float


@dataclass
class Servers:
    queue: RedisServer
    sink: RedisServer

    def reset(self) -> None:
        self.queue.reset()
        self.sink.reset()

    def done(self) -> int:
        return int(self.sink.client.llen(DONE_KEY))

    def finished(self) -> list[tuple[int, int]]:
        """(i, done µs) of every job that ran."""
        out = []
        for raw in self.sink.client.lrange(DONE_KEY, 0, -1):
            i, t = raw.split()
            out.append((int(i), int(t)))
        return out


def wait_done(srv: Servers, target: int, cap_s: float, workers: list[WorkerProc]) -> int:
    deadline = time.monotonic() + cap_s
    n = 0
    while time.monotonic() < deadline:
        n = srv.done()
        if n >= target or not any(w.alive() for w in workers):
            return n
        time.sleep(0.05)
    return n


def drain_rate(done_us: list[int]) -> float | None:
    """Jobs per second from the jobs' own completion times, the first 5% (start-up) left out."""
    if len(done_us) < 20:
        return None
    t = sorted(done_us)
    k = max(1, len(t) // 20)
    span = (t[-1] - t[k]) / 1e6
    return (len(t) - 1 - k) / span if span > 0 else None


def _per_job(stats: dict[str, tuple[int, int]], jobs: int) -> dict[str, float]:
    calls = sum(c for c, _ in stats.values())
    usec = sum(u for _, u in stats.values())
    scripts = sum(c for k, (c, _) in stats.items() if k in ("evalsha", "eval", "fcall"))
    return {"cmds": calls / jobs, "usec": usec / jobs, "scripts": scripts / jobs}


def throughput(srv: Servers, system: System, p: Profile, tag: str) -> dict[str, Any]:
    """Single enqueue of N jobs, then one worker drains them; then the bulk API alone."""
    out: dict[str, Any] = {"system": system.name, "tag": tag}
    e = env(srv.sink.url, srv.queue.url, system.concurrency)
    srv.reset()
    r = produce(system, e, QUEUE_CPU, "enqueue", "--n", str(p.enqueue_n))
    out["enqueue_rate"] = p.enqueue_n / r["seconds"]
    enq_stats = srv.queue.commandstats()
    cpu0 = srv.queue.cpu_s()
    worker = WorkerProc(system, e, QUEUE_CPU, tag)
    try:
        n = wait_done(srv, p.enqueue_n, p.drain_cap_s + 10, [worker])
        out["rss_mb"] = worker.rss_bytes() / 2**20
        drain_stats = diff(srv.queue.commandstats(), enq_stats)
        cpu1 = srv.queue.cpu_s()
    finally:
        worker.stop()
    finished = srv.finished()
    if n == 0:
        out["error"] = "no job ran: " + worker.tail()
        return out
    out["completed"] = n
    out["drain_rate"] = drain_rate([t for _, t in finished])
    enq = _per_job(enq_stats, p.enqueue_n)
    drn = _per_job(drain_stats, n)
    out["cmds_per_job"] = enq["cmds"] + drn["cmds"]
    out["scripts_per_job"] = enq["scripts"] + drn["scripts"]
    out["redis_usec_per_job"] = enq["usec"] + drn["usec"]
    out["redis_cpu_usec_per_job_drain"] = (cpu1 - cpu0) * 1e6 / n
    out["commands"] = {"enqueue": enq_stats, "drain": drain_stats}
    srv.reset()
    r = produce(system, e, QUEUE_CPU, "bulk", "--n", str(p.bulk_n), "--chunk", str(p.bulk_chunk))
    out["bulk_rate"] = p.bulk_n / r["seconds"] if r["seconds"] else None
    return out


def latency(srv: Servers, system: System, p: Profile, tag: str) -> dict[str, Any]:
    """Jobs offered at a fixed rate to a running, warmed-up worker; latency = run - send."""
    out: dict[str, Any] = {"system": system.name, "tag": tag, "rate": p.latency_rate}
    e = env(srv.sink.url, srv.queue.url, system.concurrency)
    srv.reset()
    worker = WorkerProc(system, e, QUEUE_CPU, tag)
    try:
        produce(system, e, QUEUE_CPU, "enqueue", "--n", "20")
        if wait_done(srv, 20, 30, [worker]) < 20:
            out["error"] = "worker did not warm up: " + worker.tail()
            return out
        srv.sink.client.delete(DONE_KEY)
        r = produce(system, e, QUEUE_CPU, "offer", "--rate", str(p.latency_rate),
                    "--seconds", str(p.latency_s))
        sent = int(r["sent"])
        wait_done(srv, sent, 15, [worker])
    finally:
        worker.stop()
    finished = srv.finished()
    lat = sorted((t - i) / 1000 for i, t in finished)
    out.update(sent=sent, completed=len(lat), unique=len({i for i, _ in finished}))
    if lat:
        q = statistics.quantiles(lat, n=100, method="inclusive")
        out.update(p50_ms=q[49], p99_ms=q[98], max_ms=lat[-1])
    return out


def scaling(srv: Servers, system: System, p: Profile, procs: int, tag: str) -> dict[str, Any]:
    """Drain N bulk-enqueued jobs with ``procs`` worker processes on any CPU."""
    out: dict[str, Any] = {"system": system.name, "tag": tag, "procs": procs}
    e = env(srv.sink.url, srv.queue.url, system.concurrency)
    srv.reset()
    r = produce(system, e, None, "bulk", "--n", str(p.scaling_n), "--chunk", str(p.bulk_chunk))
    if r["seconds"] is None:
        produce(system, e, None, "enqueue", "--n", str(p.scaling_n))
    workers = [WorkerProc(system, e, None, f"{tag}-{k}") for k in range(procs)]
    try:
        n = wait_done(srv, p.scaling_n, p.drain_cap_s + 10, workers)
    finally:
        for w in workers:
            w.stop()
    out["completed"] = n
    out["drain_rate"] = drain_rate([t for _, t in srv.finished()])
    return out


def offer_in_background(system: System, e: dict[str, str], rate: float, seconds: float,
                        cpu: int | None) -> Any:
    return start_produce(system, e, cpu, "offer", "--rate", str(rate),
                         "--seconds", str(seconds))
