"""``uvicorn api.main:app``: the service of :mod:`taskq.service.app`, built from the environment."""

from __future__ import annotations

from typing import Any

from taskq.service import app as _service


def __getattr__(name: str) -> Any:
    """``app``: built on first access (importing this module needs no settings)."""
    if name == "app":
        return _service.app
    raise AttributeError(name)
