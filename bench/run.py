"""``python -m bench``: run a profile, write the results JSON, the charts and the Markdown."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import phases, report, soak, venvs
from bench.phases import Profile, Servers
from bench.server import RedisServer
from bench.systems import ROOT, SYSTEMS, by_name

QUICK = Profile("quick", repeats=1, enqueue_n=3_000, bulk_n=10_000, bulk_chunk=1_000,
                drain_cap_s=8, latency_rate=200, latency_s=5, latency_repeats=1,
                scaling_n=6_000, scaling_procs=(1, 2, 4), scaling_repeats=1, soak_s=15)
# Five rounds of 20,000-job drains: on a shared 2-core machine a one-second drain moved by
# a third between rounds (the plain loop: 15,000-22,000/s in one run of 3 x 10,000).
FULL = Profile("full", repeats=5, enqueue_n=20_000, bulk_n=20_000, bulk_chunk=1_000,
               drain_cap_s=15, latency_rate=200, latency_s=10, latency_repeats=2,
               scaling_n=15_000, scaling_procs=(1, 2, 4), scaling_repeats=2, soak_s=60)
QUICK_SYSTEMS = ["taskq", "plain-streams", "taskiq-redis", "streaq", "arq"]
RESULTS = ROOT / "bench" / "results"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": model, "cpus": os.cpu_count(), "memory_gb": round(mem, 1),
            "kernel": platform.release(), "python": platform.python_version()}


def commit() -> str:
    r = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                       capture_output=True, text=True, check=False)
    return r.stdout.strip()


def summarize(trials: list[dict[str, Any]], key: str) -> dict[str, float] | None:
    vals = [t[key] for t in trials if t.get(key) is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def rotate(items: list[Any], k: int) -> list[Any]:
    k %= len(items)
    return items[k:] + items[:k]


def round_order(systems: list[Any], rep: int) -> list[Any]:
    """Every system once, rotated by round. The plain loop runs right next to taskq (after it in
    even rounds, before it in odd ones): the machine's speed drifts by a third within seconds
    here, and their ratio (the floor comparison) should see the same machine."""
    order = rotate(systems, rep)
    names = [s.name for s in order]
    if "taskq" in names and "plain-streams" in names:
        plain = order.pop(names.index("plain-streams"))
        at = [s.name for s in order].index("taskq")
        order.insert(at + (1 if rep % 2 == 0 else 0), plain)
    return order


def run_trials(srv: Servers, systems: list[Any], prof: Profile) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"throughput": [], "latency": [], "scaling": []}
    for rep in range(prof.repeats):  # repeats interleaved: every system once per round
        for s in round_order(systems, rep):
            log(f"throughput {s.name} round {rep + 1}/{prof.repeats}")
            t = _guard(lambda s=s, rep=rep: phases.throughput(srv, s, prof, f"t{rep}"), s.name)
            out["throughput"].append(t)
            log(f"  -> {_brief(t)}")
    for rep in range(prof.latency_repeats):
        for s in round_order(systems, rep):
            log(f"latency {s.name} round {rep + 1}/{prof.latency_repeats}")
            t = _guard(lambda s=s, rep=rep: phases.latency(srv, s, prof, f"l{rep}"), s.name)
            out["latency"].append(t)
            log(f"  -> {_brief(t)}")
    return out


def _guard(fn: Any, name: str) -> dict[str, Any]:
    try:
        result: dict[str, Any] = fn()
        return result
    except Exception as exc:  # one peer failing must not lose the run
        return {"system": name, "error": f"{type(exc).__name__}: {exc}"}


def _brief(t: dict[str, Any]) -> str:
    keys = ("enqueue_rate", "bulk_rate", "drain_rate", "cmds_per_job", "p50_ms", "p99_ms",
            "rss_mb", "completed", "error")
    return ", ".join(f"{k}={t[k]:.1f}" if isinstance(t[k], float) else f"{k}={t[k]}"
                     for k in keys if t.get(k) is not None)


def run_scaling(srv: Servers, systems: list[Any], prof: Profile) -> list[dict[str, Any]]:
    out = []
    for rep in range(prof.scaling_repeats):
        for s in systems:
            for k in prof.scaling_procs:
                log(f"scaling {s.name} x{k} round {rep + 1}")
                t = _guard(lambda s=s, k=k, rep=rep: phases.scaling(srv, s, prof, k,
                                                                     f"s{rep}"), s.name)
                out.append(t)
                log(f"  -> {_brief(t)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a few minutes: fewer peers, 1 round")
    ap.add_argument("--only", help="comma-separated queue names")
    ap.add_argument("--no-soak", action="store_true")
    ap.add_argument("--no-scaling", action="store_true")
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--no-docs", action="store_true", help="write the JSON only")
    ap.add_argument("--docs", action="store_true",
                    help="with --quick: rewrite docs/benchmarks.md too (the full run does)")
    ap.add_argument("--report", type=Path, help="only redraw the docs from a results JSON")
    args = ap.parse_args()
    if args.report:
        report.write(json.loads(args.report.read_text()), args.report.resolve())
        return
    prof = QUICK if args.quick else FULL
    if args.repeats:
        prof = dataclasses.replace(prof, repeats=args.repeats)
    names = args.only.split(",") if args.only else (
        QUICK_SYSTEMS if args.quick else [s.name for s in SYSTEMS])
    systems = by_name(names)
    venvs.ensure({s.venv for s in systems})
    started = time.time()
    srv = Servers(RedisServer(cpu=0).start(), RedisServer(cpu=0).start())
    try:
        result: dict[str, Any] = {
            "profile": dataclasses.asdict(prof), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "machine": machine(), "redis": srv.queue.version(), "commit": commit(),
            "versions": {s.name: venvs.versions(s) for s in systems},
            "systems": {s.name: {"model": s.model, "redelivers": s.redelivers,
                                 "concurrency": s.concurrency} for s in systems},
        }
        result.update(run_trials(srv, systems, prof))
        if not args.no_scaling:
            result["scaling"] = run_scaling(srv, _scaling_systems(systems, result), prof)
        if not args.no_soak and any(s.name == "taskq" for s in systems):
            cap = summarize([t for t in result["throughput"] if t["system"] == "taskq"],
                            "drain_rate")
            if cap:
                log(f"soak taskq at 70% of {cap['median']:.0f}/s for {prof.soak_s:.0f} s")
                taskq = by_name(["taskq"])[0]
                result["soak"] = _guard(lambda: soak.soak(srv, taskq, cap["median"],
                                                          prof.soak_s), "taskq")
        result["elapsed_s"] = time.time() - started
    finally:
        srv.queue.stop()
        srv.sink.stop()
    path = write_json(result, raw=args.quick and not args.docs)
    log(f"results: {path}")
    if not args.no_docs and (args.docs or not args.quick):
        report.write(result, path)
        log(f"wrote {report.DOC} and charts in {report.CHARTS}")


def _scaling_systems(systems: list[Any], result: dict[str, Any]) -> list[Any]:
    """taskq, the floor, the fastest peer by drain rate and the fastest crash-safe one."""
    peers = [s for s in systems if s.name not in ("taskq", "plain-streams", "plain-naive")]
    rates = {s.name: (summarize([t for t in result["throughput"] if t["system"] == s.name],
                                "drain_rate") or {"median": 0})["median"] for s in peers}
    picked = {"taskq", "plain-streams"}
    if rates:
        picked.add(max(rates, key=lambda n: rates[n]))
        safe = [s.name for s in peers if s.redelivers.startswith("yes")]
        if safe:
            picked.add(max(safe, key=lambda n: rates[n]))
    return [s for s in systems if s.name in picked]


def write_json(result: dict[str, Any], raw: bool) -> Path:
    """Full runs to bench/results/ (committed when reported), quick ones to results/raw/."""
    folder = RESULTS / "raw" if raw else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{result['profile']['name']}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    return path
