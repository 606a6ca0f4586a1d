"""s16 a rate limit across worker processes, s17 a concurrency limit while workers are killed:
both measured by the tasks themselves (the task log's start and end times)."""

from __future__ import annotations

import asyncio
import random
import time

from faults import checker, tasklog
from faults.harness import Env
from faults.ledger import OK

RATE = 50  # the "rated" task's limit, per second (faults/app.py)
CAP = 2  # the "capped" task's concurrency limit
WINDOW_SLACK = 8  # one batch: a worker's concurrency (what one read can start at once)


async def rate_limit(env: Env) -> None:
    """1,000 jobs of a task limited to 50/s, served by 3 worker processes: the starts span 20 s
    at 50/s (within 5%), and no 1-second window holds more than 50 plus one batch."""
    env.redis()
    tq = env.app()
    n = int(20 * RATE * env.profile.scale)
    pool = env.pool(3, concurrency=WINDOW_SLACK, lease_ms=2000)
    pool.start()
    await env.ledger.enqueue(tq, "rated", n)
    await env.until(lambda: len(tasklog.read(env.tasks).completed()) >= n, 60 + 2 * n / RATE,
                    "every job ended")
    await env.settle(60)
    v = env.verdict()
    checker.report(env.result, v, max_dup=0)
    runs = tasklog.read(env.tasks)
    firsts = sorted(s[0][2] for s in runs.starts.values() if s)
    admin = env.admin()
    throttled = int(admin.hget(env.keys.stats, "throttled") or 0)
    admin.close()
    env.result.check(len(firsts) == n, f"{len(firsts)} of {n} jobs started")
    if len(firsts) < 2:
        return
    span = (firsts[-1] - firsts[0]) / 1e9
    rate = (len(firsts) - 1) / span
    worst = _densest_second(firsts)
    env.result.figures.update(jobs=n, span_s=round(span, 2), rate_per_s=round(rate, 2),
                              max_in_1s=worst, throttled=throttled,
                              workers=len(pool.history))
    env.result.check(abs(rate - RATE) <= 0.05 * RATE,
                     f"measured {rate:.2f} starts/s, not within 5% of {RATE}/s")
    env.result.check(worst <= RATE + WINDOW_SLACK,
                     f"{worst} starts in one second > {RATE} + one batch ({WINDOW_SLACK})")
    # not a vacuous pass: the limit made tasks wait (the workers alone would run 1,000 at once)
    env.result.check(throttled >= n // 2, f"only {throttled} waits: the limit was hardly hit")
    env.result.check(not pool.unexpected_exits, f"workers exited: {pool.unexpected_exits}")


def _densest_second(times_ns: list[int]) -> int:
    worst, j = 0, 0
    for i, t in enumerate(times_ns):
        while times_ns[j] <= t - 1_000_000_000:
            j += 1
        worst = max(worst, i - j + 1)
    return worst


async def concurrency_limit(env: Env) -> None:
    """Jobs of a task limited to 2 at once, 3 worker processes SIGKILLed at random moments (and
    respawned): never more than 2 run at once, counting a killed run as running until its
    process was gone; every job completes."""
    env.redis()
    tq = env.app()
    n = env.profile.n(150)
    pool = env.pool(3, concurrency=8, lease_ms=2000)
    pool.start()
    env.tend(pool)
    await env.ledger.enqueue(tq, "capped", n, ms=60)
    await asyncio.sleep(1.5)
    deaths: dict[int, int] = {}  # pid -> monotonic ns when it was gone
    rng = random.Random()
    admin = env.admin()
    deadline = time.monotonic() + 60 * env.profile.scale
    while time.monotonic() < deadline and not checker.quiet(admin, env.keys):
        # aim at a worker running a capped job (a kill of an idle one tests nothing)
        busy = _running_pids(tasklog.read(env.tasks), deaths)
        slots = [slot for slot, p in pool.procs.items()
                 if p.popen.pid in busy and p.popen.poll() is None]
        killed = pool.kill(rng.choice(slots)) if slots else None
        if killed is not None:
            deaths[killed.popen.pid] = time.monotonic_ns()
            env.fault(env.in_flight(admin, pid=killed.popen.pid))
        await asyncio.sleep(rng.uniform(0.5, 1.5) if killed is not None else 0.05)
        if len(deaths) >= 6:
            break
    admin.close()
    await env.until(lambda: len(tasklog.read(env.tasks).completed()) >= n, 120,
                    "every job ended")
    await env.settle(60)
    v = env.verdict()
    bound = sum(env.rerunnable.values())
    checker.report(env.result, v, max_dup=bound, rerunnable=env.rerunnable)
    runs = tasklog.read(env.tasks)
    intervals, cut = _runs(runs, deaths)
    peak = _peak(intervals)
    env.result.figures.update(jobs=n, kills=pool.kills, runs=len(intervals),
                              runs_cut_by_kills=cut, peak_running=peak, dup_bound=bound)
    env.result.check(peak <= CAP, f"{peak} ran at once > the limit {CAP}")
    # not a vacuous pass: the limit was reached, and kills hit running work
    env.result.check(peak == CAP, f"never {CAP} at once (peak {peak}): the limit was not tested")
    env.result.check(cut > 0, "no kill hit a running job")
    accepted = len(env.ledger.jobs(OK))
    env.result.check(len(v.completed) >= accepted, f"only {len(v.completed)} of {accepted} ran")


def _running_pids(runs: tasklog.Runs, deaths: dict[int, int]) -> set[int]:
    """Processes (not killed yet) with a run that has started and not ended."""
    out: set[int] = set()
    for job, starts in runs.starts.items():
        ended = {pid for pid, _ in runs.ends.get(job, [])}
        out |= {pid for pid, _, _ in starts if pid not in ended and pid not in deaths}
    return out


def _runs(runs: tasklog.Runs, deaths: dict[int, int]) -> tuple[list[tuple[int, int]], int]:
    """(start, end) of every run; a run without an end ended when its process died."""
    out: list[tuple[int, int]] = []
    cut = 0
    for job, starts in runs.starts.items():
        ends = sorted(runs.ends.get(job, []), key=lambda e: e[1])
        for pid, _, t0 in starts:
            end = next((t for p, t in ends if p == pid and t >= t0), None)
            if end is None:
                end = deaths.get(pid)
                if end is None:
                    end = t0 + 10**12  # never ended and never killed: counts as running on
                else:
                    cut += 1
            out.append((t0, end))
    return out, cut


def _peak(intervals: list[tuple[int, int]]) -> int:
    events = sorted([(t0, 1) for t0, _ in intervals] + [(t1, -1) for _, t1 in intervals],
                    key=lambda e: (e[0], e[1]))
    peak = now = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak
