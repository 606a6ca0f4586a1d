"""The HTTP API against a real Redis, served by uvicorn over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from taskq import TaskQueue, Worker
from tests.api_fixtures import ADMIN, ADMIN_KEY, READ, make_app, serve
from tests.apps.api_tasks import build
from tests.helpers import WorkerProcess, eventually
from tests.support import end_lean


async def enqueue(client: httpx.AsyncClient, task: str, **body: object) -> str:
    r = await client.post(f"/enqueue/{task}", json=body, headers=ADMIN)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def test_enqueue_run_by_worker_process_and_result(
    client: httpx.AsyncClient, worker_process: Callable[..., WorkerProcess]
) -> None:
    r = await client.post("/enqueue/add", json={"a": 2, "b": 3}, headers=READ)
    assert r.status_code == 202
    body = r.json()
    assert body["task"] == "add" and body["queue"] == "default"
    assert r.headers["location"] == f"/v1/tasks/{body['id']}"
    status = await client.get(f"/tasks/{body['id']}", headers=READ)
    assert status.json()["status"] == "queued"
    assert status.json()["kwargs"] == {"a": 2, "b": 3}

    worker_process("tests.apps.api_tasks:tq", "--concurrency", "4")
    done = await client.get(f"/tasks/{body['id']}/wait", params={"timeout_s": 10},
                            headers=READ)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "succeeded"
    assert done.json()["result"] == 5
    again = await client.get(f"/tasks/{body['id']}", headers=READ)
    assert again.json()["status"] == "succeeded" and again.json()["result"] == 5


async def test_a_result_not_kept_for_lack_of_memory_shows(client: httpx.AsyncClient,
                                                          app_tq: TaskQueue) -> None:
    task_id = await enqueue(client, "add", a=1, b=2)
    first = await client.get(f"/tasks/{task_id}", headers=READ)
    assert first.json()["result_dropped"] is False
    await end_lean(app_tq, task_id)  # as a worker ends it while Redis is out of memory
    for r in (await client.get(f"/tasks/{task_id}", headers=READ),
              await client.get(f"/tasks/{task_id}/wait", params={"timeout_s": 5},
                               headers=READ)):
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["status"], body["result"], body["result_dropped"]) == (
            "succeeded", None, True)


async def test_wait_times_out_with_202(client: httpx.AsyncClient) -> None:
    task_id = await enqueue(client, "add", a=1, b=1)
    r = await client.get(f"/tasks/{task_id}/wait", params={"timeout_s": 0.2}, headers=READ)
    assert r.status_code == 202
    assert r.json()["status"] == "queued"


async def test_authentication(client: httpx.AsyncClient) -> None:
    assert (await client.get("/registry")).status_code == 401
    bad = await client.get("/registry", headers={"X-API-Key": ADMIN_KEY[:-1] + "X"})
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == "ApiKey"
    assert (await client.get("/registry", headers=READ)).status_code == 200
    task_id = await enqueue(client, "add", a=1, b=2)
    # read-only keys cannot cancel, replay or purge
    assert (await client.post(f"/tasks/{task_id}/cancel", headers=READ)).status_code == 403
    assert (await client.post("/queues/default/dead/replay", headers=READ)).status_code == 403
    assert (await client.post("/queues/default/dead/purge", headers=READ)).status_code == 403
    # liveness and readiness need no key
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/ready")).json() == {"status": "ready"}


async def test_registry_lists_argument_schemas(client: httpx.AsyncClient) -> None:
    r = await client.get("/registry", headers=READ)
    by_name = {t["name"]: t for t in r.json()}
    assert set(by_name) == {"add", "steps", "sleepy", "sync_sleepy", "fail", "note"}
    add = by_name["add"]["arguments"]
    assert add["required"] == ["a", "b"]
    assert add["properties"]["a"]["type"] == "integer"
    assert by_name["steps"]["arguments"]["required"] == []
    assert by_name["note"]["queue"] == "notes"


async def test_unknown_task_and_unknown_id_are_404(client: httpx.AsyncClient) -> None:
    r = await client.post("/enqueue/nope", json={}, headers=ADMIN)
    assert r.status_code == 404
    assert "nope" in r.json()["detail"]
    for tid in ("default:1-0", "not-an-id", "default:99999999999-d00"):
        assert (await client.get(f"/tasks/{tid}", headers=READ)).status_code == 404
        assert (await client.post(f"/tasks/{tid}/cancel", headers=ADMIN)).status_code == 404
        assert (await client.get(f"/tasks/{tid}/events", headers=READ)).status_code == 404


async def test_bad_arguments_are_422_with_pydantic_detail(client: httpx.AsyncClient) -> None:
    r = await client.post("/enqueue/add", json={"a": "x", "b": 1}, headers=ADMIN)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail[0]["loc"] == ["body", "a"]
    assert detail[0]["type"] == "int_parsing"
    missing = await client.post("/enqueue/add", json={"a": 1}, headers=ADMIN)
    assert missing.status_code == 422
    # every error at once: a wrong type and a missing argument, a typo too
    both = await client.post("/enqueue/add", json={"a": "x"}, headers=ADMIN)
    assert [(e["loc"], e["type"]) for e in both.json()["detail"]] == [
        (["body", "a"], "int_parsing"), (["body", "b"], "missing")]
    extra = await client.post("/enqueue/add", json={"a": 1, "b": 2, "c": 3}, headers=ADMIN)
    assert extra.status_code == 422
    typo = await client.post("/enqueue/add", json={"a": "x", "bb": 2}, headers=ADMIN)
    assert sorted(e["loc"][1] for e in typo.json()["detail"]) == ["a", "b", "bb"]
    not_json = await client.post("/enqueue/add", content=b"{", headers=ADMIN)
    assert not_json.status_code == 422
    assert not_json.json()["detail"][0]["type"] == "json_invalid"
    not_object = await client.post("/enqueue/add", json=[1, 2], headers=ADMIN)
    assert not_object.status_code == 422


async def test_oversize_body_is_413_before_parsing(app_tq: TaskQueue) -> None:
    async with serve(make_app(app_tq, max_body_bytes=1000)) as client:
        big = {"a": 1, "b": 2, "pad": "x" * 2000}
        r = await client.post("/enqueue/add", json=big, headers=ADMIN)
        assert r.status_code == 413

        # No Content-Length (a chunked upload): refused once 1000 bytes have arrived, without
        # waiting for the rest (which this client never sends).
        reader, writer = await asyncio.open_connection("127.0.0.1", client.base_url.port)
        chunk = b'{"a": 1, "b": 2, "pad": "' + b"x" * 1200
        writer.write(b"POST /v1/enqueue/add HTTP/1.1\r\nHost: t\r\nX-API-Key: "
                     + ADMIN_KEY.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        assert status_line.split()[1] == b"413"
        writer.close()
        small = await client.post("/enqueue/add", json={"a": 1, "b": 2}, headers=ADMIN)
        assert small.status_code == 202
    assert await app_tq.redis.xlen(app_tq.keys("default").stream) == 1


async def test_backlog_full_is_429_with_retry_after(redis_url: str, prefix: str) -> None:
    tq = build(prefix, redis_url, max_backlog=2)
    try:
        async with serve(make_app(tq)) as client:
            for _ in range(2):
                await enqueue(client, "add", a=1, b=1)
            r = await client.post("/enqueue/add", json={"a": 1, "b": 1}, headers=ADMIN)
            assert r.status_code == 429
            assert int(r.headers["retry-after"]) > 0
    finally:
        await tq.aclose()


async def test_idempotency_key_gives_one_task(client: httpx.AsyncClient,
                                              app_tq: TaskQueue) -> None:
    headers = {**ADMIN, "Idempotency-Key": "order-42"}
    first = await client.post("/enqueue/add", json={"a": 1, "b": 2}, headers=headers)
    second = await client.post("/enqueue/add", json={"a": 1, "b": 2}, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["idempotent_replay"] is False
    assert second.json()["idempotent_replay"] is True
    # concurrent requests with a new key: still one task
    headers = {**ADMIN, "Idempotency-Key": "order-43"}
    answers = await asyncio.gather(*(
        client.post("/enqueue/add", json={"a": 5, "b": 5}, headers=headers) for _ in range(8)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    assert await app_tq.redis.xlen(app_tq.keys("default").stream) == 2
    # a different key enqueues again; a malformed key is refused
    other = await client.post("/enqueue/add", json={"a": 1, "b": 2},
                              headers={**ADMIN, "Idempotency-Key": "order-44"})
    assert other.json()["id"] != first.json()["id"]
    bad = await client.post("/enqueue/add", json={"a": 1, "b": 2},
                            headers={**ADMIN, "Idempotency-Key": "x" * 300})
    assert bad.status_code == 422


async def test_one_idempotency_key_for_concurrent_bodies_makes_one_task(
    client: httpx.AsyncClient, app_tq: TaskQueue
) -> None:
    """The fingerprint is compared in the enqueue script, atomically: of concurrent requests
    with one key and two bodies, those with the winner's body replay its answer and the others
    are 422; one task. A Python enqueue of that key dedupes by the key alone (no 422 there),
    and a request with a key a Python enqueue took answers that task."""
    headers = {**ADMIN, "Idempotency-Key": "race"}
    bodies = [{"a": 1, "b": i % 2} for i in range(10)]
    answers = await asyncio.gather(*(
        client.post("/enqueue/add", json=body, headers=headers) for body in bodies))
    won = [(a, body) for a, body in zip(answers, bodies, strict=True) if a.status_code == 202]
    winner = [body for a, body in won if not a.json()["idempotent_replay"]]
    assert len(winner) == 1 and len({a.json()["id"] for a, _ in won}) == 1
    for a, body in zip(answers, bodies, strict=True):
        assert a.status_code == (202 if body == winner[0] else 422), (body, a.text)
    assert await app_tq.redis.xlen(app_tq.keys("default").stream) == 1
    add = app_tq.resolve_task("add")
    code = await add.with_options(key="race").enqueue(7, 7)
    assert (code.id, code.deduplicated) == (won[0][0].json()["id"], True)
    held = await add.with_options(key="py").enqueue(1, 1)
    r = await client.post("/enqueue/add", json={"a": 2, "b": 2},
                          headers={**ADMIN, "Idempotency-Key": "py"})
    assert r.status_code == 202 and r.json()["id"] == held.id and r.json()["idempotent_replay"]


async def test_cancel_queued_and_delayed(client: httpx.AsyncClient) -> None:
    queued = await enqueue(client, "add", a=1, b=1)
    r = await client.post(f"/tasks/{queued}/cancel", headers=ADMIN)
    assert r.json() == {"id": queued, "outcome": "queued"}
    seen = (await client.get(f"/tasks/{queued}", headers=READ)).json()
    assert seen["status"] == "cancelled"
    # the record keeps what the task was (it used to be erased: task null, no arguments)
    assert (seen["task"], seen["kwargs"]) == ("add", {"a": 1, "b": 1}), seen
    assert seen["enqueued_ms"] is not None and seen["finished_ms"] is not None, seen
    again = await client.post(f"/tasks/{queued}/cancel", headers=ADMIN)
    assert again.status_code == 409

    r = await client.post("/enqueue/add", json={"a": 1, "b": 1}, params={"delay_s": 60},
                          headers=ADMIN)
    delayed = r.json()["id"]
    assert r.json()["run_at_ms"] is not None
    r = await client.post(f"/tasks/{delayed}/cancel", headers=ADMIN)
    assert r.json()["outcome"] == "delayed"
    seen = (await client.get(f"/tasks/{delayed}", headers=READ)).json()
    assert seen["status"] == "cancelled"
    assert (seen["task"], seen["kwargs"], seen["attempts"]) == ("add", {"a": 1, "b": 1}, 0)
    assert seen["enqueued_ms"] is not None, seen


async def test_cancel_running_async_task(
    client: httpx.AsyncClient, app_tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    start_worker(app_tq)
    task_id = await enqueue(client, "sleepy", seconds=30)

    async def running() -> bool:
        r = await client.get(f"/tasks/{task_id}", headers=READ)
        return bool(r.json()["status"] == "running")

    await eventually(running, what="task running")
    r = await client.post(f"/tasks/{task_id}/cancel", headers=ADMIN)
    assert r.json()["outcome"] == "running"
    done = await client.get(f"/tasks/{task_id}/wait", params={"timeout_s": 10}, headers=READ)
    assert done.status_code == 200
    assert done.json()["status"] == "cancelled"
