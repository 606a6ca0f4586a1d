"""An app whose TaskQueue is given its Redis URL in code (``TEST_CODE_URL``; by default one
where nothing answers): the URL precedence tests (tests/test_url_choice.py)."""

from __future__ import annotations

import os

from taskq import TaskQueue

tq = TaskQueue(os.environ.get("TEST_CODE_URL", "redis://127.0.0.1:1/0"),
               prefix=os.environ.get("TEST_PREFIX", "taskq"))


@tq.task(name="noop", queue="urls")
async def noop() -> None:
    return None
