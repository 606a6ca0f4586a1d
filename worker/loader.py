"""Load the user's TaskQueue from ``module:attribute`` (a trusted command-line value)."""

from __future__ import annotations

import importlib
import os
import sys

from taskq import TaskQueue


class AppNotFound(Exception):
    pass


def load_app(spec: str) -> TaskQueue:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AppNotFound(f"expected module:attribute, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppNotFound(f"cannot import {module_name!r}: {exc}") from exc
    obj: object = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise AppNotFound(f"{module_name!r} has no attribute {attr!r}")
    if not isinstance(obj, TaskQueue):
        raise AppNotFound(f"{spec} is a {type(obj).__name__}, not a taskq.TaskQueue")
    return obj
