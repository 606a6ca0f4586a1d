"""``python -m faults [--full] [--only NAME,...] [--keep]``: run the fault scenarios.

Each scenario prints one result line; the run ends with ``N passed, N failed, N skipped`` and
exits non-zero when any scenario failed. With ``CI=true`` in the environment, a skipped scenario
counts as failed unless it is in :data:`CI_MAY_SKIP` (CI installs every tool the suite uses).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from faults.harness import FULL, QUICK, Env, Profile
from faults.result import Tally
from faults.scenarios import (
    capacity,
    lease,
    lifecycle,
    limits,
    memory,
    network,
    periodic,
    poison,
    scaleout,
    security,
    selfcheck,
    skew,
    unique,
    workers_die,
    workflows,
)

Scenario = Callable[[Env], Awaitable[None]]

SCENARIOS: list[tuple[str, Scenario, float]] = [
    ("s00-checker-selfcheck", selfcheck.checker_catches, 30),
    ("s01-control", workers_die.control, 90),
    ("s02-kill-workers", workers_die.kill_workers, 180),
    ("s03-crash-points", workers_die.crash_points, 180),
    ("s04-lease-lost", lease.lease_lost, 120),
    ("s08-poison", poison.poison, 150),
    ("s09-rolling-restarts", lifecycle.rolling_restarts, 180),
    ("s05-redis-restarts", lifecycle.redis_restarts, 240),
    ("s06-client-kill", lifecycle.client_kill, 120),
    ("s11-evicting-policy", capacity.evicting_policy, 60),
    ("s11-stream-deleted", capacity.stream_deleted, 90),
    ("s07-proxy", network.proxy_faults, 150),
    ("s12-load", capacity.load, 200),
    ("s13-memory-pressure", memory.memory_pressure, 150),
    ("s10-clock-skew", skew.clock_skew, 90),
    ("s14-schedule-kills", periodic.schedule_kills, 120),
    ("s16-rate-limit", limits.rate_limit, 150),
    ("s17-concurrency-limit", limits.concurrency_limit, 240),
    ("sec-acl-user", security.acl_user, 90),
    ("sec-tls", security.tls, 90),
    ("s18-workflows-kill", workflows.chords_and_chains, 240),
    ("s19-sentinel-failover-unguarded", scaleout.sentinel_failover_unguarded, 150),
    ("s19-sentinel-failover-guarded", scaleout.sentinel_failover_guarded, 150),
    ("s20-cluster-kill-unguarded", scaleout.cluster_kill_unguarded, 150),
    ("s20-cluster-kill-guarded", scaleout.cluster_kill_guarded, 150),
    ("s21-unique-keys", unique.unique_keys, 120),
]
# scenarios CI may skip; none: CI installs redis-server with TLS, openssl and faketime
CI_MAY_SKIP: frozenset[str] = frozenset()


async def run_one(root: Path, name: str, fn: Scenario, limit: float, profile: Profile) -> Env:
    env = Env(root, name, profile)
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(fn(env), limit * profile.scale)
    except TimeoutError:
        env.result.check(False, f"scenario did not finish within {limit * profile.scale:.0f} s")
    except Exception as exc:
        env.result.check(False, f"harness error: {type(exc).__name__}: {exc}")
        traceback.print_exc(file=sys.stderr)
    finally:
        try:
            await asyncio.wait_for(env.close(), 60)
        except Exception as exc:
            env.result.notes.append(f"cleanup: {type(exc).__name__}: {exc}")
    env.result.seconds = time.monotonic() - t0
    return env


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m faults", description=__doc__)
    parser.add_argument("--full", action="store_true", help="the full profile (longer, larger)")
    parser.add_argument("--only", default="", help="comma-separated scenario name prefixes")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--list", action="store_true", help="list the scenarios")
    args = parser.parse_args(argv)
    if args.list:
        for name, _, _ in SCENARIOS:
            print(name)
        return 0
    profile = FULL if args.full else QUICK
    wanted = [w for w in args.only.split(",") if w]
    root = Path(tempfile.mkdtemp(prefix="taskq-faults-"))
    print(f"fault suite, {profile.name} profile, work folder {root}", flush=True)
    tally = Tally(ci=os.environ.get("CI", "").lower() == "true")
    t0 = time.monotonic()
    for name, fn, limit in SCENARIOS:
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        env = await run_one(root, name, fn, limit, profile)
        tally.add(env.result, ci_may_skip=name in CI_MAY_SKIP)
        print(env.result.line(), flush=True)
    print(tally.line(time.monotonic() - t0), flush=True)
    failed = tally.failed
    if failed or args.keep:
        print(f"logs kept in {root}", flush=True)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
