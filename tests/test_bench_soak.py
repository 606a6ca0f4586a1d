"""The soak's lost and duplicate figures are counted id by id (a lost job and a duplicate of
another job must not cancel out into "0 lost, 0 duplicates")."""

from __future__ import annotations

from bench.soak import by_id


def _bitmap(ids: set[int], n: int) -> bytes:
    out = bytearray((n + 7) // 8)
    for i in ids:
        out[i // 8] |= 1 << (7 - i % 8)  # SETBIT's order: bit 0 is the high bit of byte 0
    return bytes(out)


def test_a_lost_job_and_a_duplicate_do_not_cancel() -> None:
    # 4 jobs sent; job 2 never ran, job 1 ran twice: 4 runs in all, as many as were sent
    tally = by_id(_bitmap({0, 1, 3}, 4), {b"1": b"1"}, 4)
    assert tally["lost"] == 1 and tally["lost_ids"] == [2]
    assert tally["duplicates"] == 1 and tally["duplicate_ids"] == [1]
    assert tally["done"] == 3 and tally["unexpected"] == 0


def test_every_job_once() -> None:
    tally = by_id(_bitmap(set(range(20)), 20), {}, 20)
    assert (tally["done"], tally["lost"], tally["duplicates"], tally["unexpected"]) == (20, 0, 0, 0)


def test_a_job_never_sent_is_unexpected() -> None:
    tally = by_id(_bitmap({0, 1, 9}, 10), {}, 2)
    assert tally["unexpected"] == 1 and tally["lost"] == 0
