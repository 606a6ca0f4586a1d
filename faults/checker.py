"""The checker: what the producer's ledger, the task logs and Redis say at the end.

lost        accepted (ok), never completed nor dead-lettered
unexpected  completed, never enqueued (not ok, not unknown)
duplicated  completed more than once (extra ``end`` lines); each duplicate must be of a task
            that was in flight at a fault, when the scenario measured those (``rerunnable``)
records     every accepted task ends in exactly one terminal record (succeeded, dead with a
            reason, cancelled, expired); ``failed``, ``running``, ``queued`` or no record at
            the end fails, and a record must agree with the task log and the dead letters
healthy     a healthy job (not one of :data:`faults.app.UNHEALTHY_TASKS`) must end succeeded;
            its dead letter fails unless the scenario expects that reason
Redis invariants: no pending entries, nothing undelivered, delayed set empty, consumers
bounded, every record key with a TTL, the core's own "lost" counter at zero.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from faults import tasklog
from faults.app import UNHEALTHY_TASKS
from faults.ledger import OK, UNKNOWN, Ledger
from faults.result import Result
from taskq import codec, ids
from taskq.keys import GROUP, QueueKeys
from taskq.records import bucket_key, decode_record

TERMINAL = frozenset({"succeeded", "dead", "cancelled", "expired"})
SUCCEEDED = "succeeded"
NO_RECORD = "missing"


@dataclass
class Verdict:
    completed: set[int]
    dead: Counter[int]
    dead_reasons: dict[int, list[str]]
    lost: set[int]
    unexpected: set[int]
    duplicated: dict[int, int]
    records: Counter[str]
    invariants: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    runs: tasklog.Runs = field(default_factory=tasklog.Runs)
    # how each accepted healthy job ended: its record's status where records are checked,
    # else "succeeded" (an end line), "dead" (a dead letter) or "missing" (neither)
    healthy_ends: dict[int, str] = field(default_factory=dict)
    # dead letters of healthy jobs (any enqueue state), with their reasons
    healthy_dead: dict[int, list[str]] = field(default_factory=dict)
    # accepted jobs with a succeeded record under a second task id (added twice)
    sent_twice: set[int] = field(default_factory=set)

    @property
    def extra_runs(self) -> int:
        return sum(self.duplicated.values())


def text(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def quiet(admin: redis.Redis, keys: QueueKeys) -> bool:
    """Nothing left to run: stream empty (finished entries are deleted), no delayed task. Read
    at one instant (MULTI): read apart, a promotion between the reads (a task moving from the
    delayed set to the stream, as tasks waiting for a limit do all the time) looked quiet."""
    pipe = admin.pipeline(transaction=True)
    pipe.xlen(keys.stream)
    pipe.zcard(keys.delayed)
    length, delayed = pipe.execute()
    return bool(length == 0 and delayed == 0)


def settle(admin: redis.Redis, keys: QueueKeys, timeout: float) -> float:
    """Wait (bounded) until the queue is quiet; returns the seconds waited (-1: never)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if quiet(admin, keys):
                return time.monotonic() - t0
        except redis.exceptions.RedisError:
            pass
        time.sleep(0.1)
    return -1.0


def dead_letters(admin: redis.Redis, keys: QueueKeys) -> list[dict[str, Any]]:
    out = []
    for _, fields in admin.xrange(keys.dead, "-", "+"):
        d = {text(k): v for k, v in fields.items()}
        job = None
        try:
            msg = codec.decode(d.get("payload") or b"")
            job = msg.kwargs.get("job")
        except Exception:  # a malformed payload: poison the suite put there on purpose
            pass
        d["job"] = job if isinstance(job, int) else None
        out.append({k: (v if k in ("payload", "job") else text(v)) for k, v in d.items()})
    return out


