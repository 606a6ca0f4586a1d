"""The fault suite's checker fed hand-made end states (the test Redis, a prefix per test): each
kind of broken promise must fail the check, and a healthy end state must pass it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from faults import checker
from faults.app import QUEUE
from faults.ledger import Ledger
from faults.result import Result, Tally
from faults.scenarios import selfcheck
from taskq.keys import QueueKeys
from taskq.records import TaskStatus, bucket_key, encode_record


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def keys(prefix: str) -> QueueKeys:
    return QueueKeys(prefix, QUEUE)


def test_non_terminal_records_with_nothing_pending_fail(
        admin: redis.Redis, keys: QueueKeys, tmp_path: Path) -> None:
    ledger = Ledger()
    selfcheck.unfinished_history(admin, keys, ledger, tmp_path)
    v, result = selfcheck.judge(admin, keys, ledger, tmp_path)
    # before the record check, this state read "3 completed, 0 lost" and passed
    assert v.figures["lost"] == 0 and v.figures["completed"] == 3
    assert v.records == Counter({"failed": 1, "running": 1, "queued": 1})
    assert not result.passed
    for status, job in (("failed", 1), ("running", 2), ("queued", 3)):
        assert any(f"non-terminal record '{status}': [{job}]" in f for f in result.failures)
    assert any("healthy jobs did not end succeeded" in f for f in result.failures)


def test_contradicting_terminal_records_fail(
        admin: redis.Redis, keys: QueueKeys, tmp_path: Path) -> None:
    ledger = Ledger()
    selfcheck.disagreeing_history(admin, keys, ledger, tmp_path)
    _, result = selfcheck.judge(admin, keys, ledger, tmp_path)
    failures = "\n".join(result.failures)
    assert "job 2 has a dead record but no dead letter" in failures
    assert "job 3 has a succeeded record but never ended" in failures
    assert "job 4 dead-lettered without a reason" in failures
    assert "1 healthy jobs dead-lettered" in failures


def test_healthy_dead_letter_fails_unless_its_reason_is_expected(
        admin: redis.Redis, keys: QueueKeys, tmp_path: Path) -> None:
    ledger = Ledger()
    selfcheck.healthy_history(admin, keys, ledger, tmp_path)
    selfcheck.accept(ledger, 5)
    selfcheck.record(admin, keys, 5, "dead")
    selfcheck.dead_letter(admin, keys, 5, "worker_lost")
    rerun: Counter[int] = Counter({2: 1})
    _, result = selfcheck.judge(admin, keys, ledger, tmp_path, max_dup=1, rerunnable=rerun)
    assert result.failures == [
        "1 healthy jobs dead-lettered (expected reasons []): {5: ['worker_lost']}"]
    _, result = selfcheck.judge(admin, keys, ledger, tmp_path, max_dup=1, rerunnable=rerun,
                                expected_dead={"worker_lost"})
    assert result.passed, result.failures


def test_healthy_dead_letter_fails_without_records_too(
        admin: redis.Redis, keys: QueueKeys, tmp_path: Path) -> None:
    """Scenarios whose records expire (load) still see a healthy job dead-lettered."""
    ledger = Ledger()
    selfcheck.empty_queue(admin, keys)
    selfcheck.accept(ledger, 1)
    selfcheck.accept(ledger, 2)
    selfcheck.ran(tmp_path, [1])
    selfcheck.dead_letter(admin, keys, 2, "max_attempts")
    v, result = selfcheck.judge(admin, keys, ledger, tmp_path, check_records=False)
    assert v.figures["lost"] == 0  # a dead letter makes a job "not lost"...
    assert not result.passed  # ...but a healthy job must not die
    assert any("healthy jobs dead-lettered" in f for f in result.failures)


def test_a_healthy_end_state_passes(admin: redis.Redis, keys: QueueKeys,
                                    tmp_path: Path) -> None:
    ledger = Ledger()
    selfcheck.healthy_history(admin, keys, ledger, tmp_path)
    v, result = selfcheck.judge(admin, keys, ledger, tmp_path, max_dup=1,
                                rerunnable=Counter({2: 1}))
    assert result.passed, result.failures
    assert v.records == Counter({"succeeded": 3, "dead": 1})


def test_duplicates_are_bounded_by_what_was_in_flight(
        admin: redis.Redis, keys: QueueKeys, tmp_path: Path) -> None:
    ledger = Ledger()
    selfcheck.healthy_history(admin, keys, ledger, tmp_path)  # job 2 ran twice
    _, result = selfcheck.judge(admin, keys, ledger, tmp_path, max_dup=1,
                                rerunnable=Counter({1: 1}))
    assert result.failures == ["1 jobs ran again more often than they were in flight at a "
                               "fault (job: extra runs): {2: 1}"]
    _, result = selfcheck.judge(admin, keys, ledger, tmp_path, max_dup=0)
    assert any("1 duplicate completions > bound 0" in f for f in result.failures)


def test_an_enqueue_added_twice_completes_twice_and_is_counted_right(
        admin: redis.Redis, keys: QueueKeys, tmp_path: Path) -> None:
    """A fault lost the reply of job 1's enqueue; the producer sent it again and both copies
    were added (two task ids; the ledger keeps the second): both run and succeed, and Redis
    counts two completions. That is at-least-once, not a double count."""
    ledger = Ledger()
    selfcheck.healthy_history(admin, keys, ledger, tmp_path)
    first_copy = f"{QUEUE}:5000-0"
    admin.hset(bucket_key(keys, first_copy), first_copy, encode_record(
        TaskStatus.SUCCEEDED, task="work", kwargs={"job": 1}, attempts=1))
    selfcheck.ran(tmp_path, [1], pid=12)
    admin.hset(keys.stats, "completed", 4)
    rerun: Counter[int] = Counter({1: 1, 2: 1})
    v, result = selfcheck.judge(admin, keys, ledger, tmp_path, max_dup=2, rerunnable=rerun)
    assert result.passed, result.failures
    assert v.sent_twice == {1} and v.figures["sent_twice"] == 1
    # one completion more than the records: counted without its record (or twice)
    admin.hset(keys.stats, "completed", 5)
    _, result = selfcheck.judge(admin, keys, ledger, tmp_path, max_dup=2, rerunnable=rerun)
    assert any("Redis counted 5 completions for 4 succeeded records" in f
               for f in result.failures), result.failures


def test_broken_history_reports_every_fault(admin: redis.Redis, keys: QueueKeys,
                                            tmp_path: Path) -> None:
    ledger = Ledger()
    selfcheck.broken_history(admin, keys, ledger, tmp_path)
    v = checker.check(ledger, tmp_path, admin, keys, max_consumers=0, check_records=False)
    assert (v.lost, v.unexpected, v.duplicated, dict(v.dead)) == ({4, 5}, {6}, {2: 1}, {3: 2})
    result = Result("r")
    checker.report(result, v)
    assert len(result.failures) >= 8


def test_skips_are_counted_and_fail_under_ci() -> None:
    local, ci = Tally(), Tally(ci=True)
    for tally in (local, ci):
        tally.add(Result("a"))
        tally.add(Result("b", failures=["lost"]))
    local.add(Result("skew", skipped="libfaketime not found"))
    skipped_in_ci = Result("skew", skipped="libfaketime not found")
    ci.add(skipped_in_ci)
    ci.add(Result("other", skipped="not available in CI"), ci_may_skip=True)
    assert local.line(3) == "1 passed, 1 failed, 1 skipped (3 s)"
    assert ci.line(3) == "1 passed, 2 failed, 1 skipped (3 s)"
    assert skipped_in_ci.line().startswith("FAIL skew")
    assert "skipped under CI" in skipped_in_ci.line()
