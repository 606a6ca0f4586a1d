"""Example tasks that show what taskq is for (served by ``./dev up``).

- ``send_welcome_email``: the classic BackgroundTasks job, now durable (it only logs here).
- ``flaky``: fails twice, succeeds on its third attempt (retries with backoff).
- ``resize_images``: slow, reports progress (watch it with the SSE endpoint).
- ``always_fails``: fails every attempt and lands in the dead letters (replay or purge it).
"""

from __future__ import annotations

import asyncio
import logging
import os

from taskq import TaskContext, TaskQueue

log = logging.getLogger(__name__)

tq = TaskQueue(prefix=os.environ.get("TASKQ_PREFIX", "taskq"))


@tq.task(name="send_welcome_email", queue="emails", max_attempts=5)
async def send_welcome_email(email: str, name: str = "there") -> dict[str, str]:
    """Send (here: log) a welcome email."""
    log.info("sending welcome email to %s", email)
    await asyncio.sleep(0.05)
    return {"sent_to": email, "greeting": f"Welcome, {name}!"}


@tq.task(name="flaky", max_attempts=5, backoff=0.5, max_backoff=2)
async def flaky(ctx: TaskContext, label: str = "demo") -> str:
    """Fail on the first two attempts; succeed on the third."""
    if ctx.attempt < 3:
        raise ConnectionError(f"{label}: upstream unavailable (attempt {ctx.attempt})")
    return f"{label}: succeeded on attempt {ctx.attempt}"


@tq.task(name="resize_images", timeout=600)
async def resize_images(ctx: TaskContext, images: int = 10, seconds_each: float = 0.5) -> int:
    """Pretend to resize ``images`` images, reporting progress after each one."""
    for i in range(1, images + 1):
        await asyncio.sleep(seconds_each)
        await ctx.progress(i / images, f"resized {i}/{images}")
    return images


@tq.task(name="always_fails", max_attempts=3, backoff=0.2, max_backoff=1)
async def always_fails(reason: str = "the upstream service said no") -> None:
    """Fail on every attempt: ends in the dead letters after 3 attempts."""
    raise RuntimeError(reason)
