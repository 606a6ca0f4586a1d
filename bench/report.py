"""docs/benchmarks.md and docs/benchmarks/*.png from one results JSON."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.systems import ROOT

DOC = ROOT / "docs" / "benchmarks.md"
CHARTS = ROOT / "docs" / "benchmarks"


def _stats(trials: list[dict[str, Any]], system: str, key: str) -> list[float]:
    return [t[key] for t in trials if t.get("system") == system and t.get(key) is not None]


def _cell(vals: list[float], fmt: str = "{:,.0f}") -> str:
    if not vals:
        return "n/a"
    med = fmt.format(statistics.median(vals))
    if len(vals) == 1:
        return med
    return f"{med} ({fmt.format(min(vals))}-{fmt.format(max(vals))})"


def _median(vals: list[float]) -> float:
    return statistics.median(vals) if vals else 0.0


def table(result: dict[str, Any]) -> str:
    th, lat = result["throughput"], result["latency"]
    names = list(result["systems"])
    names.sort(key=lambda n: -_median(_stats(th, n, "drain_rate")))
    rows = ["| queue | drain jobs/s, 1 process | enqueue jobs/s, 1 call each | bulk enqueue "
            "jobs/s | latency p50 ms | latency p99 ms | Redis cmds/job | Redis µs/job | "
            "worker RSS MB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in names:
        rows.append("| " + " | ".join([
            f"**{n}**" if n == "taskq" else n,
            _cell(_stats(th, n, "drain_rate")),
            _cell(_stats(th, n, "enqueue_rate")),
            _cell(_stats(th, n, "bulk_rate")),
            _cell(_stats(lat, n, "p50_ms"), "{:.2f}"),
            _cell(_stats(lat, n, "p99_ms"), "{:.2f}"),
            _cell(_stats(th, n, "cmds_per_job"), "{:.1f}"),
            _cell(_stats(th, n, "redis_usec_per_job"), "{:.1f}"),
            _cell(_stats(th, n, "rss_mb"), "{:.0f}"),
        ]) + " |")
    return "\n".join(rows)


def scaling_table(result: dict[str, Any]) -> str:
    sc = result.get("scaling") or []
    procs = sorted({t["procs"] for t in sc if "procs" in t})
    if not procs:
        return "_not run_"
    rows = ["| queue | " + " | ".join(f"{p} process{'es' if p > 1 else ''}" for p in procs)
            + " |", "|---|" + "---:|" * len(procs)]
    for n in dict.fromkeys(t["system"] for t in sc):
        cells = [_cell([t["drain_rate"] for t in sc if t["system"] == n
                        and t.get("procs") == p and t.get("drain_rate")]) for p in procs]
        rows.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def soak_text(result: dict[str, Any]) -> str:
    s = result.get("soak")
    if not s:
        return "_not run_"
    if s.get("error"):
        return f"soak failed: {s['error']}"
    smp = s["samples"]
    tail = smp[len(smp) // 2:]
    first = smp[: max(1, len(smp) // 6)]
    mem = [x["used_memory_mb"] for x in tail]
    rss = [x["worker_rss_mb"] for x in tail]
    xlen = [x["stream_len"] for x in smp]
    return (f"{s['system']} offered {s['rate']:,}/s for {s['seconds']:.0f} s: {s['sent']:,} sent, "
            f"{s['done']:,} run, lost {s['lost']}, run twice {s['duplicates']} (counted job id by "
            f"job id; {s.get('unexpected', 0)} never sent). Redis used_memory "
            f"{_median([x['used_memory_mb'] for x in first]):.1f} MB at the start, "
            f"bounded after the first record TTL (records kept {s.get('result_ttl_s', 10)} s in "
            "the soak instead of the default hour, in 10 s buckets: a sawtooth), "
            f"{min(mem):.1f}-{max(mem):.1f} MB over the second half; stream length at most "
            f"{max(xlen):,}; worker RSS {min(rss):.0f}-{max(rss):.0f} MB over the second half.")


def charts(result: dict[str, Any]) -> list[str]:
    import matplotlib  # noqa: PLC0415  (only when charts are drawn)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    CHARTS.mkdir(parents=True, exist_ok=True)
    th, lat = result["throughput"], result["latency"]
    names = sorted(result["systems"], key=lambda n: -_median(_stats(th, n, "drain_rate")))
    made = []

    def bars(fname: str, title: str, series: list[tuple[str, list[dict[str, Any]], str]],
             ylabel: str, log: bool = False) -> None:
        fig, ax = plt.subplots(figsize=(10, 4.5))
        width = 0.8 / len(series)
        for k, (label, trials, key) in enumerate(series):
            meds, lo, hi = [], [], []
            for n in names:
                v = _stats(trials, n, key)
                m = _median(v)
                meds.append(m)
                lo.append(m - min(v) if v else 0)
                hi.append(max(v) - m if v else 0)
            xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(names))]
            colors = ["#d62728" if n == "taskq" else None for n in names]
            b = ax.bar(xs, meds, width, yerr=[lo, hi], label=label, capsize=2)
            if len(series) == 1:
                for bar, c in zip(b, colors, strict=True):
                    if c:
                        bar.set_color(c)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
        if len(series) > 1:
            ax.legend()
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(CHARTS / fname, dpi=100)
        plt.close(fig)
        made.append(fname)

    bars("drain.png", "Drain rate, one worker process (median, min-max)",
         [("drain", th, "drain_rate")], "jobs/s")
    bars("enqueue.png", "Enqueue rate (median, min-max)",
         [("one call per job", th, "enqueue_rate"), ("bulk API", th, "bulk_rate")],
         "jobs/s (log)", log=True)
    bars("latency.png", f"End-to-end latency at {result['profile']['latency_rate']:.0f} jobs/s",
         [("p50", lat, "p50_ms"), ("p99", lat, "p99_ms")], "ms (log)", log=True)
    bars("redis_cost.png", "Redis commands per job (enqueue + run)",
         [("commands", th, "cmds_per_job")], "commands/job")
    _scaling_chart(plt, result, made)
    _soak_chart(plt, result, made)
    return made


def _scaling_chart(plt: Any, result: dict[str, Any], made: list[str]) -> None:
    sc = [t for t in result.get("scaling") or [] if t.get("drain_rate")]
    if not sc:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for n in dict.fromkeys(t["system"] for t in sc):
        procs = sorted({t["procs"] for t in sc if t["system"] == n})
        meds = [_median([t["drain_rate"] for t in sc if t["system"] == n and t["procs"] == p])
                for p in procs]
        ax.plot(procs, meds, marker="o", label=n)
    ax.set_xlabel("worker processes")
    ax.set_ylabel("jobs/s")
    ax.set_xticks(sorted({t["procs"] for t in sc}))
    ax.set_title("Drain rate by worker processes")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(CHARTS / "scaling.png", dpi=100)
    plt.close(fig)
    made.append("scaling.png")


def _soak_chart(plt: Any, result: dict[str, Any], made: list[str]) -> None:
    s = result.get("soak")
    if not s or not s.get("samples"):
        return
    smp = s["samples"]
    t = [x["t"] for x in smp]
    fig, axes = plt.subplots(4, 1, figsize=(8, 8), sharex=True)
    for ax, key, label in zip(axes, ["used_memory_mb", "stream_len", "worker_rss_mb", "done"],
                              ["Redis used_memory MB", "stream length", "worker RSS MB",
                               "jobs run"], strict=True):
        ax.plot(t, [x[key] for x in smp])
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[-1].set_xlabel("seconds")
    axes[0].set_title(f"Soak: {s['system']} at {s['rate']:,} jobs/s (70% of capacity)")
    fig.tight_layout()
    fig.savefig(CHARTS / "soak.png", dpi=100)
    plt.close(fig)
    made.append("soak.png")


def write(result: dict[str, Any], json_path: Path) -> None:
    made = charts(result)
    prof = result["profile"]
    m = result["machine"]
    vers = "; ".join(
        f"{n}: " + ", ".join(f"{p} {v}" for p, v in vs.items() if v)
        for n, vs in result["versions"].items())
    models = "\n".join(f"| {n} | {s['model']} | {s['redelivers']} |"
                       for n, s in result["systems"].items())
    errors = [t for k in ("throughput", "latency", "scaling") for t in result.get(k) or []
              if t.get("error")]
    err_text = "\n".join(f"- {t['system']}: {t['error'][:300]}" for t in errors) or "none"
    img = "\n\n".join(f"![{f}](benchmarks/{f})" for f in made)
    rel = json_path.relative_to(ROOT)
    DOC.write_text(f"""# Benchmarks

