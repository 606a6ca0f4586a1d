"""The app of ``bench/dashboard_check.py``: tasks that wait, run, retry and dead-letter in
known proportions, so that every panel of docs/grafana/taskq-dashboard.json has data."""

from __future__ import annotations

import asyncio
import os
import random

from taskq import Retry, TaskQueue

tq = TaskQueue(prefix=os.environ.get("DASHBOARD_PREFIX", "dashboard"))


@tq.task(name="resize", queue="images")
async def resize(n: int) -> int:
    await asyncio.sleep(random.uniform(0.005, 0.03))
    return n


@tq.task(name="report", queue="reports", timeout=0.5, max_attempts=3, backoff=0.2)
async def report(n: int) -> int:
    await asyncio.sleep(random.uniform(0.05, 0.6))  # over 0.5 s: a timeout, retried
    return n


@tq.task(name="send_email", queue="emails", max_attempts=2, backoff=0.1)
async def send_email(n: int) -> None:
    await asyncio.sleep(random.uniform(0.01, 0.05))
    if n % 10 == 0:
        raise ConnectionError("smtp down")  # retried, then dead (max_attempts)
    if n % 7 == 0:
        raise Retry(delay=0.1)
