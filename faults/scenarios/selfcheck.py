"""0 the checker checks itself: a made-up history with every kind of fault must be reported
(a checker that cannot fail proves nothing)."""

from __future__ import annotations

import msgpack

from faults import checker
from faults.harness import Env
from faults.ledger import FAILED, OK, Entry
from faults.result import Result
from taskq.keys import GROUP


async def checker_catches(env: Env) -> None:
    r = env.result
    env.redis()
    admin = env.admin()
    keys = env.keys
    for job in range(1, 7):
        state = FAILED if job == 6 else OK
        env.ledger.entries[job] = Entry(job, "work", state, f"q:{1000 + job}-0", 0, 0)
    lines = ["start 1 10 1 1", "end 1 10 2", "start 2 10 1 3", "end 2 10 4", "start 2 11 2 5",
             "end 2 11 6", "start 6 10 1 7", "end 6 10 8", "start 5 10 2 9", "start 5 11 1 10",
             "end 9 10"]  # the last line is torn
    (env.tasks / "tasks.10.log").write_text("\n".join(lines) + "\n")
    payload = msgpack.packb({"v": 1, "t": "work", "a": [], "k": {"job": 3, "ms": 1}})
    for _ in range(2):  # job 3 dead-lettered twice
        admin.xadd(keys.dead, {"id": "q:1003-0", "reason": "max_attempts", "payload": payload})
    admin.xgroup_create(keys.stream, GROUP, id="0", mkstream=True)
    admin.xadd(keys.stream, {"m": b"x"})
    admin.xreadgroup(GROUP, "c", {keys.stream: ">"})
    admin.hset(keys.records(1), "x", "y")  # a record bucket without TTL
    admin.hset(keys.stats, "lost", 1)
    v = checker.check(env.ledger, env.tasks, admin, keys, max_consumers=0, check_records=False)
    admin.close()
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
