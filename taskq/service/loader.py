"""Load the TaskQueue the service serves, named by ``TASKQ_APP`` (``module:attribute``)."""

from __future__ import annotations

from taskq.errors import ConfigError
from taskq.loading import load_app as _load_app
from taskq.queue import TaskQueue


def load_app(spec: str) -> TaskQueue:
    try:
        return _load_app(spec)
    except ConfigError as exc:
        raise ConfigError(f"TASKQ_APP: {exc}") from exc
