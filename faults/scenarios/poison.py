"""8 poison: malformed, nested, unknown, mistyped, oversize, failing, hanging and
process-killing tasks, and entries deleted while pending. Each must be dead-lettered exactly
once with its reason, none run more than its attempts, and healthy jobs around them complete."""

from __future__ import annotations

import asyncio

import msgpack
import redis

from faults import checker, tasklog
from faults.harness import Env
from faults.ledger import produce
from taskq.keys import GROUP

ATTEMPTS = {"doomed": 2, "hang": 2, "exit_now": 2, "segfault": 2, "work": 25}


def _envelope(task: str, kwargs: dict[str, object]) -> bytes:
    return msgpack.packb({"v": 1, "t": task, "a": [], "k": kwargs, "n": 0, "e": 0})  # type: ignore[no-any-return]


def _raw_poison(job0: int) -> list[tuple[str, bytes]]:
    nested = b"\x91" * 60_000 + b"\xc0"  # a list in a list in ... 60,000 deep (< size limit)
    return [
        ("decode_error", b"\xc1\xff\x00 not msgpack"),
        ("decode_error", nested),
        ("decode_error", msgpack.packb([1, 2, 3])),
        ("unknown_task", _envelope("os.system", {"command": "touch /tmp/taskq-pwned"})),
        ("unknown_task", msgpack.packb({"v": 1, "t": "subprocess.run", "a": [["id"]], "k": {}})),
        ("invalid_args", _envelope("work", {"job": job0, "ms": "not a number"})),
        ("invalid_args", _envelope("typed", {"job": job0 + 1, "count": {"a": [1, 2]}})),
        ("invalid_args", _envelope("work", {"job": job0 + 2, "ms": 1, "extra": True})),
        ("payload_too_large", _envelope("work", {"job": job0 + 3, "ms": 1, "pad": "x" * 70_000})),
    ]


def _delete_while_pending(admin: redis.Redis, stream: str, job: int) -> str:
    """Deliver an entry to a consumer that never runs it, then delete its body."""
    entry = admin.xadd(stream, {"m": _envelope("work", {"job": job, "ms": 1})})
    admin.xreadgroup(GROUP, "faults-ghost", {stream: ">"}, count=100)
    admin.xdel(stream, entry)
    return entry.decode() if isinstance(entry, bytes) else str(entry)


async def poison(env: Env) -> None:
    env.redis()
    tq = env.app()
    admin = env.admin()
    r = env.result
    await tq.ensure_groups(["q"])
    expected: dict[str, str] = {}  # entry id -> reason, for entries the suite wrote itself
    deleted = _delete_while_pending(admin, env.keys.stream, 900_000)
    expected[deleted] = "payload_missing"
    for reason, body in _raw_poison(900_001):
        entry = admin.xadd(env.keys.stream, {"m": body})
        expected[entry.decode()] = reason
    # unknown task names are dead-lettered at once here (no rolling deploy's grace)
    pool = env.pool(2, concurrency=6, lease_ms=2000, extra_args=["--unknown-grace-s", "0"])
    pool.start()
    env.tend(pool)
    # phase 1: failing and hanging tasks among healthy ones; phase 2: process-killing ones
    # (apart, so that a task's reason does not depend on a killer sharing its process)
    for killers in (False, True):
        healthy = asyncio.create_task(produce(env.ledger, tq, rate=60, seconds=3, batch=5,
                                              ms=20))
        for task in ("exit_now", "segfault") if killers else ("doomed", "hang"):
            await env.ledger.enqueue(tq, task, 1 if killers else 2)
        await healthy
        await env.settle(60)
    await asyncio.sleep(0.5)
    v = env.verdict(extra_consumers=1, expect_lost_counter=1)
    # a killing task takes down the healthy tasks of its process: those finished but not yet
    # acknowledged run again; each death's in-flight entries are measured by the tender
    bound = sum(env.rerunnable.values())
    r.figures["dup_bound"] = bound
    checker.report(r, v, max_dup=bound, rerunnable=env.rerunnable)
    _check_letters(env, admin, expected)
    _check_attempts(env, v)
    bad_healthy = {j for j in v.dead if env.ledger.entries.get(j) and
                   env.ledger.entries[j].task == "work"}
    r.check(not bad_healthy, f"healthy jobs dead-lettered: {sorted(bad_healthy)[:10]}")
    r.figures["worker_deaths"] = len(pool.unexpected_exits)
    r.check(len(pool.unexpected_exits) <= 4,
            f"{len(pool.unexpected_exits)} worker deaths for 2 killing tasks x 2 attempts")
    admin.close()


def _check_letters(env: Env, admin: redis.Redis, expected: dict[str, str]) -> None:
    r = env.result
    letters = checker.dead_letters(admin, env.keys)
    by_entry: dict[str, list[str]] = {}
    for d in letters:
        by_entry.setdefault(d.get("entry", ""), []).append(d.get("reason", ""))
    wrong = {}
    for entry, reason in expected.items():
        got = by_entry.get(entry, [])
        if got != [reason]:
            wrong[entry] = (reason, got)
    r.figures["poison_dead_lettered"] = len(expected) - len(wrong)
    r.check(not wrong, f"poison not dead-lettered once with its reason: {wrong}")
    want_task = {"doomed": "max_attempts", "hang": "max_attempts", "exit_now": "worker_lost",
                 "segfault": "worker_lost"}
    for job, e in env.ledger.entries.items():
        if e.task in want_task:
            reasons = [d["reason"] for d in letters if d["job"] == job]
            r.check(reasons == [want_task[e.task]],
                    f"{e.task} job {job}: dead letters {reasons}, want [{want_task[e.task]}]")


def _check_attempts(env: Env, v: checker.Verdict) -> None:
    runs: tasklog.Runs = v.runs
    over = {}
    for job, starts in runs.starts.items():
        e = env.ledger.entries.get(job)
        task = e.task if e else "work"
        if len(starts) > ATTEMPTS.get(task, 25):
            over[job] = (task, len(starts))
    env.result.check(not over, f"run more often than their attempts: {over}")
    pwned = [j for j in runs.starts if j >= 900_000]
    env.result.check(not pwned, f"poison entries were executed: {pwned}")
