"""Cancelling a delayed or queued task keeps what the task was in its record (name, arguments,
enqueue time, attempts), on a real Redis and on memory:// (whose Lua has no cmsgpack)."""

from __future__ import annotations

import uuid

import pytest

from taskq import TaskQueue, TaskStatus


@pytest.mark.parametrize("backend", ["redis", "memory"])
async def test_a_cancelled_task_keeps_its_name_and_arguments(backend: str, redis_url: str,
                                                             prefix: str) -> None:
    url = redis_url if backend == "redis" else f"memory://cancel-{uuid.uuid4().hex}"
    tq = TaskQueue(url, prefix=prefix)

    @tq.task(name="mail", queue="jobs")
    async def mail(to: str, *, tags: list[str]) -> None:
        return None

    try:
        queued = await mail.enqueue("a@example.org", tags=["x"])
        delayed = await mail.with_options(delay=600).enqueue("b@example.org", tags=[])
        assert await tq.cancel(queued.id) == "queued"
        assert await tq.cancel(delayed.id) == "delayed"
        for handle, to, tags in ((queued, "a@example.org", ["x"]),
                                 (delayed, "b@example.org", [])):
            rec = await tq.status(handle.id)
            assert rec.status is TaskStatus.CANCELLED
            assert rec.task == "mail", rec
            assert rec.kwargs == {"to": to, "tags": tags}, rec
            assert rec.enqueued_ms is not None and rec.finished_ms is not None, rec
            assert rec.attempts == 0 and rec.error == "cancelled before it ran", rec
        assert await tq.cancel(queued.id) == "unknown"
        assert (await tq.status(queued.id)).task == "mail"  # a second cancel changes nothing
    finally:
        await tq.aclose()
