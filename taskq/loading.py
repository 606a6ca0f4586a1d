"""Load a TaskQueue from ``module:attribute``: a trusted value from a command line or a
setting (the worker, the API, ``taskq enqueue``), never from a payload or a request."""

from __future__ import annotations

import importlib
import os
import sys

from taskq.errors import ConfigError
from taskq.queue import TaskQueue


def load_app(spec: str) -> TaskQueue:
    """Import ``module`` and return its ``attribute``; ConfigError says what is wrong."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"expected module:attribute, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: object = importlib.import_module(module_name)
    except Exception as exc:  # the user's module may fail in any way while importing
        raise ConfigError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"{module_name!r} has no attribute {attr!r}")
    if not isinstance(obj, TaskQueue):
        raise ConfigError(f"{spec} is a {type(obj).__name__}, not a taskq.TaskQueue")
    return obj
