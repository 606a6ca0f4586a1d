"""What a task returns or raises that cannot be stored as it is: a result msgpack cannot hold
(an int past 64 bits, a lone surrogate, an object, a cycle) or larger than
``max_result_bytes`` dead-letters the task at once with a clear reason (no retry, no second
run); an error message with a lone surrogate or a failing ``__str__`` is stored made safe;
errors, tracebacks and progress messages are bounded in the record as in dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from taskq import TaskContext, TaskQueue, TaskStatus, Worker, codec
from taskq.deadletter import ERROR_LIMIT, TRACEBACK_LIMIT
from taskq.records import bucket_key
from tests.support import dead_letters

RESULT_LIMIT = 10_000


@pytest.fixture
async def app(redis_url: str, prefix: str) -> AsyncIterator[TaskQueue]:
    queue = TaskQueue(redis_url, prefix=prefix, max_result_bytes=RESULT_LIMIT)
    yield queue
    await queue.aclose()


class Unprintable(Exception):
    def __str__(self) -> str:
        raise ValueError("str() of this exception fails")


async def test_unencodable_results_are_dead_lettered_once_with_the_reason(
    app: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    runs: dict[str, int] = {}

    def returning(name: str, value: Callable[[], Any]) -> Any:
        @app.task(name=name, max_attempts=3, backoff=0.01, max_backoff=0.02)
        async def task() -> Any:
            runs[name] = runs.get(name, 0) + 1
            return value()
        return task

    def cycle() -> list[Any]:
        a: list[Any] = []
        a.append(a)
        return a

    cases = {
        "hugeint": (lambda: 10**40, "int"),
        "surrogate": (lambda: "bad\ud800", "str"),
        "nested_surrogate": (lambda: {"k": ["bad\udfff"]}, "dict"),
        "an_object": (object, "object"),
        "a_cycle": (cycle, "list"),
    }
    tasks = {name: returning(name, value) for name, (value, _) in cases.items()}
    fine = returning("fine", lambda: {"ok": "caf\u00e9"})
    handles = {name: await t.enqueue() for name, t in tasks.items()}
    ok = await fine.enqueue()
    start_worker(app, block_ms=100)
    for name, (_, type_name) in cases.items():
        record = await handles[name].wait(timeout=20)
        assert record.status is TaskStatus.DEAD, (name, record)
        assert record.error_type == "ResultUnencodable", (name, record)
        assert (record.error or "").startswith(
            f"result_unencodable: the task returned a {type_name} that cannot be stored"
        ), (name, record.error)
        assert record.attempts == 1, (name, record)
    assert await ok.result(timeout=10) == {"ok": "caf\u00e9"}
    letters = {d["task"]: d for d in await dead_letters(app)}
    assert {n: letters[n]["reason"] for n in cases} == dict.fromkeys(cases, "result_unencodable")
    assert runs == dict.fromkeys([*cases, "fine"], 1)  # dead (terminal) after one run


async def test_a_result_over_the_limit_is_dead_lettered_as_result_too_large(
    app: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    runs: list[int] = []

    @app.task(name="big", max_attempts=3, backoff=0.01, max_backoff=0.02)
    async def big(n: int) -> str:
        runs.append(n)
        return "A" * n

    @app.task(name="near")
    async def near_limit(n: int) -> str:
        return "B" * n

    small, large = await big.enqueue(RESULT_LIMIT // 2), await big.enqueue(RESULT_LIMIT * 3)
    start_worker(app, block_ms=100)
    assert await small.result(timeout=20) == "A" * (RESULT_LIMIT // 2)
    record = await large.wait(timeout=20)
    assert record.status is TaskStatus.DEAD and record.error_type == "ResultTooLarge", record
    assert record.error == (f"result_too_large: the task returned {RESULT_LIMIT * 3 + 3} bytes "
                            f"(encoded), more than max_result_bytes ({RESULT_LIMIT})")
    assert record.result is None
    assert sorted(runs) == [RESULT_LIMIT // 2, RESULT_LIMIT * 3]  # no retry
    # a record holding args and a result just under the limit is not refused
    near = await near_limit.enqueue(RESULT_LIMIT - 10)
    assert await near.result(timeout=20) == "B" * (RESULT_LIMIT - 10)


async def test_unsafe_error_texts_are_stored_made_safe_and_bounded(
    app: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    @app.task(name="raises", max_attempts=1)
    async def raises(kind: str, n: int = 0) -> None:
        if kind == "surrogate":
            raise RuntimeError("bad\ud800")
        if kind == "unprintable":
            raise Unprintable
        raise RuntimeError("E" * n)

    @app.task(name="retried", max_attempts=2, backoff=0.01, max_backoff=0.02)
    async def retried(n: int) -> None:
        raise RuntimeError("R" * n)

    sur = await raises.enqueue("surrogate")
    unp = await raises.enqueue("unprintable")
    huge = await raises.enqueue("huge", 3_000_000)
    again = await retried.enqueue(3_000_000)
    start_worker(app, block_ms=100)

    record = await sur.wait(timeout=20)
    assert record.status is TaskStatus.DEAD and record.attempts == 1, record
    assert record.error == "max_attempts: bad\\ud800"
    record = await unp.wait(timeout=20)
    assert record.status is TaskStatus.DEAD, record
    assert record.error == "max_attempts: <unprintable Unprintable>"
    assert record.error_type == "Unprintable"
    for handle in (huge, again):
        record = await handle.wait(timeout=30)
        assert record.status is TaskStatus.DEAD, record
        assert record.error is not None and len(record.error) <= ERROR_LIMIT, len(record.error)
        assert record.traceback is not None and len(record.traceback) <= TRACEBACK_LIMIT
    raw = await app.redis.hget(bucket_key(app.keys("default"), again.id), again.id)
    assert raw is not None and len(raw) < 3 * (ERROR_LIMIT + TRACEBACK_LIMIT)
    letters = {d["id"]: d for d in await dead_letters(app)}
    assert letters[sur.id]["error"] == "bad\\ud800"
    assert letters[unp.id]["error"] == "<unprintable Unprintable>"


async def test_a_progress_message_is_bounded_and_made_safe(
    app: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    release = asyncio.Event()

    @app.task(name="reports")
    async def reports(ctx: TaskContext, n: int) -> int:
        await ctx.progress(0.5, "p\ud800" + "M" * n)
        await release.wait()
        return n

    handle = await reports.enqueue(5_000_000)
    start_worker(app, block_ms=100)
    bucket = bucket_key(app.keys("default"), handle.id)

    async def stored() -> bytes | None:
        return await app.redis.hget(bucket, handle.id + ":p")  # type: ignore[no-any-return]

    deadline = asyncio.get_running_loop().time() + 20
    while (raw := await stored()) is None:
        assert asyncio.get_running_loop().time() < deadline, "no progress stored"
        await asyncio.sleep(0.02)
    progress = codec.unpack(raw)
    # 1,000 characters kept, the surrogate escaped
    assert progress["m"].startswith("p\\ud800MMM") and len(progress["m"]) <= 1_010
    release.set()
    assert await handle.result(timeout=20) == 5_000_000
