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
from fastapi import FastAPI
from redis.exceptions import ResponseError

from taskq import TaskQueue, TaskStatus, admin, codec, ids
from taskq.dashboard.routes import ASSETS
from taskq.errors import DecodeError, RedisCommandError, TaskValidationError
from taskq.fastapi import ApiConfig, ApiKeys, lifespan, taskq_router
from taskq.integrations.access_log import RedactCredentials, redact_query
from taskq.integrations.errors import to_http
from taskq.integrations.hosts import host_allowed, host_name, normalized
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


# -- security review, finding 3: DNS rebinding while authentication is off ----------------

async def test_dns_rebinding_hosts_are_refused_while_authentication_is_off(
    app_tq: TaskQueue
) -> None:
    async with serve(make_app(app_tq, auth_disabled=True, api_keys="", api_read_keys="",
                              allowed_hosts="devbox, .corp.internal")) as client:
        port = client.base_url.port
        root = f"http://127.0.0.1:{port}"
        evil = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
        r = await client.post("/queues/default/pause", headers=evil)
        assert r.status_code == 421, r.text
        assert "TASKQ_ALLOWED_HOSTS" in r.json()["detail"]
        assert (await client.post("/enqueue/add", json={"a": 1, "b": 2}, headers=evil)
                ).status_code == 421
        for path in ("/v1/queues", "/v1/registry", "/v1/queues/default/dead", "/metrics",
                     "/ui/", "/openapi.json", "/docs"):
            r = await client.get(root + path, headers={"Host": f"evil.example:{port}"})
            assert r.status_code == 421, (path, r.status_code, r.text[:200])
        for host in ("devbox.evil.example", "notcorp.internal", "localhost.evil.example",
                     "127.0.0.1.evil.example", "evil.example:127.0.0.1"):
            r = await client.get("/queues", headers={"Host": host})
            assert r.status_code == 421, host
        assert await app_tq.redis.xlen(app_tq.keys("default").stream) == 0
        info = await client.get("/queues/default")
        assert info.status_code == 200 and info.json()["paused"] is False
        for host in (f"localhost:{port}", "LOCALHOST", f"127.0.0.1:{port}", f"[::1]:{port}",
                     "10.1.2.3", "[fe80::1]", f"app.localhost:{port}", f"devbox:{port}",
                     "corp.internal", f"api.corp.internal:{port}", "localhost."):
            r = await client.get("/queues", headers={"Host": host})
            assert r.status_code == 200, (host, r.text)
        assert (await client.get(root + "/ui/", headers={"Host": f"localhost:{port}"})
                ).status_code == 200
        ok = await client.post("/queues/default/pause",
                               headers={"Host": f"localhost:{port}",
                                        "Origin": f"http://localhost:{port}"})
        assert ok.status_code == 200
    # with API keys the Host is not checked: a rebinding page has no key
    async with serve(make_app(app_tq)) as client:
        r = await client.get("/queues", headers={**READ, "Host": "evil.example"})
        assert r.status_code == 200


async def test_taskq_router_checks_hosts_while_authentication_is_off(app_tq: TaskQueue) -> None:
    app = FastAPI(lifespan=lifespan(app_tq))
    app.include_router(taskq_router(app_tq, ApiConfig(keys=ApiKeys.off(),
                                                      allowed_hosts=("ops.example",))),
                       prefix="/taskq")
    async with serve(app) as client:
        root = f"http://127.0.0.1:{client.base_url.port}/taskq"
        assert (await client.get(root + "/queues", headers={"Host": "evil.example"})
                ).status_code == 421
        assert (await client.get(root + "/ui/", headers={"Host": "evil.example"})
                ).status_code == 421
        assert (await client.get(root + "/queues", headers={"Host": "ops.example"})
                ).status_code == 200
        assert (await client.get(root + "/queues")).status_code == 200


def test_host_names() -> None:
    assert host_name("[::1]:8000") == "::1" and host_name("Example.COM.:80") == "example.com"
    assert host_name("::1") == "::1"
    assert host_allowed(None)  # no Host: HTTP/1.0, not a browser
    assert not host_allowed("")
    assert not host_allowed("evil.example", normalized(["", " "]))
    assert host_allowed("anything.example", normalized(["*"]))
    assert host_allowed("Api.Example:1", normalized([" API.example:8000 "]))
    assert host_allowed("a.b.example", normalized(["*.b.example"]))
    assert not host_allowed("ab.example", normalized(["*.b.example", ".b.example"]))


# -- finding 6: a cursor Redis cannot use, a Redis error reply ----------------------------

async def test_dead_letter_cursor_0_0_is_422_and_keeps_the_connection(
    client: httpx.AsyncClient, app_tq: TaskQueue
) -> None:
    dead = app_tq.keys("default").dead
    await app_tq.redis.xadd(dead, {"id": "default:5-0", "entry": "5-0", "task": "add",
                                   "reason": "max_attempts"}, id="5-0")
    health = b"GET /v1/health HTTP/1.1\r\nHost: t\r\n\r\n"
    page = (f"GET /v1/queues/default/dead?before=0-0 HTTP/1.1\r\nHost: t\r\n"
            f"X-API-Key: {READ_KEY}\r\n\r\n").encode()
    answers = await raw_exchange(client.base_url.port or 0, [page, health])
    assert [status for status, _ in answers] == [422, 200], answers
    assert json.loads(answers[0][1])["detail"][0]["loc"] == ["query", "before"]
    for bad in ("garbage", "0", "-", "(5-0"):
        r = await client.get("/queues/default/dead", params={"before": bad}, headers=READ)
        assert r.status_code == 422, (bad, r.text)
    r = await client.get("/queues/default/dead", params={"before": "5-0"}, headers=READ)
    assert r.status_code == 200 and r.json() == []
    # the library: nothing is older than 0-0 (Redis refuses "(0-0" as a range's end)
    assert await admin.dead_letters(app_tq, "default", before="0-0") == []
    assert len(await admin.dead_letters(app_tq, "default", before="6-0")) == 1


