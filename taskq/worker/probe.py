"""The worker healthcheck (``taskq worker APP --check``): does this host run a live worker?"""

from __future__ import annotations

import asyncio
import socket

from taskq.admin.workers import list_workers
from taskq.connection import REDIS_ERRORS
from taskq.queue import TaskQueue


async def live_workers(tq: TaskQueue, host: str) -> list[str]:
    """Ids of the workers on ``host`` whose heartbeat lives and that are not stopping."""
    try:
        return [w.id for w in await list_workers(tq) if w.alive and not w.stopping
                and w.host == host]
    finally:
        await tq.aclose()


def check(tq: TaskQueue) -> tuple[int, str]:
    """Exit code and message: 0 when a live worker of this host heartbeats, else 1."""
    host = socket.gethostname()
    try:
        ids = asyncio.run(live_workers(tq, host))
    except REDIS_ERRORS as exc:
        return 1, f"unhealthy: Redis did not answer ({exc})"
    if not ids:
        return 1, f"unhealthy: no live worker heartbeat from host {host}"
    return 0, f"healthy: {len(ids)} live worker(s) on {host}: {', '.join(ids)}"
