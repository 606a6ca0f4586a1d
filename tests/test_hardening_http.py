"""Issue 12, HTTP API: a client's bad input gets a 4xx with a message (never a 500 that closes
the connection), poison data in Redis never hides the rest, and the security rules hold."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgpack
import pytest

from taskq import TaskQueue, TaskStatus, codec, ids
from taskq.errors import DecodeError, TaskValidationError
from taskq.integrations.access_log import RedactCredentials, redact_query
from taskq.records import bucket_key, encode_record
from tests.api_fixtures import ADMIN, ADMIN_KEY, READ, READ_KEY, make_app, serve

DEEP = 100_000


def nested_dict(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN and Infinity (which are not JSON)."""
    def refuse(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


async def raw_exchange(port: int, requests: list[bytes]) -> list[tuple[int, bytes]]:
    """Send each request on ONE connection, in turn; (status, body) of each answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    try:
        for request in requests:
            writer.write(request)
            await writer.drain()
            status = int((await asyncio.wait_for(reader.readline(), 10)).split()[1])
            length = 0
            while (line := await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            answers.append((status, await reader.readexactly(length)))
    finally:
        writer.close()
    return answers


def post(path: str, body: bytes, key: str = ADMIN_KEY,
         content_type: str = "application/json") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: t\r\nX-API-Key: {key}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


# -- never a 500 for bad input -------------------------------------------------------------

async def test_deeply_nested_json_is_422_and_keeps_the_connection(
    client: httpx.AsyncClient, app_tq: TaskQueue
) -> None:
    deep = b"[" * DEEP + b"]" * DEEP
    health = b"GET /v1/health HTTP/1.1\r\nHost: t\r\n\r\n"
    answers = await raw_exchange(client.base_url.port or 0, [
        post("/v1/enqueue/add", deep), post("/v1/enqueue/add", b'{"a": ' + deep + b', "b": 1}'),
        health])
    assert [status for status, _ in answers] == [422, 422, 200]
    assert json.loads(answers[0][1])["detail"][0]["type"] == "json_invalid"
    assert await app_tq.redis.xlen(app_tq.keys("default").stream) == 0


@pytest.mark.parametrize("depth", [600, 5_000])
async def test_deep_object_in_a_dict_argument_is_422(
    redis_url: str, prefix: str, depth: int
) -> None:
    tq = TaskQueue(redis_url, prefix=prefix)

    @tq.task(name="store")
    async def store(doc: dict[str, Any]) -> None: ...

    try:
        async with serve(make_app(tq)) as client:
            body = '{"doc": ' + '{"a": ' * depth + "{}" + "}" * depth + "}"
            r = await client.post("/enqueue/store", content=body,
                                  headers={**ADMIN, "Content-Type": "application/json"})
            assert r.status_code == 422, r.text
            # too deep for the JSON parser (the body) or for the argument's serialization
            assert r.json()["detail"][0]["loc"] in (["body"], ["body", "doc"])
            ok = await client.post("/enqueue/store", json={"doc": nested_dict(3)}, headers=ADMIN)
            assert ok.status_code == 202
    finally:
        await tq.aclose()


@pytest.mark.parametrize(("body", "loc", "words"), [
    (b'{"key": "\\ud800", "value": "v"}', ["body", "key"], "surrogate"),
    (b'{"key": "k", "value": "\\udfff tail"}', ["body", "value"], "surrogate"),
])
async def test_lone_surrogate_is_422_naming_the_argument(
    client: httpx.AsyncClient, body: bytes, loc: list[str], words: str
) -> None:
    r = await client.post("/enqueue/note", content=body,
                          headers={**ADMIN, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == loc and words in error["msg"]


async def test_ints_beyond_64_bits_are_422_naming_the_argument(redis_url: str,
                                                              prefix: str) -> None:
    tq = TaskQueue(redis_url, prefix=prefix)

    @tq.task(name="numbers")
    async def numbers(n: int, many: list[int], doc: dict[str, Any]) -> None: ...

    try:
        async with serve(make_app(tq)) as client:
            cases = [({"n": 2**70, "many": [], "doc": {}}, "n"),
                     ({"n": -(2**63) - 1, "many": [], "doc": {}}, "n"),
                     ({"n": 1, "many": [1, 2**70], "doc": {}}, "many"),
                     ({"n": 1, "many": [], "doc": {"x": [{"y": -(2**63) - 1}]}}, "doc")]
            for args, name in cases:
                r = await client.post("/enqueue/numbers", json=args, headers=ADMIN)
                assert r.status_code == 422, (args, r.text)
                (error,) = r.json()["detail"]
                assert error["loc"] == ["body", name] and "64-bit" in error["msg"]
            edge = {"n": 2**64 - 1, "many": [-(2**63)], "doc": {}}
            assert (await client.post("/enqueue/numbers", json=edge, headers=ADMIN)
                    ).status_code == 202
    finally:
        await tq.aclose()


async def test_the_library_raises_task_validation_error_too(tq: TaskQueue) -> None:
    @tq.task(name="t")
    async def t(text: str, n: int = 0, doc: dict[str, Any] | None = None) -> None: ...

    for args, kwargs, name in [(("\ud800",), {}, "text"), (("x",), {"n": 2**70}, "n"),
                               (("x",), {"n": -(2**63) - 1}, "n"),
                               (("x",), {"doc": nested_dict(600)}, "doc"),
                               (("x",), {"doc": nested_dict(5_000)}, "doc")]:
        with pytest.raises(TaskValidationError) as info:
            await t.enqueue(*args, **kwargs)
        assert info.value.errors[0]["loc"] == (name,), info.value.errors
    assert await tq.redis.exists(tq.keys("default").stream) == 0
    # codec.encode itself still raises DecodeError (its contract); argument_errors names why
    with pytest.raises(DecodeError):
        codec.encode(codec.Message("t", (), {"n": 2**64}))
    assert codec.argument_errors(codec.Message("t", ("ok", [1, "\ud800"]), {"n": 2**64})) == [
        {"loc": (1,), "msg": "string that is not valid Unicode (a lone surrogate)",
         "type": "unencodable"},
        {"loc": ("n",), "msg": "integer outside the 64-bit range (-2**63 to 2**64-1)",
         "type": "unencodable"}]


@pytest.mark.parametrize("path", [
    "/tasks/default:1-99999999999999999999/cancel",
    "/tasks/default:99999999999999999999-0/cancel",
])
async def test_ids_beyond_redis_stream_ids_are_404(client: httpx.AsyncClient, path: str) -> None:
    task_id = path.split("/")[2]
    assert (await client.post(path, headers=ADMIN)).status_code == 404
    for get in (f"/tasks/{task_id}", f"/tasks/{task_id}/wait?timeout_s=0",
                f"/tasks/{task_id}/events", "/queues/default/dead/1-99999999999999999999"):
        r = await client.get(get, headers=READ)
        assert r.status_code == 404, (get, r.text)
    r = await client.post("/queues/default/dead/replay", headers=ADMIN,
                          json={"ids": ["1-99999999999999999999"]})
    assert r.status_code == 200 and r.json()["replayed"] == 0
    assert not ids.is_task_id("default:1-18446744073709551616")
    assert ids.is_task_id("default:18446744073709551615-18446744073709551615")


async def test_wrong_typed_and_out_of_range_inputs_are_4xx(client: httpx.AsyncClient) -> None:
    checks = [
        ("POST", "/enqueue/add", {"json": [1, 2]}, 422),
        ("POST", "/enqueue/add", {"content": b'{"a": 1, "b": "\xff"}',
                                  "headers": {"Content-Type": "application/json"}}, 422),
        ("POST", "/enqueue/add?delay_s=nan", {"json": {"a": 1, "b": 2}}, 422),
        ("POST", "/enqueue/add?delay_s=1e400", {"json": {"a": 1, "b": 2}}, 422),
        ("POST", "/enqueue/add?delay_s=-1", {"json": {"a": 1, "b": 2}}, 422),
        ("GET", "/tasks/default:1-0/wait?timeout_s=-1", {}, 422),
        ("GET", "/tasks/default:1-0/wait?timeout_s=1e400", {}, 422),
        ("GET", "/queues/default/dead?limit=-1", {}, 422),
        ("GET", "/queues/default/dead?limit=99999999999999999999999", {}, 422),
        ("POST", "/queues/default/dead/purge", {"json": [1, 2]}, 422),
        ("POST", "/queues/default/dead/purge", {"content": b"[" * DEEP + b"]" * DEEP,
                                                  "headers": {"Content-Type": "application/json"}},
         422),
        ("POST", "/queues/default/dead/replay", {"content": b"{\"ids\": [\"\xff\"]}",
                                                   "headers": {"Content-Type": "application/json"}},
         422),
        ("POST", "/queues/default/dead/replay", {"json": {"ids": "x"}}, 422),
        ("GET", "/queues/%ED%A0%80", {}, 404),
        ("POST", "/enqueue/%ED%A0%80", {"json": {}}, 404),
    ]
    for method, path, kwargs, status in checks:
        headers = {**ADMIN, **kwargs.pop("headers", {})}
        r = await client.request(method, path, headers=headers, **kwargs)
        assert r.status_code == status, (method, path, r.status_code, r.text)


# -- poison data in Redis ------------------------------------------------------------------

async def test_a_dead_letter_with_bin_values_never_hides_the_others(
    client: httpx.AsyncClient, app_tq: TaskQueue
) -> None:
    keys = app_tq.keys("default")
    good = {"v": 1, "t": "add", "a": [], "k": {"a": 1, "b": 2}, "n": 0, "e": 0}
    poison = {"v": 1, "t": "add", "a": [b"\xff\x00"], "k": {"b": b"\x80"}, "n": 0, "e": 0}
    good_id = (await app_tq.redis.xadd(keys.dead, {
        "id": "default:1-0", "entry": "1-0", "task": "add", "reason": "max_attempts",
        "payload": msgpack.packb(good)})).decode()
    poison_id = (await app_tq.redis.xadd(keys.dead, {
        "id": "default:2-0", "entry": "2-0", "task": "add", "reason": "invalid_args",
        "payload": msgpack.packb(poison, use_bin_type=True), "error": b"\xff\xfe"})).decode()
    # the record a worker writes for such a task holds the same bytes
    record = encode_record(TaskStatus.DEAD, task="add", args=[b"\xff\x00"],
                           kwargs={"b": b"\x80"}, finished_ms=1, error="invalid_args")
    await app_tq.redis.hset(bucket_key(keys, "default:2-0"), "default:2-0", record)

    listed = await client.get("/queues/default/dead", headers=READ)
    assert listed.status_code == 200, listed.text
    by_id = {d["id"]: d for d in listed.json()}
    assert set(by_id) == {good_id, poison_id}
    assert by_id[good_id]["kwargs"] == {"a": 1, "b": 2}
    shown = by_id[poison_id]
    assert shown["args"] == [{"$bytes": "/wA="}] and shown["kwargs"] == {"b": {"$bytes": "gA=="}}
    one = await client.get(f"/queues/default/dead/{poison_id}", headers=READ)
    assert one.status_code == 200 and one.json()["args"] == [{"$bytes": "/wA="}]
    task = await client.get("/tasks/default:2-0", headers=READ)
    assert task.status_code == 200, task.text
    assert task.json()["args"] == [{"$bytes": "/wA="}]
    waited = await client.get("/tasks/default:2-0/wait", headers=READ)
    assert waited.status_code == 200 and waited.json()["kwargs"] == {"b": {"$bytes": "gA=="}}


async def test_nan_and_infinity_results_are_valid_json_everywhere(
    client: httpx.AsyncClient, app_tq: TaskQueue
) -> None:
    keys = app_tq.keys("default")
    task_id = "default:1732190000000-0"
    record = encode_record(TaskStatus.SUCCEEDED, task="add", finished_ms=1,
                           result={"mean": math.nan, "max": math.inf, "min": -math.inf,
                                   "ok": 1.5})
    await app_tq.redis.hset(bucket_key(keys, task_id), task_id, record)
    want = {"mean": None, "max": None, "min": None, "ok": 1.5}
    status = await client.get(f"/tasks/{task_id}", headers=READ)
    assert strict_json(status.text)["result"] == want
    waited = await client.get(f"/tasks/{task_id}/wait", headers=READ)
    assert strict_json(waited.text)["result"] == want
    async with client.stream("GET", f"/tasks/{task_id}/events", headers=READ) as r:
        data = [line[len("data: "):] async for line in r.aiter_lines()
                if line.startswith("data: ")]
    assert len(data) == 1
    assert strict_json(data[0])["result"] == want


# -- security ------------------------------------------------------------------------------

async def test_keys_in_the_query_string_are_refused_and_never_logged(app_tq: TaskQueue) -> None:
    app = make_app(app_tq)
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep()
    access = logging.getLogger("uvicorn.access")
    async with serve(app) as client:
        access.addHandler(handler)
        old_level = access.level
        access.setLevel(logging.INFO)
        try:
            r = await client.get(f"/registry?api_key={ADMIN_KEY}&x_api_key={READ_KEY}&n=1")
            assert r.status_code == 401
            r = await client.get(f"/registry?token={ADMIN_KEY}", headers=READ)
            assert r.status_code == 200
        finally:
            access.removeHandler(handler)
            access.setLevel(old_level)
    assert len(seen) == 2, seen
    assert not any(ADMIN_KEY in line or READ_KEY in line for line in seen), seen
    assert "api_key=[redacted]" in seen[0] and "n=1" in seen[0]
    assert redact_query("/v1/x?a=1&API-KEY=s3cret&b") == "/v1/x?a=1&API-KEY=[redacted]&b"
    assert redact_query("/v1/x?password=p&sig=s") == "/v1/x?password=[redacted]&sig=[redacted]"
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                               ("1.2.3.4", "GET", "/?apikey=s3cret", "1.1", 200), None)
    assert RedactCredentials().filter(record)
    assert "s3cret" not in record.getMessage()


async def test_only_json_bodies_are_read(client: httpx.AsyncClient, app_tq: TaskQueue) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x"):
        r = await client.post("/enqueue/add", content=b'{"a": 1, "b": 2}',
                              headers={**ADMIN, "Content-Type": content_type})
        assert r.status_code == 415, (content_type, r.text)
        r = await client.post("/queues/default/dead/purge", content=b"{}",
                              headers={**ADMIN, "Content-Type": content_type})
        assert r.status_code == 415, (content_type, r.text)
    assert await app_tq.redis.xlen(app_tq.keys("default").stream) == 0
    for content_type in ("application/json", "application/json; charset=utf-8",
                         "application/merge-patch+json"):
        r = await client.post("/enqueue/add", content=b'{"a": 1, "b": 2}',
                              headers={**ADMIN, "Content-Type": content_type})
        assert r.status_code == 202, (content_type, r.text)


async def test_no_cross_site_requests_while_authentication_is_off(app_tq: TaskQueue) -> None:
    async with serve(make_app(app_tq, auth_disabled=True)) as client:
        host = f"127.0.0.1:{client.base_url.port}"
        r = await client.post("/enqueue/add", content=b'{"a": 1, "b": 2}',
                              headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                        {"Sec-Fetch-Site": "cross-site"}):
            r = await client.post("/queues/default/dead/purge", headers=headers)
            assert r.status_code == 403, (headers, r.text)
        assert await app_tq.redis.xlen(app_tq.keys("default").stream) == 0
        same = await client.post("/enqueue/add", json={"a": 1, "b": 2},
                                 headers={"Origin": f"http://{host}"})
        assert same.status_code == 202
        assert (await client.post("/enqueue/add", json={"a": 1, "b": 2})).status_code == 202


async def test_idempotency_key_with_another_body_is_422(
    client: httpx.AsyncClient, app_tq: TaskQueue
) -> None:
    headers = {**ADMIN, "Idempotency-Key": "order-7"}
    first = await client.post("/enqueue/add", json={"a": 1, "b": 2}, headers=headers)
    same = await client.post("/enqueue/add", json={"b": 2, "a": 1}, headers=headers)
    assert first.status_code == same.status_code == 202
    assert same.json()["id"] == first.json()["id"] and same.json()["idempotent_replay"]
    for params, body in (({}, {"a": 1, "b": 3}), ({"delay_s": 5}, {"a": 1, "b": 2})):
        other = await client.post("/enqueue/add", json=body, params=params, headers=headers)
        assert other.status_code == 422, other.text
        assert other.json()["detail"][0]["type"] == "idempotency_key_reused"
    assert await app_tq.redis.xlen(app_tq.keys("default").stream) == 1


async def test_schema_and_docs_need_a_read_key_unless_public(app_tq: TaskQueue) -> None:
    async with serve(make_app(app_tq)) as client:
        root = f"http://127.0.0.1:{client.base_url.port}"
        for path in ("/openapi.json", "/docs", "/redoc"):
            r = await client.get(root + path)
            assert r.status_code == 401, (path, r.text)
            assert (await client.get(root + path, headers={"X-API-Key": "x" * 20})
                    ).status_code == 401
            assert (await client.get(root + path, headers=READ)).status_code == 200
        assert "add" in (await client.get(root + "/openapi.json", headers=READ)).text
    async with serve(make_app(app_tq, docs_public=True)) as client:
        root = f"http://127.0.0.1:{client.base_url.port}"
        assert (await client.get(root + "/openapi.json")).status_code == 200
        assert (await client.get(root + "/docs")).status_code == 200


async def test_event_streams_are_capped_per_key(app_tq: TaskQueue) -> None:
    async with serve(make_app(app_tq, sse_max_per_key=2)) as client:
        r = await client.post("/enqueue/add", json={"a": 1, "b": 2}, headers=ADMIN)
        task_id = r.json()["id"]  # no worker: it stays queued and its streams stay open

        async def first_frame(lines: AsyncIterator[str]) -> None:
            # the iterator is kept by the caller: one dropped early would close its connection
            while not (await anext(lines)).startswith("data: "):
                pass

        url = f"/tasks/{task_id}/events"
        async with client.stream("GET", url, headers=READ) as one, \
                client.stream("GET", url, headers=READ) as two:
            assert one.status_code == two.status_code == 200
            lines_one, lines_two = one.aiter_lines(), two.aiter_lines()
            await first_frame(lines_one)
            await first_frame(lines_two)
            async with client.stream("GET", url, headers=READ) as third:
                assert third.status_code == 429
                await third.aread()
            assert third.status_code == 429
            assert int(third.headers["retry-after"]) > 0
            async with client.stream("GET", url, headers=ADMIN) as other_key:
                assert other_key.status_code == 200
        # closed streams give their slots back (once the server sees the disconnect)
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            async with client.stream("GET", url, headers=READ) as again:
                if again.status_code == 200:
                    break
            assert asyncio.get_running_loop().time() < deadline, "slots never given back"
            await asyncio.sleep(0.05)


def test_json_safe() -> None:
    value = {"b": b"\x00\xff", "n": [math.nan, math.inf, 1.0], "s": "\ud800x",
             b"k": 1, "o": object.__name__, "t": (1, 2)}
    out = codec.json_safe(value)
    assert json.dumps(out, allow_nan=False)
    assert out["b"] == {"$bytes": "AP8="} and out["n"] == [None, None, 1.0]
    assert out["s"] == "?x" and out["t"] == [1, 2]
    deep: list[Any] = []
    for _ in range(50_000):
        deep = [deep]
    assert codec.nesting(codec.json_safe(deep)) == 50_001


async def test_dead_letter_ids_that_redis_reads_as_ranges_name_none(
    client: httpx.AsyncClient, app_tq: TaskQueue
) -> None:
    dead = app_tq.keys("default").dead
    for entry in ("5-0", "5-1"):
        await app_tq.redis.xadd(dead, {"id": f"default:{entry}", "entry": entry, "task": "add",
                                       "reason": "max_attempts"}, id=entry)
    for dead_id in ("5", "-", "+"):
        r = await client.get(f"/queues/default/dead/{dead_id}", headers=READ)
        assert r.status_code == 404, (dead_id, r.text)
    for action in ("purge", "replay"):
        r = await client.post(f"/queues/default/dead/{action}", headers=ADMIN,
                              json={"ids": ["5", "-", "+", "(5-0", "5-99999999999999999999"]})
        assert r.status_code == 200 and list(r.json().values())[1] == 0, r.text
    assert await app_tq.redis.xlen(dead) == 2
    assert (await client.get("/queues/default/dead/5-1", headers=READ)).json()["entry"] == "5-1"
    r = await client.post("/queues/default/dead/purge", headers=ADMIN, json={"ids": ["5-1"]})
    assert r.json()["purged"] == 1
