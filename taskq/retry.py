"""Retry policy: which failures retry, and how long to wait (exponential, jitter, cap).

The wait after failed attempt ``n`` is drawn uniformly from
``[ceiling * (1 - jitter), ceiling]`` where ``ceiling = min(cap_s, base_s * 2**(n-1))``.
``jitter=1.0`` is AWS's "full jitter" (a draw from ``[0, ceiling]``); the default ``0.5`` keeps
the spread that stops retry stampedes while guaranteeing that each gap is at least as long as
the one before (until the cap), which is what operators expect to see.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how a failed task runs again."""

    base_s: float = 1.0
    cap_s: float = 300.0
    jitter: float = 0.5
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    never_on: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")
        if self.base_s < 0 or self.cap_s < 0:
            raise ValueError("backoff times must not be negative")

    def should_retry(self, exc: BaseException) -> bool:
        if self.never_on and isinstance(exc, self.never_on):
            return False
        return isinstance(exc, self.retry_on)

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt number ``attempt`` (1-based)."""
        exponent = max(0, attempt - 1)
        if exponent > 60:
            return self.cap_s
        return float(min(self.cap_s, self.base_s * (2**exponent)))

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the attempt that follows failed attempt ``attempt``."""
        top = self.ceiling(attempt)
        return (rng or random).uniform(top * (1.0 - self.jitter), top)
