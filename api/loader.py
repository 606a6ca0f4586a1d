"""Load the user's TaskQueue from ``module:attribute`` (a trusted setting, never a request)."""

from __future__ import annotations

import importlib
import os
import sys

from taskq import TaskQueue
from taskq.errors import ConfigError


def load_app(spec: str) -> TaskQueue:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"TASKQ_APP: expected module:attribute, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"TASKQ_APP: cannot import {module_name!r}: {exc}") from exc
    obj: object = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"TASKQ_APP: {module_name!r} has no attribute {attr!r}")
    if not isinstance(obj, TaskQueue):
        raise ConfigError(f"TASKQ_APP: {spec} is a {type(obj).__name__}, not a TaskQueue")
    return obj