taskq against peer Redis queues, all on one private Redis. Produced by `./dev bench`
(`python -m bench`; `--quick` for a few minutes). Raw results of this run: `{rel}`.

## Results

{table(result)}

Each cell: median (min-max) over {prof['repeats']} interleaved rounds (latency:
{prof['latency_repeats']} rounds). Sorted by drain rate. Each round runs every queue once, in an
order rotated from round to round; taskq and the plain loop always run back to back (which one
first alternates), since the machine's speed drifts within seconds and their ratio is the
floor comparison.

- **drain**: {prof['enqueue_n']:,} jobs enqueued first, then one worker process started; the rate
  comes from the jobs' own completion times, the first 5% left out (worker start-up excluded).
  A drain stops counting after {prof['drain_cap_s']:.0f} s (slow queues finish fewer jobs).
- **enqueue**: {prof['enqueue_n']:,} jobs, one API call each, from one producer process.
  **bulk**: {prof['bulk_n']:,} jobs through the queue's bulk API, {prof['bulk_chunk']:,} per call
  (n/a: the queue has none).
- **latency**: a warmed-up worker, jobs offered at {prof['latency_rate']:.0f}/s for
  {prof['latency_s']:.0f} s, one enqueue call each; latency = job start of its Redis write -
  the time the producer made the call.
