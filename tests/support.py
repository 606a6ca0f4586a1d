"""Helpers of the core test suite (beside tests/helpers.py): reading dead letters and traces,
finding a supervisor's children, counting runs per concurrency key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from taskq import TaskQueue, codec, ids
from taskq.keys import workers_key
from taskq.records import TaskStatus, bucket_key
from tests.apps.common import trace_key

WORKER_APP = "tests.apps.basic:tq"
"""The app of worker subprocesses (tasks from tests/apps/common.py)."""


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value
    return value


async def end_lean(app: TaskQueue, task_id: str,
                   status: TaskStatus = TaskStatus.SUCCEEDED) -> None:
    """End a queued task as ``lua/complete.lua`` does while Redis is out of memory: its entry
    deleted, its record only ``{"s": status, "m": 1}``."""
    queue, entry = ids.split(task_id)
    keys = app.keys(queue)
    pipe = app.redis.pipeline(transaction=True)
    pipe.xdel(keys.stream, entry)
    pipe.hset(bucket_key(keys, task_id), task_id, codec.pack({"s": str(status), "m": 1}))
    await pipe.execute()


async def dead_letters(app: TaskQueue, queue: str = "default") -> list[dict[str, Any]]:
    """Every dead letter of ``queue``, oldest first, fields decoded to str where they are text."""
    rows = await app.redis.xrange(app.keys(queue).dead)
    return [{_text(k): _text(v) for k, v in fields.items()} for _, fields in rows]


async def trace(app: TaskQueue, name: str) -> list[str]:
    """A trace list written by the tasks of tests/apps/common.py."""
    values = await app.redis.lrange(trace_key(app.prefix, name), 0, -1)  # type: ignore[misc]
    return [_text(v) for v in values]


async def traced(app: TaskQueue, name: str, count: int) -> list[str] | None:
    """The trace ``name`` once it holds at least ``count`` values (for ``eventually``)."""
    values = await trace(app, name)
    return values if len(values) >= count else None


async def registered_pids(app: TaskQueue) -> set[int]:
    """Pids in the workers registry (a SIGKILLed worker's entry stays there)."""
    rows = await app.redis.hgetall(workers_key(app.prefix))  # type: ignore[misc]
    return {json.loads(v)["pid"] for v in rows.values()}


async def registered(app: TaskQueue, pid: int) -> bool:
    """Whether worker process ``pid`` has heartbeated (it is consuming)."""
    return pid in await registered_pids(app)


async def stream_len(app: TaskQueue, queue: str = "default") -> int:
    key = app.keys(queue).stream
    return int(await app.redis.xlen(key)) if await app.redis.exists(key) else 0


def live_children(parent: int) -> list[int]:
    """Pids of the running (not zombie) children of ``parent``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces or parentheses
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[1]) == parent and fields[0] not in ("Z", "X"):
            out.append(int(text.split(" ", 1)[0]))
    return sorted(out)


def alive(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2 :].split()[0] not in ("Z", "X")


class RunsPerKey:
    """Task runs in flight per key: the peak of each key, and whether runs of different keys
    ever overlapped (for concurrency-key tests)."""

    def __init__(self) -> None:
        self.running: dict[str, int] = {}
        self.peaks: dict[str, int] = {}
        self.overlap = False

    async def run(self, key: str, seconds: float) -> None:
        """One run under ``key`` lasting ``seconds``."""
        self.running[key] = self.running.get(key, 0) + 1
        self.peaks[key] = max(self.peaks.get(key, 0), self.running[key])
        self.overlap = self.overlap or sum(self.running.values()) > 1
        await asyncio.sleep(seconds)
        self.running[key] -= 1
