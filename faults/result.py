"""A scenario's outcome: figures, failures, the one line printed for it, and its place in the
run's closing tally."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str = ""

    @property
    def passed(self) -> bool:
        return not self.failures and not self.skipped

    def check(self, ok: bool, message: str) -> bool:
        if not ok:
            self.failures.append(message)
        return ok

    def line(self) -> str:
        if self.skipped:
            return f"SKIP {self.name}: {self.skipped}"
        status = "PASS" if self.passed else "FAIL"
        figs = " ".join(f"{k}={_fmt(v)}" for k, v in self.figures.items())
        out = f"{status} {self.name} {figs} ({self.seconds:.1f} s)"
        for f in self.failures:
            out += f"\n    failure: {f}"
        for n in self.notes:
            out += f"\n    note: {n}"
        return out


@dataclass
class Tally:
    """The run's closing line: every scenario counted once, skips included. Under CI a skip of
    a scenario CI can run (its tools are installed there) is a failure, not a skip."""

    ci: bool = False
    passed: int = 0
    failed: int = 0
    skipped: int = 0

    def add(self, result: Result, *, ci_may_skip: bool = False) -> None:
        if result.skipped and self.ci and not ci_may_skip:
            result.failures.append(f"skipped under CI, which can run it: {result.skipped}")
            result.skipped = ""
        if result.skipped:
            self.skipped += 1
        elif result.passed:
            self.passed += 1
        else:
            self.failed += 1

    def line(self, seconds: float) -> str:
        return (f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped "
                f"({seconds:.0f} s)")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)
