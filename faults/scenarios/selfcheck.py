"""0 the checker checks itself: made-up histories with every kind of fault must be reported, and
a made-up healthy history must pass (a checker that cannot fail, or cannot pass, proves nothing).

The histories are built here by plain functions so that tests/test_fault_checker.py feeds the
same states to the checker without a scenario run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from pathlib import Path

import msgpack
import redis

from faults import checker
from faults.app import QUEUE
from faults.harness import Env
from faults.ledger import FAILED, OK, Entry, Ledger
from faults.result import Result
from taskq.keys import GROUP, QueueKeys
from taskq.records import TaskStatus, bucket_key, encode_record

RECORD_TTL_MS = 600_000


def task_id(job: int) -> str:
    return f"{QUEUE}:{1000 + job}-0"


def accept(ledger: Ledger, job: int, task: str = "work", state: str = OK) -> None:
    ledger.entries[job] = Entry(job, task, state, task_id(job), 0, 0)


def ran(folder: Path, jobs: list[int], *, pid: int = 10) -> None:
    """Task-log lines saying each job started and ended once."""
    lines = [f"start {j} {pid} 1 {2 * j}\nend {j} {pid} {2 * j + 1}\n" for j in jobs]
    with open(folder / f"tasks.{pid}.log", "a") as f:
        f.write("".join(lines))


def record(admin: redis.Redis, keys: QueueKeys, job: int, status: str) -> None:
    tid = task_id(job)
    key = bucket_key(keys, tid)
    admin.hset(key, tid, encode_record(TaskStatus(status), task="work", attempts=1))
    admin.pexpire(key, RECORD_TTL_MS)


def dead_letter(admin: redis.Redis, keys: QueueKeys, job: int, reason: str,
                task: str = "work") -> None:
    payload = msgpack.packb({"v": 1, "t": task, "a": [], "k": {"job": job, "ms": 1}})
    admin.xadd(keys.dead, {"id": task_id(job), "reason": reason, "payload": payload})


def empty_queue(admin: redis.Redis, keys: QueueKeys) -> None:
    """A group and an empty stream: nothing pending, nothing left to deliver."""
    admin.xgroup_create(keys.stream, GROUP, id="0", mkstream=True)


def broken_history(admin: redis.Redis, keys: QueueKeys, ledger: Ledger, folder: Path) -> None:
    """Lost (4, 5), unexpected (6), duplicated (2), dead twice (3), attempts going back (5),
    a torn line, a pending entry, a record key without TTL, the core's lost counter at 1."""
    for job in range(1, 7):
        accept(ledger, job, state=FAILED if job == 6 else OK)
    lines = ["start 1 10 1 1", "end 1 10 2", "start 2 10 1 3", "end 2 10 4", "start 2 11 2 5",
             "end 2 11 6", "start 6 10 1 7", "end 6 10 8", "start 5 10 2 9", "start 5 11 1 10",
             "end 9 10"]  # the last line is torn
    (folder / "tasks.10.log").write_text("\n".join(lines) + "\n")
    for _ in range(2):
        dead_letter(admin, keys, 3, "max_attempts")
    empty_queue(admin, keys)
    admin.xadd(keys.stream, {"m": b"x"})
    admin.xreadgroup(GROUP, "c", {keys.stream: ">"})
    admin.hset(keys.records(1), "x", "y")  # a record bucket without TTL
    admin.hset(keys.stats, "lost", 1)


def unfinished_history(admin: redis.Redis, keys: QueueKeys, ledger: Ledger,
                       folder: Path) -> None:
    """Three accepted jobs that ran, whose records say failed, running and queued, with nothing
    pending: a completion discarded while its entry was still deleted looks like this."""
    empty_queue(admin, keys)
    for job, status in ((1, "failed"), (2, "running"), (3, "queued")):
        accept(ledger, job)
        record(admin, keys, job, status)
    ran(folder, [1, 2, 3])


def disagreeing_history(admin: redis.Redis, keys: QueueKeys, ledger: Ledger,
                        folder: Path) -> None:
    """Terminal records that contradict the rest: a healthy job dead-lettered (1, max_attempts,
    with its dead record), a dead record without a letter (2), a succeeded record of a job that
    never ended (3), a dead letter without a reason (4, an unhealthy job)."""
    empty_queue(admin, keys)
    for job in (1, 2, 3):
        accept(ledger, job)
    accept(ledger, 4, task="doomed")
    record(admin, keys, 1, "dead")
    dead_letter(admin, keys, 1, "max_attempts")
    record(admin, keys, 2, "dead")
    record(admin, keys, 3, "succeeded")
    record(admin, keys, 4, "dead")
    dead_letter(admin, keys, 4, "", task="doomed")
    ran(folder, [1, 2])


