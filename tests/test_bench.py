"""The benchmark harness's pure parts: rates from job timestamps, per-job Redis cost, the table."""

from __future__ import annotations

from bench import report
from bench.phases import _per_job, drain_rate
from bench.run import round_order
from bench.server import diff
from bench.systems import SYSTEMS


def test_drain_rate_leaves_out_start_up() -> None:
    # 100 jobs: the first 5 took a second (start-up), the rest ran at 1,000/s.
    times = [i * 200_000 for i in range(5)] + [1_000_000 + i * 1_000 for i in range(95)]
    rate = drain_rate(times)
    assert rate is not None
    assert 990 < rate < 1_010


def test_drain_rate_needs_enough_jobs() -> None:
    assert drain_rate([1, 2, 3]) is None


def test_per_job_counts_scripts_and_commands() -> None:
    stats = {"evalsha": (10, 100), "xadd": (10, 50), "xreadgroup": (2, 10)}
    got = _per_job(stats, 10)
    assert got == {"cmds": 2.2, "usec": 16.0, "scripts": 1.0}


def test_diff_drops_unchanged_commands() -> None:
    after = {"xadd": (15, 70), "xlen": (3, 3)}
    before = {"xadd": (10, 50), "xlen": (3, 3)}
    assert diff(after, before) == {"xadd": (5, 20)}


def test_table_sorts_by_drain_rate_and_marks_missing() -> None:
    result = {
        "systems": {"slow": {}, "taskq": {}},
        "throughput": [
            {"system": "slow", "drain_rate": 10.0, "enqueue_rate": 5.0},
            {"system": "taskq", "drain_rate": 100.0, "enqueue_rate": 50.0, "bulk_rate": 500.0},
            {"system": "taskq", "drain_rate": 120.0, "enqueue_rate": 60.0, "bulk_rate": 700.0},
        ],
        "latency": [{"system": "taskq", "p50_ms": 0.5, "p99_ms": 1.5}],
    }
    lines = report.table(result).splitlines()
    assert lines[2].startswith("| **taskq** | 110 (100-120) |")
    assert lines[3].startswith("| slow | 10 | 5 | n/a |")


def test_rounds_run_every_system_once_with_taskq_next_to_the_floor() -> None:
    systems = list(SYSTEMS)
    firsts = set()
    for rep in range(4):
        names = [s.name for s in round_order(systems, rep)]
        assert sorted(names) == sorted(s.name for s in systems)
        at = names.index("taskq")
        pair = names[at:at + 2] if rep % 2 == 0 else names[at - 1:at + 1]
        assert pair == (["taskq", "plain-streams"] if rep % 2 == 0
                        else ["plain-streams", "taskq"])
        firsts.add(names[0])
    assert len(firsts) > 1  # the rounds are rotated
