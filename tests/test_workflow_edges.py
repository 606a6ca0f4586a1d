"""Workflows at the edges: the CLI (`taskq workflow ID`), the HTTP API, and the scripts'
exactly-once rules exercised directly (a step ended twice, a workflow cancelled mid-way)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable

from typer.testing import CliRunner

from taskq import TaskQueue, Worker, codec
from taskq.cli import app as cli_app
from taskq.records import TaskStatus, encode_record
from taskq.scripts import Completion, StepEnd
from taskq.workflow import Workflow, chain, chord, start
from tests.api_fixtures import ADMIN, READ, make_app, serve
from tests.apps.common import gate_key
from tests.helpers import WorkerProcess, eventually
from tests.support import WORKER_APP, registered, trace, traced

runner = CliRunner()


def _tasks(tq: TaskQueue) -> tuple[object, object, object]:
    @tq.task
    async def add(a: int, b: int) -> int:
        return a + b

    @tq.task
    async def double(x: int) -> int:
        return 2 * x

    @tq.task
    async def total(values: list[int]) -> int:
        return sum(values)

    return add, double, total


async def test_cli_shows_and_cancels(tq: TaskQueue, redis_url: str, prefix: str) -> None:
    add, double, _ = _tasks(tq)
    wf = await start(tq, chain(add.message(1, 2), double.step()))  # type: ignore[attr-defined]
    base = ["--redis-url", redis_url, "--prefix", prefix]

    def invoke(*args: str) -> object:
        return runner.invoke(cli_app, [*base, *args])

    r = await asyncio.to_thread(invoke, "workflow", wf.id, "--json")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    body = json.loads(r.output)  # type: ignore[attr-defined]
    assert body["status"] == "running"
    assert [s["state"] for s in body["steps"]] == ["queued", "waiting"]
    r = await asyncio.to_thread(invoke, "workflow", wf.id)
    assert r.exit_code == 0 and "waiting" in r.output  # type: ignore[attr-defined]
    r = await asyncio.to_thread(invoke, "workflow", wf.id, "--cancel", "--yes", "--json")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    assert json.loads(r.output)["status"] == "cancelled"  # type: ignore[attr-defined]
    r = await asyncio.to_thread(invoke, "workflow", "default:1-wdead")
    assert r.exit_code == 1 and "no workflow" in r.output  # type: ignore[attr-defined]


async def test_http_status_and_cancel(tq: TaskQueue,
                                      start_worker: Callable[..., Worker]) -> None:
    add, double, _ = _tasks(tq)
    async with serve(make_app(tq)) as http:
        wf = await start(tq, chain(add.message(1, 2), double.step()))  # type: ignore[attr-defined]
        r = await http.get(f"/workflows/{wf.id}", headers=READ)
        assert r.status_code == 200, r.text
        assert r.json()["kind"] == "chain"
        assert (await http.get("/workflows/nope", headers=READ)).status_code == 404
        assert (await http.post(f"/workflows/{wf.id}/cancel", headers=READ)).status_code == 403
        r = await http.post(f"/workflows/{wf.id}/cancel", headers=ADMIN)
        assert r.status_code == 200, r.text
        assert r.json()["before"] == "running"
        assert r.json()["status"]["status"] == "cancelled"


async def test_a_step_ended_twice_counts_once(tq: TaskQueue) -> None:
    """The chord counter moves once per member even if a member's end is reported twice (a
    rerun after a lost lease): the callback is enqueued exactly once."""
    add, _, total = _tasks(tq)
    wf = await start(tq, chord([add.message(1, 1), add.message(2, 2)],  # type: ignore[attr-defined]
                               total.step()))  # type: ignore[attr-defined]
    stream = tq.keys("default").stream
    await tq.ensure_groups(["default"])
    entries = await tq.redis.xreadgroup("taskq", "c1", {stream: ">"}, count=10)
    delivered = entries[0][1]
    assert len(delivered) == 2
    items = []
    for entry_id, fields in delivered:
        msg = codec.decode(fields[b"m"])
        assert msg.workflow is not None and msg.task_id is not None
        items.append(Completion(entry_id.decode(), 1, msg.task_id, TaskStatus.SUCCEEDED,
                                encode_record(TaskStatus.SUCCEEDED, result=7), "e",
                                step=StepEnd(msg.workflow, codec.pack(msg.workflow.step + 10))))
    keys = tq.keys("default")
    for _ in range(2):  # the second call finds nothing owned: nothing happens
        await tq.scripts.complete(keys=keys, consumer="c1", items=items[:1], ttl_ms=60_000,
                                  now_ms=0, scan=10)
    st = await wf.status()
    assert [s.state for s in st.steps] == ["succeeded", "running", "waiting"]
    await tq.scripts.complete(keys=keys, consumer="c1", items=items[1:], ttl_ms=60_000,
                              now_ms=0, scan=10)
    st = await wf.status()
    assert [s.state for s in st.steps][:2] == ["succeeded", "succeeded"]
    assert st.steps[2].state == "queued"
    # exactly one callback entry, carrying the members' results in order
    rest = await tq.redis.xrange(stream)
    assert len(rest) == 1
    callback = codec.decode(rest[0][1][b"m"])
    assert callback.kwargs == {"values": [10, 11]}
    # a second run of a member (a new entry of the same task, as a rerun would be) ends
    # without enqueueing anything: the workflow counts each step once
    await tq.redis.xdel(stream, rest[0][0])
    await tq.redis.xadd(stream, {b"m": codec.encode(codec.decode(delivered[0][1][b"m"]))})
    (again,) = (await tq.redis.xreadgroup("taskq", "c1", {stream: ">"}, count=10))[0][1]
    rerun = Completion(again[0].decode(), 1, items[0].task_id, TaskStatus.SUCCEEDED,
                       items[0].record, "e", step=items[0].step)
    assert await tq.scripts.complete(keys=keys, consumer="c1", items=[rerun], ttl_ms=60_000,
                                     now_ms=0, scan=10) == []
    assert await tq.redis.xlen(stream) == 0
    assert int(await tq.redis.hget(Workflow(wf.id, tq).key, "w:2")) == 0


async def test_sigkilled_worker_mid_chord_callback_runs_once(
        app: TaskQueue, worker_process: Callable[..., WorkerProcess]) -> None:
    """A worker SIGKILLed while it runs a chord's members: another worker reclaims them after
    their lease, the chord completes, and its callback runs exactly once, with every result."""
    lease = ("--lease-ms", "2000", "--concurrency", "4")
    first = worker_process(WORKER_APP, *lease)
    gated, joined = app.get_task("gated"), app.get_task("joined")
    assert gated is not None and joined is not None
    wf = await start(app, chord([gated.message(k) for k in "abc"], joined.step()))
    await eventually(lambda: traced(app, "started", 3), timeout=15, what="members started")
    second = worker_process(WORKER_APP, *lease)
    await eventually(lambda: registered(app, second.pid), timeout=15, what="second worker up")
    assert await trace(app, "finished") == []  # all three held by the first worker (gated)
    first.signal(signal.SIGKILL)
    first.wait(5)
    await app.redis.set(gate_key(app.prefix), 1)  # the reruns may end now
    assert await wf.result(timeout=30) == "a+b+c"
    assert sorted(await trace(app, "started")) == ["a", "a", "b", "b", "c", "c"]  # rerun once
    assert await trace(app, "joined") == ["a,b,c"]  # the callback: once, results in order
    st = await wf.status()
    assert [s.state for s in st.steps] == ["succeeded"] * 4
