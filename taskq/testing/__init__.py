"""Testing taskq apps without a Redis server: ``memory://``, drain, and the pytest plugin.

    from taskq.testing import drain_sync, enqueued

See docs/testing.md. The pytest fixtures (``taskq_memory``, ``taskq_app``,
``taskq_redis_url``) come from :mod:`taskq.testing.plugin`, loaded by pytest on its own.
"""

from __future__ import annotations

from taskq.testing.drain import (
    DrainResult,
    DrainTimeout,
    SyncDrainInEventLoop,
    drain,
    drain_sync,
)
from taskq.testing.enqueued import Enqueued, enqueued
from taskq.testing.harness import Harness, bind

__all__ = [
    "DrainResult",
    "DrainTimeout",
    "Enqueued",
    "Harness",
    "SyncDrainInEventLoop",
    "bind",
    "drain",
    "drain_sync",
    "enqueued",
]
