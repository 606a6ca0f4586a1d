"""Sync callers read what they enqueued: ``enqueue_sync`` returns a blocking SyncTaskHandle."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from taskq import ResultTimeout, SyncTaskHandle, TaskFailed, TaskQueue, TaskStatus, Worker

FAST = {"block_ms": 100}


def _sync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "taskq-sync"]


async def test_sync_handle_status_result_and_cancel(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    @tq.task
    async def double(n: int) -> int:
        return n * 2

    @tq.task(max_attempts=1)
    def explode() -> None:
        raise ValueError("boom")

    def from_sync_code() -> tuple[int, TaskStatus, str, str, str]:
        handle = double.enqueue_sync(21)
        assert isinstance(handle, SyncTaskHandle)
        value = handle.result(timeout=10)  # a plain value, not a coroutine
        ended = handle.status().status
        with pytest.raises(TaskFailed) as failed:
            explode.enqueue_sync().result(timeout=10)
        later = double.with_options(delay=60).enqueue_sync(1)
        with pytest.raises(ResultTimeout):
            later.result(timeout=0.2)
        cancelled = later.cancel()
        after = tq.sync_handle(later.id).status().status
        return value, ended, failed.value.status, cancelled, str(after)

    start_worker(tq, **FAST)
    value, ended, failed, cancelled, after = await asyncio.to_thread(from_sync_code)
    assert value == 42
    assert ended is TaskStatus.SUCCEEDED
    assert failed == "dead"
    assert cancelled == "delayed"
    assert after == "cancelled"


async def test_enqueue_many_sync_returns_blocking_handles(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    @tq.task
    async def echo(text: str) -> str:
        return text

    def from_sync_code() -> list[str]:
        handles = tq.enqueue_many_sync([echo.message(t) for t in ("a", "b", "c")])
        assert all(isinstance(h, SyncTaskHandle) for h in handles)
        return [h.result(timeout=10) for h in handles]

    start_worker(tq, **FAST)
    assert await asyncio.to_thread(from_sync_code) == ["a", "b", "c"]


async def test_close_sync_stops_the_blocking_thread(tq: TaskQueue) -> None:
    @tq.task
    async def noop() -> None:
        return None

    def from_sync_code() -> None:
        handle = noop.enqueue_sync()
        assert handle.status().status is TaskStatus.QUEUED
        assert len(_sync_threads()) == 1
        tq.close_sync()
        tq.close_sync()  # twice is fine

    before = len(_sync_threads())
    await asyncio.to_thread(from_sync_code)
    assert len(_sync_threads()) == before
