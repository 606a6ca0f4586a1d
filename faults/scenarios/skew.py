"""10 delayed tasks and retries with workers whose clocks are skewed by minutes (libfaketime
on the workers only): no task may start before its due time, none may run twice."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from faults import checker
from faults.harness import Env

LIBS = ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1", "/usr/local/lib/faketime/libfaketime.so.1")
SKEWS = ("-5m", "+7m")


def libfaketime() -> str | None:
    """The library, if it is installed and really skews a Python process's clock."""
    for lib in LIBS:
        if not Path(lib).exists():
            continue
        env = {**os.environ, "LD_PRELOAD": lib, "FAKETIME": "-5m",
               "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
        out = subprocess.run([sys.executable, "-c", "import time; print(time.time())"],
                             env=env, capture_output=True, text=True, timeout=20,
                             check=False)
        if out.returncode == 0 and abs(float(out.stdout) + 300 - time.time()) < 30:
            return lib
    return None


async def clock_skew(env: Env) -> None:
    r = env.result
    lib = libfaketime()
    if lib is None:
        r.skipped = ("libfaketime not found or not working (apt-get install faketime)")
        return
    env.redis()
    tq = env.app()
    for i, skew in enumerate(SKEWS):
        pool = env.pool(1, env.worker_env(LD_PRELOAD=lib, FAKETIME=skew,
                                          FAKETIME_DONT_FAKE_MONOTONIC="1"),
                        concurrency=8, lease_ms=2000, name=f"skew{i}")
        pool.start()
    await asyncio.sleep(1.5)
    n = env.profile.n(20)
    for delay in (0.5, 1.0, 2.0, 3.0):
        await env.ledger.enqueue(tq, "work", n, ms=5, delay=delay)
    await env.ledger.enqueue(tq, "flaky", n, fails=2)  # two retries each, with backoff
    await env.ledger.enqueue(tq, "work", n, ms=5)
    await asyncio.sleep(3.5)
    await env.settle(60)
    v = env.verdict()
    # no process or connection fault: nothing runs twice; delayed and retried (flaky, 2 of 6
    # attempts fail) jobs are healthy and must end succeeded
    checker.report(r, v, max_dup=0)
    early = []
    slack_ns = 2_000_000  # Redis TIME is read in whole ms
    for job, e in env.ledger.entries.items():
        starts = v.runs.starts.get(job, [])
        if e.delay_s and starts and starts[0][2] < e.t0_ns + int(e.delay_s * 1e9) - slack_ns:
            early.append((job, round((starts[0][2] - e.t0_ns) / 1e9, 3), e.delay_s))
    twice = [j for j, s in v.runs.starts.items()
             if env.ledger.entries[j].task == "work" and len(s) > 1]
    r.figures.update(skews=",".join(SKEWS), delayed=4 * n, retried=n, early=len(early),
                     started_twice=len(twice))
    r.check(not early, f"started before their due time (job, after s, delay s): {early[:5]}")
    r.check(not twice, f"delayed jobs started twice: {twice[:10]}")
    pids = {p for s in v.runs.starts.values() for p, _, _ in s}
    r.check(len(pids) >= 2, "only one skewed worker ran anything")