def check(ledger: Ledger, folder: Path, admin: redis.Redis, keys: QueueKeys, *,
          max_consumers: int, expect_lost_counter: int = 0,
          check_records: bool = True) -> Verdict:
    runs = tasklog.read(folder)
    letters = dead_letters(admin, keys)
    by_task_id = {e.task_id: j for j, e in ledger.entries.items() if e.task_id}
    dead: Counter[int] = Counter()
    reasons: dict[int, list[str]] = {}
    for d in letters:
        job = d["job"] if d["job"] is not None else by_task_id.get(d.get("id", ""))
        if job is not None:
            dead[job] += 1
            reasons.setdefault(job, []).append(d.get("reason", ""))
    completed = runs.completed()
    ok = ledger.jobs(OK)
    maybe = ok | ledger.jobs(UNKNOWN)
    v = Verdict(
        completed=completed, dead=dead, dead_reasons=reasons,
        lost=ok - completed - set(dead), unexpected=completed - maybe,
        duplicated={j: len(e) - 1 for j, e in runs.ends.items() if len(e) > 1},
        records=Counter(), runs=runs,
    )
    healthy = {j for j, e in ledger.entries.items() if e.task not in UNHEALTHY_TASKS}
    v.healthy_dead = {j: rs for j, rs in reasons.items() if j in healthy}
    for j, rs in reasons.items():
        if not all(rs):
            v.invariants.append(f"job {j} dead-lettered without a reason")
    if check_records:
        _records(v, ledger, admin, keys, healthy)
    else:
        for j in ok & healthy:
            v.healthy_ends[j] = (SUCCEEDED if j in completed else
                                 "dead" if j in dead else NO_RECORD)
    _invariants(v, admin, keys, max_consumers, expect_lost_counter)
    counts = ledger.counts()
    v.figures = {"enq_ok": counts[OK], "enq_failed": counts["failed"],
                 "enq_unknown": counts[UNKNOWN], "completed": len(completed & maybe),
                 "dead": sum(dead.values()), "lost": len(v.lost),
                 "unexpected": len(v.unexpected), "dup": v.extra_runs}
    if v.sent_twice:
        v.figures["sent_twice"] = len(v.sent_twice)
    return v


def _records(v: Verdict, ledger: Ledger, admin: redis.Redis, keys: QueueKeys,
             healthy: set[int]) -> None:
    """Exactly one terminal state per accepted task, as Redis tells it, agreeing with the task
    log (a succeeded record of a task that never ended) and the dead letters (a dead record
    without its letter, a letter without a dead record)."""
    pipe = admin.pipeline(transaction=False)
    jobs = [j for j, e in sorted(ledger.entries.items()) if e.state == OK and e.task_id]
    for j in jobs:
        tid = ledger.entries[j].task_id or ""
        pipe.hget(bucket_key(keys, tid), tid)
    succeeded = 0
    unfinished: dict[str, list[int]] = {}
    for j, raw in zip(jobs, pipe.execute(), strict=True):
        status = (str(decode_record(ledger.entries[j].task_id or "", keys.queue, raw).status)
                  if raw else NO_RECORD)
        v.records[status] += 1
        if j in healthy:
            v.healthy_ends[j] = status
        if not raw:
            continue  # reported as "accepted jobs without a record" (unless loss is allowed)
        if status not in TERMINAL:
            unfinished.setdefault(status, []).append(j)
        succeeded += status == SUCCEEDED
        if status == SUCCEEDED and j not in v.completed:
            v.invariants.append(f"job {j} has a succeeded record but never ended")
        if status == "dead" and j not in v.dead:
            v.invariants.append(f"job {j} has a dead record but no dead letter")
        if j in v.dead and status != "dead":
            v.invariants.append(f"job {j} has a {status} record and a dead letter")
    for status, js in sorted(unfinished.items()):
        v.invariants.append(f"{len(js)} accepted jobs ended with a non-terminal record "
                            f"'{status}': {js[:10]}")
    stats = {text(k): int(x) for k, x in admin.hgetall(keys.stats).items()}
    v.stats = stats
    # Redis counts a completion per task id that succeeded (per owned entry, each task id
    # having one entry at a time), so it is matched against the succeeded records under every
    # task id, not only those the ledger knows: an enqueue whose reply a fault lost is sent
    # again and may then be added twice (two task ids, two runs, two records; the ledger keeps
    # the id of the second), and an "unknown" enqueue that was added has an id nobody knows.
    every = succeeded_records(admin, keys)
    known = {e.task_id for e in ledger.entries.values() if e.task_id}
    others = {tid: job for tid, job in every.items() if tid not in known}
    entries = ledger.entries
    v.sent_twice = {j for j in others.values()
                    if j is not None and j in entries and entries[j].state == OK}
    if stats.get("completed", 0) > len(every):
        v.invariants.append(f"Redis counted {stats.get('completed', 0)} completions for "
                            f"{len(every)} succeeded records ({succeeded} of accepted jobs, "
                            f"{len(others)} of enqueues sent twice or unknown)")


def succeeded_records(admin: redis.Redis, keys: QueueKeys) -> dict[str, int | None]:
    """Every succeeded record in Redis, under any task id: task id -> its job (None when the
    record names none)."""
    out: dict[str, int | None] = {}
    for key in admin.scan_iter(match=f"{keys.tag}:rec:*", count=1000):
        for field_, raw in admin.hgetall(key).items():
            tid = text(field_)
            if tid.endswith(":p"):  # a progress report, not a record
                continue
            try:
                rec = decode_record(tid, keys.queue, raw)
            except Exception:  # not ours to judge here: the records check reads the known ids
                continue
            if str(rec.status) == SUCCEEDED:
                job = rec.kwargs.get("job")
                out[tid] = job if isinstance(job, int) else None
    return out


