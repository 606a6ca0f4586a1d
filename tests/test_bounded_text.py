"""Text and bytes that arrive from tasks or from Redis are bounded and cannot forge log lines:
a ``payload_too_large`` dead letter keeps a prefix of its payload and its size (and refuses a
replay clearly); the text log escapes newlines and escape sequences in task errors and task
names, and cuts long names."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgpack
import pytest
from typer.testing import CliRunner

from taskq import TaskQueue, TaskStatus, Worker, admin
from taskq.cli import app as cli
from taskq.deadletter import PAYLOAD_PREFIX
from taskq.errors import DeadLetterTruncated
from tests.helpers import eventually
from tests.support import dead_letters

LIMIT = 2_000


def envelope(task: str, *args: Any, **kwargs: Any) -> bytes:
    body = {"v": 1, "t": task, "a": list(args), "k": kwargs, "n": 0, "e": 0}
    return msgpack.packb(body, use_bin_type=True)  # type: ignore[no-any-return]


@pytest.fixture
async def app(redis_url: str, prefix: str) -> AsyncIterator[TaskQueue]:
    queue = TaskQueue(redis_url, prefix=prefix, max_payload_bytes=LIMIT)
    yield queue
    await queue.aclose()


async def test_a_payload_too_large_dead_letter_keeps_a_prefix_and_refuses_replay(
    app: TaskQueue, start_worker: Callable[..., Worker], redis_url: str
) -> None:
    @app.task(name="ok")
    async def ok(n: int) -> int:
        return n

    big = envelope("ok", 1, pad="x" * 500_000)
    stream = app.keys("default").stream
    await app.redis.xadd(stream, {"m": big})
    start_worker(app, block_ms=100)
    (letter,) = await eventually(lambda: dead_letters(app), timeout=20, what="dead letter")
    assert letter["reason"] == "payload_too_large"
    assert letter["payload"] == big[:PAYLOAD_PREFIX]
    assert letter["payload_bytes"] == str(len(big))

    (shown,) = await admin.dead_letters(app, "default")
    with pytest.raises(DeadLetterTruncated, match=f"only its first {PAYLOAD_PREFIX} bytes"):
        await admin.replay_dead(app, "default", [shown.id])
    assert await admin.replay_dead(app, "default") == 0  # (all: skipped, kept)
    r = await asyncio.to_thread(  # (the CLI runs its own event loop)
        CliRunner().invoke, cli,
        ["--redis-url", redis_url, "--prefix", app.prefix, "dead", "replay", "default",
         shown.id, "--yes"])
    assert r.exit_code != 0, r.output
    assert f"dead letter {shown.id} cannot be replayed: its payload of {len(big)} bytes" in (
        " ".join(r.output.split()))
    assert len(await dead_letters(app)) == 1

    # a dead letter of another reason keeps its whole payload and replays
    handle = await ok.enqueue(7)
    assert await handle.result(timeout=20) == 7


async def test_task_text_cannot_forge_text_log_lines(
    app: TaskQueue, start_worker: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskq")  # (before the worker starts: the task log)

    @app.task(name="forger", max_attempts=1)
    async def forger() -> None:
        raise RuntimeError("boom\n2026-12-07 03:41:20,278 ERROR taskq.fake forged\x1b[2J")

    handle = await forger.enqueue()
    evil_name = "evil\nname\x1b]0;title\x07"
    await app.redis.xadd(app.keys("default").stream, {"m": envelope(evil_name)})
    long_name = "x" * 100_000
    await app.redis.xadd(app.keys("default").stream, {"m": envelope(long_name[:1_900])})
    start_worker(app, block_ms=100, unknown_grace_s=0)
    record = await handle.wait(timeout=20)
    assert record.status is TaskStatus.DEAD
    await eventually(lambda: _letters(app, 3), timeout=20, what="three dead letters")
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("taskq")]
    dead_line = next(m for m in messages if f"task {handle.id} dead-lettered" in m)
    assert "boom\\n2026-12-07 03:41:20,278 ERROR taskq.fake forged\\x1b[2J" in dead_line
    for m in messages:
        assert "\n" not in m and "\x1b" not in m and "\x07" not in m, m
    assert any("evil\\nname\\x1b]0;title\\x07" in m for m in messages)


@pytest.fixture
async def roomy(redis_url: str, prefix: str) -> AsyncIterator[TaskQueue]:
    """The default payload limit: a long task name fits."""
    queue = TaskQueue(redis_url, prefix=prefix)
    yield queue
    await queue.aclose()


async def test_an_unknown_task_name_is_cut_in_the_hand_back_log_line(
    roomy: TaskQueue, start_worker: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="taskq")
    await roomy.redis.xadd(roomy.keys("default").stream, {"m": envelope("n" * 200_000)})
    start_worker(roomy, block_ms=100, unknown_grace_s=60, queues=("default",))

    async def lines() -> list[str] | None:  # the WARNING with the fix and the DEBUG hand-back
        warned = [r.getMessage() for r in caplog.records
                  if "is not registered in this worker" in r.getMessage()]
        handed = [r.getMessage() for r in caplog.records if "unknown to worker" in r.msg]
        return warned + handed if warned and handed else None

    for line in await eventually(lines, timeout=20, what="warned and handed back"):
        assert len(line) < 1_000, len(line)


async def _letters(app: TaskQueue, n: int) -> list[dict[str, Any]] | None:
    letters = await dead_letters(app)
    return letters if len(letters) >= n else None