- **Redis cmds/job, µs/job**: every command the queue's Redis executed for enqueue + run,
  amortized per job, from `INFO commandstats` (commands run inside Lua scripts count too, so a
  script is 1 + what it calls); µs is Redis's own time in those commands. The job's own
  round trip goes to a separate sink Redis and is not counted.
- **worker RSS**: all processes of the worker (supervisors and pool children included) at the
  end of the drain.
- **the floor** (`plain-streams`, `bench/peers/plain.py`): the fastest plain Redis Streams
  consumer we could write, with nothing of a queue on top (no records, leases, retries or
  reclaim). Commands packed and replies parsed by hiredis on raw asyncio connections (as taskq's
  own lane does), the next `XREADGROUP` in flight while the last batch's jobs run, 50 runners fed
  by a hand-off queue, and finished entries acknowledged in the background, each batch one
  `XACK` + `XDEL` written together (gathered for up to 2 ms while busy). `plain-naive`
  (`bench/peers/plain_naive.py`, the floor before issue 19) is the loop most people write:
  redis-py, read a batch, run it, `XACK` it, and only then read again.

## Worker processes

{scaling_table(result)}

{prof['scaling_n']:,} jobs pre-enqueued, drained by 1, 2 and 4 worker processes of the same
queue (here the processes may run on either CPU; Redis stays on CPU 0).

## Soak

{soak_text(result)}

## Charts

{img}

## Setup

- Machine: {m['cpu']}, {m['cpus']} CPUs, {m['memory_gb']} GB, Linux {m['kernel']},
  Python {m['python']}, Redis {result['redis']} (no persistence, flushed before every trial).
- CPU placement: the queue's Redis and the sink Redis on CPU 0 (`taskset`), producer and
  worker processes on CPU 1. The machine is shared: other work on it adds noise.
- The job: `noop(i)` making one Redis round trip (`RPUSH` of `i` and its completion time to the
  sink Redis) on its own connection, written in each queue's idiom (async where the queue is
  async). Per-job logging off everywhere (log level WARNING).
- taskq commit: {result.get('commit', 'not recorded')}. Versions: {vers}.
- Peers run from their own virtualenvs under `bench/.peers-venv/` (never project
  dependencies); adapters are `bench/peers/<name>.py`.

| queue | worker model (one process) | a job whose worker is killed mid-run |
|---|---|---|
{models}

Errors during this run: {err_text}
""")
