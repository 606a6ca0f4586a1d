"""Server-Sent Events: one task's status changes and progress, in order, ending at its end.

Workers publish task ends, retries and progress on the queue's events channel; a task being
picked up (queued -> running) is not published, so the stream also re-reads the status every
``sse_poll_s``. Every wake-up (an event or the poll) re-reads the status, and the stream sends
an event only when something changed. Reads happen one after another, so events are in order.

Every ``data:`` line is strict JSON: NaN and infinities (which JSON cannot hold) are sent as
``null``, bytes as ``{"$bytes": "<base64>"}`` (see :func:`taskq.codec.json_safe`). Each API key
may hold ``sse_max_per_key`` streams open at once (per client address when authentication is
off); one more is answered 429 with ``Retry-After``.
"""

# No "from __future__ import annotations": FastAPI reads these routes' annotations at run
# time, and some refer to the factory's local values.

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import StreamingResponse

from taskq import codec, ids
from taskq.errors import RedisAuthError, RedisTimeout, RedisUnavailable, TaskNotFound
from taskq.integrations.auth import HEADER, Role, require
from taskq.integrations.config import ApiConfig
from taskq.integrations.errors import http_errors
from taskq.integrations.routes_tasks import TaskId, check_id
from taskq.integrations.schemas import Problem
from taskq.queue import TaskQueue
from taskq.records import TaskRecord

_FIELDS = ("status", "attempts", "progress", "progress_message", "error", "result", "run_at_ms")


def _view(record: TaskRecord) -> dict[str, Any]:
    d = record.to_dict()
    view = {"id": record.id, "task": record.task, **{k: d[k] for k in _FIELDS}}
    return codec.json_safe(view)  # type: ignore[no-any-return]


def format_event(event_id: int, name: str, data: dict[str, Any]) -> bytes:
    """One SSE frame; ``data`` made strict JSON first (NaN and infinities as null)."""
    text = json.dumps(codec.json_safe(data), allow_nan=False, default=str)
    return f"id: {event_id}\nevent: {name}\ndata: {text}\n\n".encode()


SLOTS_RETRY_AFTER_S = 5


class StreamSlots:
    """How many event streams each caller holds open; :meth:`take` refuses past ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}

    def take(self, who: str) -> None:
        """Hold one slot for ``who``, or raise 429."""
        n = self.open.get(who, 0)
        if n >= self.limit:
            raise HTTPException(429, f"too many event streams open for this API key (the "
                                     f"limit is {self.limit}); close one first",
                                headers={"Retry-After": str(SLOTS_RETRY_AFTER_S)})
        self.open[who] = n + 1

    def give_back(self, who: str) -> None:
        n = self.open.get(who, 0) - 1
        if n > 0:
            self.open[who] = n
        else:
            self.open.pop(who, None)


def caller(request: Request) -> str:
    """Who holds the stream: the API key's digest, else the client's address."""
    key = request.headers.get(HEADER)
    if key:
        return "key:" + hashlib.sha256(key.encode()).hexdigest()
    return "addr:" + (request.client.host if request.client else "?")


class HeldStream:
    """The frames of one stream, holding a slot until they end, fail, are closed or dropped
    (even unstarted: a response never sent gives its slot back when collected)."""

    def __init__(self, frames: AsyncIterator[bytes], slots: StreamSlots, who: str) -> None:
        self.frames = frames
        self.slots = slots
        self.who = who
        self.held = True

    def __aiter__(self) -> "HeldStream":
        return self

    async def __anext__(self) -> bytes:
        try:
            return await anext(self.frames)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        if self.held:
            self.held = False
            self.slots.give_back(self.who)

    def __del__(self) -> None:
        self.release()


async def task_events(tq: TaskQueue, task_id: str, config: ApiConfig,
                      first: TaskRecord) -> AsyncIterator[bytes]:
    """Yield SSE frames for ``task_id`` until it ends (or ``sse_max_s`` passes)."""
    queue, _ = ids.split(task_id)
    channel = tq.keys(queue).events
    wake = asyncio.Event()

    def listener(event_task: str, _event: list[Any]) -> None:
        if event_task == task_id:
            wake.set()

    await tq.events.subscribe(channel, listener)
    try:
        record, last, n = first, None, 0
        deadline = time.monotonic() + config.sse_max_s
        beat = time.monotonic() + config.sse_heartbeat_s
        while True:
            view = _view(record)
            if view != last:
                n += 1
                yield format_event(n, "status", view)
                last = view
                beat = time.monotonic() + config.sse_heartbeat_s
            if record.terminal or time.monotonic() > deadline:
                return
            if time.monotonic() > beat:
                yield b": keep-alive\n\n"
                beat = time.monotonic() + config.sse_heartbeat_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), config.sse_poll_s)
            wake.clear()
            try:
                record = await tq.status(task_id)
            except TaskNotFound:
                yield format_event(n + 1, "gone", {"id": task_id, "detail": "record expired"})
                return
            except (RedisUnavailable, RedisTimeout, RedisAuthError):
                await asyncio.sleep(config.sse_poll_s)
    finally:
        tq.events.unsubscribe(channel, listener)


def events_router(tq: TaskQueue, config: ApiConfig) -> APIRouter:
    router = APIRouter(tags=["tasks"])
    read = [Depends(require(config.keys, Role.READ))]
    slots = StreamSlots(config.sse_max_per_key)

    @router.get(
        "/tasks/{task_id}/events", dependencies=read, summary="Stream a task's status (SSE)",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {"example": (
            'id: 1\nevent: status\ndata: {"id": "default:1732190000000-0", "status": '
            '"running", "progress": 0.4, "progress_message": "resized 4/10", ...}\n\n')}},
            "description": "events named `status`, in order; the stream ends after the "
                           "terminal status (succeeded, dead, cancelled or expired)"},
            404: {"model": Problem},
            429: {"model": Problem, "description": "this key holds too many open streams"}},
    )
    async def events(request: Request, task_id: TaskId) -> StreamingResponse:
        with http_errors():
            first = await tq.status(check_id(task_id))
        who = caller(request)
        slots.take(who)
        return StreamingResponse(
            HeldStream(task_events(tq, task_id, config, first), slots, who),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
