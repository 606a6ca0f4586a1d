"""A scenario's outcome: figures, failures, and the one line printed for it."""

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


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)
