"""``python -m bench.profile``: sample taskq's worker with py-spy while it drains a backlog, and
print where its time goes (self time by function, and by file). Needs ``pip install py-spy``.

The worker is taskq's real worker process (``python -m worker``) with the benchmark's job,
pinned like the benchmark (Redis on CPU 0, the worker on CPU 1).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.phases import QUEUE_CPU, Servers, drain_rate, wait_done
from bench.procs import LOG_DIR, WorkerProc, env, produce
from bench.server import RedisServer
from bench.systems import by_name


def summarize(raw: Path, top: int) -> str:
    """py-spy's raw format: one collapsed stack per line, 'frame;frame;... count'."""
    self_t: collections.Counter[str] = collections.Counter()
    by_file: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        leaf = _function(frames[-1])
        self_t[leaf] += n
        by_file[_file(frames[-1])] += n
        for f in {_function(f) for f in frames}:
            incl[f] += n
    out = [f"{total} samples", "", "self time by file:"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in by_file.most_common(top)]
    out += ["", "self time by function:"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in self_t.most_common(top)]
    out += ["", "inclusive time (taskq and redis-py frames):"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in incl.most_common(400)
            if ("taskq/" in f or "redis/" in f or "bench/" in f)][: top * 2]
    return "\n".join(out)


def _function(frame: str) -> str:
    """'name (path:line)' without the line, and the path shortened."""
    name, _, where = frame.rpartition(" (")
    return f"{name} ({_file(frame)})" if where else frame


def _file(frame: str) -> str:
    # "function (path/to/file.py:123)"
    inside = frame.rpartition("(")[2].rstrip(")")
    path = inside.rpartition(":")[0]
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path or frame


def _measure(srv: Servers, worker: WorkerProc, n: int, empty: bool, name: str) -> str:
    """Without a job round trip nothing marks completions: watch the backlog shrink instead
    (from its first drop to empty, so start-up is left out)."""
    if not empty:
        cpu0, done0 = _cpu_s(worker.proc.pid), srv.done()
        done = wait_done(srv, n, 60, [worker])
        cpu1 = _cpu_s(worker.proc.pid)
        worker.stop()
        rate = drain_rate([t for _, t in srv.finished()]) or 0
        per_job = (cpu1 - cpu0) * 1e6 / max(1, done - done0)
        return (f"{name}: drained {done} jobs at {rate:,.0f}/s; "
                f"worker CPU {per_job:.1f} µs per job")
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + 60
    left = n
    while time.monotonic() < deadline:
        left = _left(srv, name, n)
        if first is None and left < n:
            first = (time.monotonic(), left)
        if left == 0:
            break
        time.sleep(0.005)
    end = time.monotonic()
    worker.stop()
    if first is None or left:
        return f"{name}: empty job, did not drain ({left} left)"
    rate = first[1] / (end - first[0])
    return f"{name}: empty job, {first[1]} jobs in {end - first[0]:.2f} s: {rate:,.0f}/s"


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (steadier than wall time on a busy machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _left(srv: Servers, name: str, n: int) -> int:
    """Jobs not yet acknowledged."""
    q = srv.queue.client
    if name == "taskq":
        return int(q.xlen("{bench:bench}:stream"))
    if name == "plain-streams":  # it deletes what it acknowledges
        return int(q.xlen("plain:bench"))
    groups = q.xinfo_groups("plain:bench") if q.exists("plain:bench") else []
    if not groups:
        return n
    return int(groups[0]["pending"]) + int(groups[0]["lag"] or 0)


def report(raw: Path, top: int) -> None:
    print(summarize(raw, top))


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.profile")
    ap.add_argument("--n", type=int, default=60_000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--summarize", type=Path, help="only summarize an earlier raw profile")
    ap.add_argument("--no-spy", action="store_true", help="only measure the drain rate")
    ap.add_argument("--system", default="taskq")
    ap.add_argument("--blocking", action="store_true",
                    help="pause the worker for each sample (slower, but no torn stacks)")
    ap.add_argument("--empty-job", action="store_true",
                    help="the job makes no round trip: the worker's own cost")
    args = ap.parse_args()
    if args.summarize:
        report(args.summarize, args.top)
        return
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    system = by_name([args.system])[0]
    srv = Servers(RedisServer(cpu=0).start(), RedisServer(cpu=0).start())
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    raw = LOG_DIR / "taskq-worker.pyspy.txt"
    try:
        e = env(srv.sink.url, srv.queue.url, system.concurrency)
        if args.empty_job:
            e["BENCH_JOB"] = "none"
        srv.reset()
        produce(system, e, 0, "bulk", "--n", str(args.n), "--chunk", "1000")
        worker = WorkerProc(system, e, QUEUE_CPU, "profile")
        time.sleep(0.8)  # imports and connection: not what we profile
        if args.no_spy:
            print(_measure(srv, worker, args.n, args.empty_job, system.name))
            return
        spy = subprocess.run([pyspy, "record", "--pid", str(worker.proc.pid), "--rate",
                              str(args.rate), "--duration", str(int(args.seconds)),
                              "--format", "raw", "--output", str(raw),
                              *([] if args.blocking else ["--nonblocking"])],
                             capture_output=True, text=True, check=False)
        done = 0 if args.empty_job else wait_done(srv, args.n, 60, [worker])
        worker.stop()
        if spy.returncode != 0:
            raise SystemExit(spy.stderr)
        rate = drain_rate([t for _, t in srv.finished()])
        print(f"drained {done} jobs at {rate or 0:,.0f}/s (py-spy attached); profile {raw}")
        print(summarize(raw, args.top))
    finally:
        srv.queue.stop()
        srv.sink.stop()


if __name__ == "__main__":
    main()
