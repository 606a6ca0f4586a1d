"""The app of the metrics tests' worker subprocesses: ``tests.apps.metrics_app:tq`` (the tasks
of tests/apps/common.py plus ``boom``, which asks for a retry and dies on its second attempt)."""

from __future__ import annotations

import os

from taskq import Retry, TaskQueue
from tests.apps.common import build


def build_app(prefix: str, url: str | None = None) -> TaskQueue:
    app = build(prefix, url)

    @app.task(name="boom", max_attempts=2)
    async def boom() -> None:
        raise Retry(delay=0.0, reason="boom")

    return app


tq = build_app(os.environ.get("TEST_PREFIX", "unused"))
