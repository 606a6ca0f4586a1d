"""The worker: consumes queues, runs tasks and records their outcomes.

The library side, :class:`Worker` and :class:`WorkerConfig`, is what ``import taskq`` loads;
the process side (``python -m taskq.worker``, also ``taskq worker`` and the repository's
``python -m worker``: :mod:`~taskq.worker.main`, :mod:`~taskq.worker.process`,
:mod:`~taskq.worker.supervisor`, :mod:`~taskq.worker.metrics`) is imported only by it.
"""

from __future__ import annotations

from taskq.worker.config import WorkerConfig
from taskq.worker.core import Worker

__all__ = ["Worker", "WorkerConfig"]
