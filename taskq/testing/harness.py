"""The per-test binding of an app's own TaskQueue to a fresh backend, and its helpers.

:func:`bind` points the TaskQueue (the app's module-level object itself, not a copy) at a
fresh in-memory stand-in (``memory://``, :mod:`taskq.memory`), or at a real Redis under a key
prefix of its own when a URL is given (``TASKQ_TEST_REDIS_URL``), and back when the test ends.
The :class:`Harness` it yields drains, lists what is enqueued and reads statuses. The pytest
plugin (:mod:`taskq.testing.plugin`) is a thin layer over it; other test runners use it as is.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable, Iterator
from typing import Any

from taskq import memory
from taskq.connection import connect_sync
from taskq.queue import TaskQueue
from taskq.records import TaskRecord
from taskq.task import Task
from taskq.testing.drain import DEFAULT_TIMEOUT_S, DrainResult, drain, drain_sync, run_sync
from taskq.testing.enqueued import Enqueued, enqueued


class Harness:
    """A TaskQueue bound to a test's own backend (see :func:`bind`)."""

    def __init__(self, tq: TaskQueue) -> None:
        self.tq = tq

    @property
    def url(self) -> str:
        """The backend: ``memory://...`` or the real Redis."""
        return self.tq.url

    async def drain(self, *, queues: Iterable[str] | None = None, max_tasks: int | None = None,
                    raise_on_error: bool = False,
                    timeout_s: float = DEFAULT_TIMEOUT_S) -> DrainResult:
        """:func:`taskq.testing.drain` on this queue (async tests)."""
        return await drain(self.tq, queues=queues, max_tasks=max_tasks,
                           raise_on_error=raise_on_error, timeout_s=timeout_s)

    def drain_sync(self, *, queues: Iterable[str] | None = None, max_tasks: int | None = None,
                   raise_on_error: bool = False,
                   timeout_s: float = DEFAULT_TIMEOUT_S) -> DrainResult:
        """:func:`taskq.testing.drain_sync` on this queue (sync tests)."""
        return drain_sync(self.tq, queues=queues, max_tasks=max_tasks,
                          raise_on_error=raise_on_error, timeout_s=timeout_s)

    def enqueued(self, task: Task[Any, Any] | str | None = None, *,
                 queues: Iterable[str] | None = None) -> list[Enqueued]:
        """The tasks waiting to run (only those of ``task`` if given), with their arguments."""
        return enqueued(self.tq, task, queues=queues)

    def close(self) -> None:
        """Close the queue's connections where their event loop still runs or waits (the
        plugin does it after each test, before the test's event loop is closed)."""
        self.tq.rebind(self.tq.url)

    def status(self, task_id: str) -> TaskRecord:
        """The task's record, for sync tests (async tests: ``await tq.status(task_id)``)."""
        return run_sync(self.tq, self.tq.status(task_id), call="Harness.status()",
                        instead="await tq.status(task_id)")


@contextlib.contextmanager
def bind(tq: TaskQueue, redis_url: str | None = None) -> Iterator[Harness]:
    """Point ``tq`` at a fresh backend for the ``with`` block, then back at its own Redis.

    Without ``redis_url``: a new in-memory stand-in, stopped afterwards. With one: that Redis,
    under a key prefix of its own (``<prefix>-t<random>``), whose keys are deleted afterwards.
    """
    url, prefix = tq.url_choice, tq.prefix
    if redis_url:
        test_url, test_prefix = redis_url, f"{prefix}-t{secrets.token_hex(5)}"
    else:
        test_url, test_prefix = f"{memory.SCHEME}taskq-test-{secrets.token_hex(8)}", prefix
    tq.rebind(test_url, prefix=test_prefix)
    try:
        yield Harness(tq)
    finally:
        tq.rebind(url, prefix=prefix)  # as it was (its URL's source included)
        if redis_url:
            _delete_prefix(redis_url, test_prefix)
        else:
            memory.stop(test_url)


def _delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (the queues' ``{prefix:queue}`` keys and the rest)."""
    client = connect_sync(url)
    try:
        for pattern in (f"{{{prefix}:*", f"{prefix}:*"):
            batch: list[Any] = []
            for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    client.delete(*batch)
                    batch = []
            if batch:
                client.delete(*batch)
    finally:
        client.close()
