"""RetryPolicy: which failures retry, and the bounds of its backoff (pure unit tests)."""

from __future__ import annotations

import itertools
import random

import pytest

from taskq import Retry, RetryPolicy


def test_ceiling_doubles_up_to_the_cap() -> None:
    p = RetryPolicy(base_s=0.5, cap_s=10.0)
    assert [p.ceiling(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert p.ceiling(0) == 0.5  # attempt numbers below 1 count as the first
    assert p.ceiling(10_000) == 10.0  # no overflow for absurd attempt numbers


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.5, 1.0])
def test_backoff_stays_within_its_bounds(jitter: float) -> None:
    p = RetryPolicy(base_s=0.1, cap_s=3.0, jitter=jitter)
    rng = random.Random(7)
    for attempt in range(1, 40):
        top = p.ceiling(attempt)
        for _ in range(50):
            wait = p.backoff(attempt, rng)
            assert top * (1 - jitter) - 1e-12 <= wait <= top + 1e-12
    assert max(p.backoff(1_000, rng) for _ in range(100)) <= 3.0


def test_zero_jitter_is_exact() -> None:
    p = RetryPolicy(base_s=0.2, cap_s=60.0, jitter=0.0)
    assert [p.backoff(n) for n in (1, 2, 3)] == [0.2, 0.4, 0.8]


def test_default_jitter_never_shortens_the_next_gap() -> None:
    p = RetryPolicy(base_s=0.1, cap_s=5.0)
    rng = random.Random(3)
    uncapped = [n for n in range(1, 20) if p.base_s * 2 ** (n - 1) <= p.cap_s]
    assert uncapped == [1, 2, 3, 4, 5, 6]
    for _ in range(500):
        gaps = [p.backoff(n, rng) for n in uncapped]
        assert all(b >= a for a, b in itertools.pairwise(gaps))


def test_full_jitter_can_be_zero_and_spreads() -> None:
    p = RetryPolicy(base_s=1.0, cap_s=1.0, jitter=1.0)
    rng = random.Random(11)
    waits = [p.backoff(3, rng) for _ in range(2_000)]
    assert min(waits) < 0.05 and max(waits) > 0.95


def test_defaults() -> None:
    p = RetryPolicy()
    assert (p.base_s, p.cap_s, p.jitter) == (1.0, 300.0, 0.5)
    assert p.should_retry(ValueError()) and p.should_retry(TimeoutError())
    assert not p.should_retry(KeyboardInterrupt())


def test_retry_on_and_never_on() -> None:
    p = RetryPolicy(retry_on=(OSError, ValueError), never_on=(PermissionError,))
    assert p.should_retry(ConnectionError())  # an OSError
    assert p.should_retry(ValueError())
    assert not p.should_retry(PermissionError())  # an OSError, but never retried
    assert not p.should_retry(KeyError())


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"jitter": -0.1}, "jitter must be between 0 and 1"),
    ({"jitter": 1.5}, "jitter must be between 0 and 1"),
    ({"base_s": -1.0}, "backoff times must not be negative"),
    ({"cap_s": -1.0}, "backoff times must not be negative"),
])
def test_invalid_policies_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_zero_waits_are_allowed() -> None:
    """At the boundaries: no wait at all (base 0 or cap 0) is a valid policy."""
    assert RetryPolicy(base_s=0.0).backoff(3) == 0.0
    assert RetryPolicy(cap_s=0.0).backoff(3) == 0.0
    assert RetryPolicy(base_s=0.0, cap_s=0.0, jitter=0.0).ceiling(1) == 0.0


def test_huge_exponents_are_capped_only_past_sixty_doublings() -> None:
    """The overflow guard takes the cap only where 2**(n-1) is past 2**60; below it the
    doubling still decides (a tiny base may double sixty times and stay under the cap)."""
    p = RetryPolicy(base_s=2.0**-60, cap_s=1_000.0)
    assert p.ceiling(61) == 1.0  # 2**-60 * 2**60
    assert p.ceiling(62) == 1_000.0  # past the guard: the cap


def test_retry_request_carries_its_delay() -> None:
    assert Retry(delay=2.5).delay == 2.5
    assert Retry().delay is None
    assert "later" in str(Retry(reason="later"))
