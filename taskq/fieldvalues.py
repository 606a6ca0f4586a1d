"""Tolerant readers of the values taskq reads back from Redis hashes and streams."""

from __future__ import annotations

from typing import Any


def text(value: Any) -> str:
    """A field as text: "" when absent, bytes decoded (undecodable bytes replaced)."""
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def to_int(value: Any, default: int | None = 0) -> int | None:
    """A field as an int, or ``default`` when it is absent, empty or not a number."""
    if value is None or value in (b"", ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
