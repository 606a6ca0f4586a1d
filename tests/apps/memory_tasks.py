"""The task of the memory-pressure tests (``tests/test_redis_faults.py``): its payload has the
size the test asks for. Worker subprocesses load ``tests.apps.memory_tasks:tq`` (prefix from
TEST_PREFIX)."""

from __future__ import annotations

import os

from taskq import TaskQueue


def build(prefix: str, url: str | None = None) -> TaskQueue:
    app = TaskQueue(url, prefix=prefix)

    @app.task(name="size")
    async def size(text: str) -> int:
        return len(text)

    return app


tq = build(os.environ.get("TEST_PREFIX", "taskq-memory-tests"))