def healthy_history(admin: redis.Redis, keys: QueueKeys, ledger: Ledger, folder: Path) -> None:
    """What a good run leaves: healthy jobs succeeded once, a doomed job dead with its reason,
    a healthy job that ran twice (it was in flight at a fault)."""
    empty_queue(admin, keys)
    for job in (1, 2, 3):
        accept(ledger, job)
        record(admin, keys, job, "succeeded")
    accept(ledger, 4, task="doomed")
    record(admin, keys, 4, "dead")
    dead_letter(admin, keys, 4, "max_attempts", task="doomed")
    ran(folder, [1, 2, 3])
    ran(folder, [2], pid=11)
    admin.hset(keys.stats, "completed", 3)


def judge(admin: redis.Redis, keys: QueueKeys, ledger: Ledger, folder: Path, *,
          check_records: bool = True, max_dup: int = 0,
          expected_dead: Collection[str] = (), rerunnable: Counter[int] | None = None
          ) -> tuple[checker.Verdict, Result]:
    """The checker's verdict on a made-up history, and what report() says of it."""
    v = checker.check(ledger, folder, admin, keys, max_consumers=0,
                      check_records=check_records)
    result = Result("shadow")
    checker.report(result, v, max_dup=max_dup, expected_dead=expected_dead,
                   rerunnable=rerunnable)
    return v, result


async def checker_catches(env: Env) -> None:
    env.redis()
    admin = env.admin()
    try:
        _broken(env, admin)
        _records_path(env, admin)
    finally:
        admin.close()


def _sub(env: Env, name: str) -> tuple[QueueKeys, Ledger, Path]:
    folder = env.folder / name
    folder.mkdir(exist_ok=True)
    return QueueKeys(f"{env.prefix}{name}", QUEUE), Ledger(), folder


def _broken(env: Env, admin: redis.Redis) -> None:
    r = env.result
    broken_history(admin, env.keys, env.ledger, env.tasks)
    v = checker.check(env.ledger, env.tasks, admin, env.keys, max_consumers=0,
                      check_records=False)
    want = {"lost": {4, 5}, "unexpected": {6}, "duplicated": {2: 1}, "dead": {3: 2}}
    got = {"lost": v.lost, "unexpected": v.unexpected, "duplicated": v.duplicated,
           "dead": dict(v.dead)}
    r.check(got == want, f"checker saw {got}, want {want}")
    r.check(checker.attempts_never_go_back(v) == [5], "attempts going back not seen")
    r.check(v.runs.torn == 1, f"torn lines: {v.runs.torn}")
    expected_invariants = ("entries still pending", "never delivered", "consumers > bound",
                           "has no TTL", "core counted 1")
    for text in expected_invariants:
        r.check(any(text in m for m in v.invariants), f"invariant '{text}' not reported: "
                f"{v.invariants}")
    probe = checker.Verdict(set(), v.dead, {}, v.lost, v.unexpected, v.duplicated, v.records,
                            runs=v.runs)
    shadow = Result("shadow")
    checker.report(shadow, probe, max_dup=0)
    r.figures["faults_seen"] = len(shadow.failures)
    r.check(len(shadow.failures) >= 5, f"report() missed faults: {shadow.failures}")


def _records_path(env: Env, admin: redis.Redis) -> None:
    """The record checks (check_records=True): non-terminal and contradicting records fail,
    a healthy history passes."""
    r = env.result
    keys, ledger, folder = _sub(env, "unfinished")
    unfinished_history(admin, keys, ledger, folder)
    v, shadow = judge(admin, keys, ledger, folder)
    r.figures["unfinished_seen"] = sum("non-terminal" in m for m in v.invariants)
    for status in ("failed", "running", "queued"):
        r.check(any(f"non-terminal record '{status}'" in f for f in shadow.failures),
                f"a '{status}' record at the end passed: {shadow.failures}")
    keys, ledger, folder = _sub(env, "disagreeing")
    disagreeing_history(admin, keys, ledger, folder)
    v, shadow = judge(admin, keys, ledger, folder)
    for text in ("healthy jobs dead-lettered", "dead record but no dead letter",
                 "succeeded record but never ended", "dead-lettered without a reason"):
        r.check(any(text in f for f in shadow.failures), f"'{text}' not reported: "
                f"{shadow.failures}")
    keys, ledger, folder = _sub(env, "healthy")
    healthy_history(admin, keys, ledger, folder)
    rerun: Counter[int] = Counter({2: 1})
    v, shadow = judge(admin, keys, ledger, folder, max_dup=1, rerunnable=rerun)
    r.check(not shadow.failures, f"a healthy history failed: {shadow.failures}")
    _, shadow = judge(admin, keys, ledger, folder, max_dup=1, rerunnable=Counter())
    r.check(bool(shadow.failures), "a duplicate of a job in flight at no fault passed")