def _invariants(v: Verdict, admin: redis.Redis, keys: QueueKeys, max_consumers: int,
                expect_lost_counter: int) -> None:
    bad = v.invariants
    try:
        summary = admin.xpending(keys.stream, GROUP)
        groups = admin.xinfo_groups(keys.stream)
        consumers = admin.xinfo_consumers(keys.stream, GROUP)
    except redis.exceptions.ResponseError as exc:
        bad.append(f"stream or group missing at the end: {exc}")
        return
    if summary["pending"]:
        bad.append(f"{summary['pending']} entries still pending")
    xlen = admin.xlen(keys.stream)
    if xlen:
        bad.append(f"{xlen} entries never delivered or never deleted")
    for g in groups:
        lag = g.get("lag")
        if lag not in (None, 0):
            bad.append(f"group {text(g['name'])} lag {lag}")
    if len(consumers) > max_consumers:
        bad.append(f"{len(consumers)} consumers > bound {max_consumers}")
    for key, what in ((keys.delayed, "delayed"), (keys.payloads, "delayed payloads"),
                      (keys.entries, "entry mappings"), (keys.cancels, "cancel requests")):
        n = admin.zcard(key) if key == keys.delayed else admin.hlen(key)
        if n:
            bad.append(f"{n} {what} left")
    for key in admin.scan_iter(match=f"{keys.tag}:*", count=1000):
        name = text(key)
        if (":rec:" in name or ":done:" in name) and admin.pttl(key) < 0:
            bad.append(f"{name} has no TTL")
    lost_counter = int(admin.hget(keys.stats, "lost") or 0)
    if lost_counter != expect_lost_counter:
        bad.append(f"core counted {lost_counter} entries deleted before delivery "
                   f"(expected {expect_lost_counter})")


def report(result: Result, v: Verdict, *, max_dup: int = 0, allow_lost: bool = False,
           expected_dead: Collection[str] = (),
           rerunnable: Counter[int] | None = None) -> None:
    """The common checks every scenario shares, into ``result``.

    ``max_dup`` bounds the duplicate completions; ``rerunnable`` (job -> how many faults it was
    in flight at), when the scenario measured it, also bounds them job by job: a task that was
    in flight at no fault has no reason to run twice. ``expected_dead`` lists the dead-letter
    reasons a healthy job may have in this scenario (none by default)."""
    result.figures.update(v.figures)
    if not allow_lost:
        result.check(not v.lost, f"{len(v.lost)} accepted jobs lost: {sorted(v.lost)[:10]}")
    result.check(not v.unexpected,
                 f"{len(v.unexpected)} unexpected completions: {sorted(v.unexpected)[:10]}")
    result.check(v.extra_runs <= max_dup,
                 f"{v.extra_runs} duplicate completions > bound {max_dup}: "
                 f"{dict(list(v.duplicated.items())[:10])}")
    if rerunnable is not None:
        beyond = {j: n for j, n in v.duplicated.items() if n > rerunnable.get(j, 0)}
        result.check(not beyond, f"{len(beyond)} jobs ran again more often than they were in "
                     f"flight at a fault (job: extra runs): {dict(list(beyond.items())[:10])}")
    doubles = {j: n for j, n in v.dead.items() if n > 1}
    result.check(not doubles, f"double dead letters: {doubles}")
    result.check(v.runs.torn == 0, f"{v.runs.torn} torn task-log lines")
    for msg in v.invariants:
        result.check(False, f"invariant: {msg}")
    if v.records.get(NO_RECORD) and not allow_lost:
        result.check(False, f"{v.records[NO_RECORD]} accepted jobs without a record")
    expected = set(expected_dead)
    killed = {j: rs for j, rs in v.healthy_dead.items() if not set(rs) <= expected}
    result.check(not killed, f"{len(killed)} healthy jobs dead-lettered (expected reasons "
                 f"{sorted(expected)}): {dict(list(sorted(killed.items()))[:10])}")
    not_succeeded = {j: end for j, end in v.healthy_ends.items()
                     if end != SUCCEEDED and j not in v.healthy_dead
                     and not (allow_lost and end == NO_RECORD)}
    result.check(not not_succeeded, f"{len(not_succeeded)} healthy jobs did not end succeeded: "
                 f"{dict(list(sorted(not_succeeded.items()))[:10])}")


def attempts_never_go_back(v: Verdict) -> list[int]:
    """Jobs whose attempt numbers, in start order, ever decrease."""
    bad = []
    for job, starts in v.runs.starts.items():
        attempts = [a for _, a, _ in starts]
        if any(b < a for a, b in itertools.pairwise(attempts)):
            bad.append(job)
    return bad


def task_id_of(queue: str, entry: str) -> str:
    return ids.task_id(queue, entry)
