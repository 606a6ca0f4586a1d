"""Argument layouts of the outcome scripts (complete, dead) for every mix of plain tasks,
concurrency slots and workflow steps in one call, owned or not."""

from __future__ import annotations

from taskq import TaskQueue, codec
from taskq.deadletter import DeadEntry
from taskq.keys import GROUP
from taskq.records import TaskStatus, encode_record
from taskq.scripts import Completion, StepEnd
from taskq.workflow import Workflow, chain, start


def _tasks(tq: TaskQueue) -> tuple[object, object]:
    @tq.task
    async def add(a: int, b: int) -> int:
        return a + b

    @tq.task
    async def double(x: int) -> int:
        return 2 * x

    return add, double


async def _read(tq: TaskQueue, n: int) -> list[tuple[str, codec.Message]]:
    stream = tq.keys("default").stream
    await tq.ensure_groups(["default"])
    got = await tq.redis.xreadgroup(GROUP, "c1", {stream: ">"}, count=n)
    return [(e.decode(), codec.decode(f[b"m"])) for e, f in got[0][1]]


async def test_complete_batch_mixing_plain_slots_and_steps(tq: TaskQueue) -> None:
    add, double = _tasks(tq)
    keys = tq.keys("default")
    plain1 = await add.enqueue(1, 1)  # type: ignore[attr-defined]
    plain2 = await add.enqueue(2, 2)  # type: ignore[attr-defined]
    wf1 = await start(tq, chain(add.message(1, 2), double.step()))  # type: ignore[attr-defined]
    wf2 = await start(tq, chain(add.message(3, 4), double.step()))  # type: ignore[attr-defined]
    delivered = await _read(tq, 10)
    assert len(delivered) == 4
    slot_a, slot_b = keys.limit("run", "a"), keys.limit("run", "b")
    items = []
    for n, (entry, msg) in enumerate(delivered):
        task_id = msg.task_id or f"default:{entry}"
        slot = {1: slot_a, 3: slot_b}.get(n)
        if slot:
            await tq.redis.zadd(slot, {task_id: 10**13})
        step = None if msg.workflow is None else StepEnd(msg.workflow, codec.pack(100 + n))
        items.append(Completion(entry, 1, task_id, TaskStatus.SUCCEEDED,
                                encode_record(TaskStatus.SUCCEEDED, result=n),
                                "e" if msg.task_id else "", slot=slot, step=step))
    assert [i.step is not None for i in items] == [False, False, True, True]
    lost = await tq.scripts.complete(keys=keys, consumer="c1", items=items, ttl_ms=60_000,
                                     now_ms=0, scan=20)
    assert lost == []
    assert await tq.redis.zcard(slot_a) == 0 and await tq.redis.zcard(slot_b) == 0
    for wf in (wf1, wf2):
        st = await Workflow(wf.id, tq).status()
        assert [s.state for s in st.steps] == ["succeeded", "queued"], st
    assert plain1 and plain2


def _letter(task_id: str, entry: str) -> DeadEntry:
    return DeadEntry(task_id=task_id, entry=entry, task="add", reason="max_attempts",
                     error_type="ValueError", error="x", traceback="", attempts=1,
                     enqueued_ms=0, failed_ms=0, worker="c1", payload=b"")


async def test_dead_with_and_without_slot_and_step(tq: TaskQueue) -> None:
    add, double = _tasks(tq)
    keys = tq.keys("default")
    await add.enqueue(1, 1)  # type: ignore[attr-defined]
    await add.enqueue(2, 2)  # type: ignore[attr-defined]
    wf1 = await start(tq, chain(add.message(1, 2), double.step()))  # type: ignore[attr-defined]
    wf2 = await start(tq, chain(add.message(3, 4), double.step()))  # type: ignore[attr-defined]
    delivered = await _read(tq, 10)
    slot = keys.limit("run", "s")
    for n, (entry, msg) in enumerate(delivered):
        task_id = msg.task_id or f"default:{entry}"
        held = slot if n in (1, 3) else None
        if held:
            await tq.redis.zadd(slot, {task_id: 10**13})
        r = await tq.scripts.dead(
            keys=keys, consumer="c1", entry_id=entry, deliveries=1, task_id=task_id,
            record=encode_record(TaskStatus.DEAD), ttl_ms=60_000, dead_cap=0,
            letter=_letter(task_id, entry), slot=held,
            step=msg.workflow, failure=codec.pack(None))
        assert r is not None, n
        if held:
            assert await tq.redis.zscore(slot, task_id) is None, n
    for wf in (wf1, wf2):
        st = await Workflow(wf.id, tq).status()
        assert st.status == "failed", st
        assert [s.state for s in st.steps] == ["dead", "skipped"], st


async def test_complete_lost_items_free_nothing(tq: TaskQueue) -> None:
    add, double = _tasks(tq)
    keys = tq.keys("default")
    await add.enqueue(1, 1)  # type: ignore[attr-defined]
    wf1 = await start(tq, chain(add.message(1, 2), double.step()))  # type: ignore[attr-defined]
    delivered = await _read(tq, 10)
    slot = keys.limit("run", "s")
    items = []
    for entry, msg in delivered:
        task_id = msg.task_id or f"default:{entry}"
        await tq.redis.zadd(slot, {task_id: 10**13})
        step = None if msg.workflow is None else StepEnd(msg.workflow, codec.pack(5))
        items.append(Completion(entry, 2, task_id, TaskStatus.SUCCEEDED,  # wrong token
                                encode_record(TaskStatus.SUCCEEDED, result=5),
                                "e" if msg.task_id else "", slot=slot, step=step))
    lost = await tq.scripts.complete(keys=keys, consumer="c1", items=items, ttl_ms=60_000,
                                     now_ms=0, scan=20)
    assert sorted(lost) == sorted(e for e, _ in delivered)
    assert await tq.redis.zcard(slot) == 2
    st = await Workflow(wf1.id, tq).status()
    assert [s.state for s in st.steps] == ["running", "waiting"], st