async def test_a_redis_error_reply_is_a_clean_answer_and_keeps_the_connection(
    client: httpx.AsyncClient, app_tq: TaskQueue
) -> None:
    keys = app_tq.keys("default")
    await app_tq.redis.set(keys.dead, "not a stream")  # WRONGTYPE for every dead-letter read
    health = b"GET /v1/health HTTP/1.1\r\nHost: t\r\n\r\n"
    dead = (f"GET /v1/queues/default/dead HTTP/1.1\r\nHost: t\r\n"
            f"X-API-Key: {READ_KEY}\r\n\r\n").encode()
    answers = await raw_exchange(client.base_url.port or 0, [dead, health, dead])
    assert [status for status, _ in answers] == [503, 200, 503], answers
    detail = json.loads(answers[0][1])["detail"]
    assert "WRONGTYPE" in detail and "127.0.0.1" not in detail


def test_redis_error_replies_map_to_4xx_or_503() -> None:
    bad = to_http(RedisCommandError("ERR Invalid stream ID specified as stream command "
                                    "argument"))
    assert bad is not None and bad.status_code == 400
    other = to_http(RedisCommandError("WRONGTYPE Operation against a key holding the wrong "
                                      "kind of value"))
    assert other is not None and other.status_code == 503 and other.headers
    assert to_http(ResponseError("ERR x")) is None  # raw ones: translated by the app's handler


# -- finding 7: purging or replaying every dead letter must be said -----------------------

async def test_every_dead_letter_needs_all_true(
    client: httpx.AsyncClient, app_tq: TaskQueue
) -> None:
    dead = app_tq.keys("default").dead
    for entry in ("5-0", "6-0", "7-0"):
        await app_tq.redis.xadd(dead, {"id": f"default:{entry}", "entry": entry, "task": "add",
                                       "reason": "max_attempts"}, id=entry)
    for action in ("purge", "replay"):
        url = f"/queues/default/dead/{action}"
        for body in ({"ids": None}, {}, {"task": None}, {"ids": None, "task": None},
                     {"all": False}, {"all": None}, {"all": True, "ids": ["5-0"]}, None):
            r = await client.post(url, json=body, headers=ADMIN)
            assert r.status_code == 422, (action, body, r.text)
        for raw in (b"", b"null", b"  "):
            r = await client.post(url, content=raw,
                                  headers={**ADMIN, "Content-Type": "application/json"})
            assert r.status_code == 422, (action, raw, r.text)
        assert await app_tq.redis.xlen(dead) == 3
    r = await client.post("/queues/default/dead/purge", json={"ids": None}, headers=ADMIN)
    message = r.json()["detail"][0]["msg"]
    assert "may not be null" in message and '"all": true' in message
    r = await client.post("/queues/default/dead/purge", json={"ids": []}, headers=ADMIN)
    assert r.json()["purged"] == 0
    r = await client.post("/queues/default/dead/purge", json={"task": "other"}, headers=ADMIN)
    assert r.json()["purged"] == 0
    r = await client.post("/queues/default/dead/purge", json={"all": True, "task": "other"},
                          headers=ADMIN)
    assert r.json()["purged"] == 0 and await app_tq.redis.xlen(dead) == 3
    r = await client.post("/queues/default/dead/purge", json={"all": True}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["purged"] == 3


async def test_the_schema_shows_that_all_must_be_said(client: httpx.AsyncClient) -> None:
    root = f"http://127.0.0.1:{client.base_url.port}"
    schema = (await client.get(root + "/openapi.json", headers=READ)).json()
    body = schema["paths"]["/v1/queues/{name}/dead/purge"]["post"]["requestBody"]
    assert body["required"] is True
    selection = body["content"]["application/json"]["schema"]
    assert selection["properties"]["all"]["type"] == "boolean"
    assert selection["properties"]["ids"]["type"] == "array"  # not nullable
    assert {"all": True} in selection["examples"] and {} not in selection["examples"]


def test_the_dashboard_says_all_to_purge_or_replay_everything() -> None:
    script = (ASSETS / "js" / "pages" / "dead_list.js").read_text()
    assert "{ all: true }" in script and ": {}))" not in script


# -- finding 8: more credential names in the access log -----------------------------------

@pytest.mark.parametrize("name", [
    "jwt", "JWT", "bearer", "code", "Code", "access_token", "id_token", "refresh_token",
    "signature", "X-Amz-Signature", "sig", "auth", "apikey", "API_KEY", "password", "secret",
    "token", "key", "auth_code", "hmac-sig", "otp", "api%5Fkey", "%4Awt"])
def test_credential_query_parameters_are_redacted(name: str) -> None:
    assert redact_query(f"/v1/x?n=1&{name}=s3cret&b=2") == f"/v1/x?n=1&{name}=[redacted]&b=2"


def test_path_parameters_and_harmless_names() -> None:
    assert redact_query("/v1/x;token=s3cret/y") == "/v1/x;token=[redacted]/y"
    assert redact_query("/v1/x;JWT=s3cret;v=1?code=c") == "/v1/x;JWT=[redacted];v=1?code=[redacted]"
    assert redact_query("/v1/x%3Bapikey%3Ds3cret") == "/v1/x%3Bapikey%3D[redacted]"
    for harmless in ("/v1/x?postcode=1&encode=2&n=3", "/v1/x;v=1/y", "/v1/tasks/q:1-0",
                     "/v1/x?zipcode=9&design=a"):
        assert redact_query(harmless) == harmless
