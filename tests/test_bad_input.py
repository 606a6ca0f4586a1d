"""Hostile entries written straight to the stream: each ends in the dead letters with its reason,
the worker keeps running, and healthy work after them completes."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgpack
import pytest

from taskq import TaskQueue, TaskStatus, Worker
from tests.helpers import eventually
from tests.support import dead_letters, stream_len

LIMIT = 2_000


def envelope(task: str, *args: Any, **kwargs: Any) -> bytes:
    body = {"v": 1, "t": task, "a": list(args), "k": kwargs, "n": 0, "e": 0}
    return msgpack.packb(body, use_bin_type=True)


@pytest.fixture
async def app(redis_url: str, prefix: str) -> AsyncIterator[TaskQueue]:
    """Set up before (so closed after) the workers of start_worker."""
    queue = TaskQueue(redis_url, prefix=prefix, max_payload_bytes=LIMIT)
    yield queue
    await queue.aclose()


async def test_bad_entries_are_dead_lettered_and_the_worker_goes_on(
    app: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    ran: list[object] = []

    @app.task(name="ok")
    async def ok(n: int) -> int:
        ran.append(n)
        return n

    def nested(depth: int) -> bytes:  # {"v": 1, "t": "ok", ..., "a": [[[...]]]}
        head = b"\x86\xa1v\x01\xa1t\xa2ok\xa1k\x80\xa1n\x00\xa1e\x00\xa1a"
        return head + b"\x91" * depth + b"\xc0"

    cases: list[tuple[str, dict[str, bytes], str]] = [
        ("not msgpack", {"m": b"\xc1\xc1 not msgpack"}, "decode_error"),
        ("msgpack list", {"m": msgpack.packb([1, 2, 3])}, "decode_error"),
        ("msgpack string", {"m": msgpack.packb("ok")}, "decode_error"),
        ("no m field", {"x": envelope("ok", 1)}, "decode_error"),
        ("unknown task", {"m": envelope("os.system", "echo pwned")}, "unknown_task"),
        ("dotted path", {"m": envelope("tests.apps.cpu.burn", 10)}, "unknown_task"),
        ("wrong type", {"m": envelope("ok", "not a number")}, "invalid_args"),
        ("extra keyword", {"m": envelope("ok", 1, rm="-rf")}, "invalid_args"),
        ("missing argument", {"m": envelope("ok")}, "invalid_args"),
        ("too big", {"m": envelope("ok", 1, pad="x" * (LIMIT * 2))}, "payload_too_large"),
        ("nested past the decoder's limit", {"m": nested(1_900)}, "decode_error"),
        ("nested within it", {"m": nested(900)}, "invalid_args"),
        ("attempts past any count", {"m": msgpack.packb(
            {"v": 1, "t": "ok", "a": [1], "k": {}, "n": 2**63, "e": 0})}, "decode_error"),
        ("enqueue time past any time", {"m": msgpack.packb(
            {"v": 1, "t": "ok", "a": [1], "k": {}, "n": 0, "e": 2**64 - 1})}, "decode_error"),
    ]
    stream = app.keys("default").stream
    entries = []
    for _, fields, _ in cases:
        entries.append((await app.redis.xadd(stream, fields)).decode())  # type: ignore[arg-type]

    worker = start_worker(app, block_ms=100, unknown_grace_s=0)  # unknown names: dead at once
    letters = await eventually(
        lambda: _at_least(app, len(cases)), timeout=10, what="every bad entry dead-lettered"
    )
    by_entry = {d["entry"]: d for d in letters}
    assert len(letters) == len(cases)
    for (what, _, reason), entry in zip(cases, entries, strict=True):
        letter = by_entry[entry]
        assert letter["reason"] == reason, (what, letter)
        assert letter["id"] == f"default:{entry}"
        record = await app.status(letter["id"])
        assert record.status is TaskStatus.DEAD, what
        assert reason in (record.error or ""), what
    assert by_entry[entries[4]]["task"] == "os.system"
    huge = await app.status(by_entry[entries[12]]["id"])  # the reason names the field
    assert "attempt count is not an integer from 0 to" in (huge.error or ""), huge.error
    # the raw payload is kept for inspection (when there was one)
    assert by_entry[entries[0]]["payload"] == b"\xc1\xc1 not msgpack"

    # nothing ran, nothing is left pending, and the worker still works
    assert ran == []
    handle = await ok.enqueue(41)
    assert await handle.result(timeout=10) == 41
    assert ran == [41]
    assert worker.counters.dead == len(cases)
    assert await stream_len(app) == 0
    pending = await app.redis.xpending(stream, "taskq")
    assert pending["pending"] == 0


async def test_an_entry_with_other_fields_runs_by_its_envelope(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    """Entries written by other tools may carry more fields than "m"; the envelope is found."""
    ran: list[int] = []

    @tq.task(name="ok")
    async def ok(n: int) -> None:
        ran.append(n)

    stream = tq.keys("default").stream
    await tq.redis.xadd(stream, {"source": b"etl", "m": envelope("ok", 7), "z": b"1"})
    start_worker(tq, block_ms=100)

    async def has_run() -> list[int]:
        return ran

    await eventually(has_run, timeout=10, what="the entry ran")
    assert ran == [7]


async def _at_least(app: TaskQueue, n: int) -> list[dict[str, Any]] | None:
    letters = await dead_letters(app)
    return letters if len(letters) >= n else None


async def test_unknown_task_never_imports_the_named_module(
    tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    name = "tests.apps.never_imported"  # no such module; importing it would raise
    await tq.redis.xadd(tq.keys("default").stream, {"m": envelope(f"{name}.run")})
    start_worker(tq, block_ms=100, unknown_grace_s=0)
    (letter,) = await eventually(lambda: _at_least(tq, 1), timeout=10, what="dead letter")
    assert letter["reason"] == "unknown_task"
    assert name not in sys.modules


@pytest.mark.parametrize("task_id", ["garbage", "default:not-an-entry"])
async def test_envelope_with_a_malformed_task_id_ends(
    tq: TaskQueue, start_worker: Callable[..., Worker], task_id: str
) -> None:
    """The envelope's optional "i" (task id) comes from the payload like everything else: a
    value that is not a task id must not make every attempt fail inside the worker (the entry
    would then run again after each lease, and never reach the dead letters)."""
    runs: list[int] = []

    @tq.task(name="ok")
    async def ok(n: int) -> int:
        runs.append(n)
        return n

    body = {"v": 1, "t": "ok", "a": [1], "k": {}, "n": 0, "e": 0, "i": task_id}
    stream = tq.keys("default").stream
    await tq.redis.xadd(stream, {"m": msgpack.packb(body)})
    await tq.ensure_groups(["default"])
    start_worker(tq, block_ms=100)

    async def ended() -> bool:
        pending = await tq.redis.xpending(stream, "taskq")
        return pending["pending"] == 0 and await stream_len(tq) == 0

    await eventually(ended, timeout=3, what="entry acked (completed or dead-lettered)")
    assert len(runs) <= 1
    letters = await dead_letters(tq)
    assert [d["reason"] for d in letters] in ([], ["decode_error"])
    assert len(letters) + len(runs) == 1
