"""The dead-letter and cancel routes over HTTP without Redis: ``taskq.admin`` and the
TaskQueue's ``cancel``/``status`` are stand-ins, so each test shows what a route passes on,
answers and refuses (the same routes against Redis: tests/test_api_queues.py, test_api.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from taskq import TaskQueue, admin
from taskq.errors import RedisUnavailable, TaskNotFound
from taskq.integrations.routes_queues import _DEAD_EXAMPLE
from taskq.records import TaskRecord, TaskStatus
from tests.api_fixtures import ADMIN, READ, make_app


@pytest.fixture
async def tq() -> AsyncIterator[TaskQueue]:
    """A TaskQueue that never connects: every route under test reaches only stand-ins."""
    app = TaskQueue("redis://127.0.0.1:1/0", prefix="routes")
    yield app
    await app.aclose()


@pytest.fixture
async def client(tq: TaskQueue) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(tq))
    async with httpx.AsyncClient(transport=transport, base_url="http://api/v1") as c:
        yield c


class Admin:
    """Stand-ins for taskq.admin's dead-letter functions: each call recorded (without the
    TaskQueue, checked once), each answer given, or raised when it is an exception."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tq: TaskQueue) -> None:
        self.tq = tq
        self.calls: list[tuple[Any, ...]] = []
        self.answer: Any = None
        for name in ("dead_letters", "dead_letter", "replay_dead_letters", "purge_dead"):
            monkeypatch.setattr(admin, name, self._stand_in(name))

    def _stand_in(self, name: str) -> Any:
        async def call(tq: TaskQueue, *args: Any) -> Any:
            assert tq is self.tq
            self.calls.append((name, *args))
            if isinstance(self.answer, Exception):
                raise self.answer
            if name == "replay_dead_letters" and isinstance(self.answer, int):
                return admin.Replay("?", self.answer)
            return self.answer
        return call


@pytest.fixture
def dead(monkeypatch: pytest.MonkeyPatch, tq: TaskQueue) -> Admin:
    return Admin(monkeypatch, tq)


def letter(**changes: Any) -> admin.DeadLetter:
    values: dict[str, Any] = {
        "id": "1732190000123-0", "queue": "default", "task_id": "default:1732190000000-0",
        "entry": "1732190000100-0", "task": "fail", "reason": "max_attempts",
        "error_type": "RuntimeError", "error": "boom", "traceback": "tb", "attempts": 3,
        "enqueued_ms": 1732190000000, "failed_ms": 1732190000123, "worker": "w1",
        "args": [1], "kwargs": {"k": "v"}, "payload_ok": True}
    return admin.DeadLetter(**(values | changes))


# -- dead letters: list and show ------------------------------------------------------------


async def test_dead_letters_are_listed_with_the_limit_and_task_asked(
        client: httpx.AsyncClient, dead: Admin) -> None:
    dead.answer = [letter(), letter(id="1732190000124-0", args=[b"\x00", float("nan")])]
    r = await client.get("/queues/default/dead", headers=READ)
    assert r.status_code == 200
    assert r.json() == [letter().to_dict(),
                        letter(id="1732190000124-0", args=[{"$bytes": "AA=="}, None]).to_dict()]
    r = await client.get("/queues/mail/dead", params={"limit": 1000, "task": "fail"},
                         headers=READ)
    assert r.status_code == 200
    await client.get("/queues/mail/dead", params={"limit": 1}, headers=READ)
    await client.get("/queues/mail/dead", params={"before": "1732190000123-0"}, headers=READ)
    assert dead.calls == [("dead_letters", "default", 50, None, None),
                          ("dead_letters", "mail", 1000, "fail", None),
                          ("dead_letters", "mail", 1, None, None),
                          ("dead_letters", "mail", 50, None, "1732190000123-0")]


async def test_a_page_starts_only_after_a_dead_letter_id(
        client: httpx.AsyncClient, dead: Admin) -> None:
    for before in ("-", "+", "1732190000123", "x", "0-0"):
        r = await client.get("/queues/default/dead", params={"before": before}, headers=READ)
        assert (r.status_code, r.json()) == (422, {"detail": [
            {"loc": ["query", "before"], "type": "value_error",
             "msg": "not a dead-letter id (<ms>-<seq>, above 0-0)"}]})
    assert dead.calls == []


async def test_a_dead_letter_limit_out_of_range_is_422(
        client: httpx.AsyncClient, dead: Admin) -> None:
    for limit in (0, 1001):
        r = await client.get("/queues/default/dead", params={"limit": limit}, headers=READ)
        assert r.status_code == 422
    assert dead.calls == []


async def test_one_dead_letter_is_shown_by_its_id(
        client: httpx.AsyncClient, dead: Admin) -> None:
    dead.answer = letter(kwargs={"b": b"\x01"})
    r = await client.get("/queues/default/dead/1732190000123-0", headers=READ)
    assert r.status_code == 200
    assert r.json() == letter(kwargs={"b": {"$bytes": "AQ=="}}).to_dict()
    dead.answer = None
    r = await client.get("/queues/mail/dead/1-1", headers=READ)
    assert (r.status_code, r.json()) == (404, {"detail": "no dead letter '1-1' in queue 'mail'"})
    assert dead.calls == [("dead_letter", "default", "1732190000123-0"),
                          ("dead_letter", "mail", "1-1")]


async def test_ids_redis_would_read_as_ranges_name_no_dead_letter(
        client: httpx.AsyncClient, dead: Admin) -> None:
    dead.answer = letter()
    for ident in ("-", "+", "1732190000123", "(1-0", "x"):
        r = await client.get(f"/queues/default/dead/{ident}", headers=READ)
        assert (r.status_code, r.json()) == (
            404, {"detail": f"no dead letter {ident!r} in queue 'default'"})
    assert dead.calls == []


async def test_reading_dead_letters_needs_a_key(client: httpx.AsyncClient, dead: Admin) -> None:
    assert (await client.get("/queues/default/dead")).status_code == 401
    assert (await client.get("/queues/default/dead/1-0")).status_code == 401
    assert dead.calls == []


# -- dead letters: replay and purge ---------------------------------------------------------


@pytest.mark.parametrize(("action", "counted"), [("replay", "replayed"), ("purge", "purged")])
async def test_replay_and_purge_take_ids_a_task_or_all_true(
        client: httpx.AsyncClient, dead: Admin, action: str, counted: str) -> None:
    dead.answer = admin.Replay("mail", 2, ["mail:1-d0"]) if action == "replay" else 2
    want = {"queue": "mail", counted: 2}
    if action == "replay":
        want.update(workflow_steps=["mail:1-d0"], kept=[])
    url = f"/queues/mail/dead/{action}"
    bodies: list[dict[str, Any]] = [
        {"json": {"all": True}}, {"json": {"ids": ["1-0", "-", "+", "5", "2-0"]}},
        {"json": {"task": "fail"}}, {"json": {"ids": [], "task": "fail"}},
        {"json": {"all": True, "task": "fail"}}]
    for body in bodies:
        r = await client.post(url, headers=ADMIN, **body)
        assert (r.status_code, r.json()) == (200, want)
    name = "replay_dead_letters" if action == "replay" else "purge_dead"
    assert dead.calls == [
        (name, "mail", None, None), (name, "mail", ["1-0", "2-0"], None),
        (name, "mail", None, "fail"), (name, "mail", [], "fail"), (name, "mail", None, "fail")]
    # every dead letter only when said: nothing else selects them all
    for body in ({"content": b""}, {"content": b"  "}, {"json": None}, {"json": {}},
                 {"json": {"ids": None}}, {"json": {"all": False}}):
        r = await client.post(url, headers=ADMIN, **body)
        assert r.status_code == 422, (body, r.text)
        if "content" in body:  # blank is no body (not invalid JSON): told what to send
            assert "say which dead letters" in r.json()["detail"][0]["msg"], r.text
    assert len(dead.calls) == 5


async def test_a_replay_lists_the_dead_letters_it_kept(
        client: httpx.AsyncClient, dead: Admin) -> None:
    kept = admin.KeptLetter("5-0", "mail:4-0", "send:k", "mail!high:6-0", False)
    dead.answer = admin.Replay("mail", 1, kept=(kept,))
    r = await client.post("/queues/mail/dead/replay", json={"all": True}, headers=ADMIN)
    assert (r.status_code, r.json()) == (200, {"queue": "mail", "replayed": 1,
                                               "workflow_steps": [], "kept": [{
        "id": "5-0", "task_id": "mail:4-0", "key": "send:k", "holder": "mail!high:6-0",
        "kept_after_success": False,
        "reason": "its unique key 'send:k' is held by task mail!high:6-0, which lives"}]})


@pytest.mark.parametrize("action", ["replay", "purge"])
async def test_replay_and_purge_refuse_other_bodies_with_422(
        client: httpx.AsyncClient, dead: Admin, action: str) -> None:
    url = f"/queues/default/dead/{action}"
    r = await client.post(url, json={"nope": 1}, headers=ADMIN)
    assert r.status_code == 422
    [problem] = r.json()["detail"]
    assert (problem["loc"], problem["type"]) == (["body", "nope"], "extra_forbidden")
    assert "url" not in problem  # pydantic's documentation links stay out of the answer
    r = await client.post(url, json={"ids": "1-0"}, headers=ADMIN)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "ids"]
    for bad in (b"{", b"[1, 2]", b"\xff"):
        assert (await client.post(url, content=bad, headers=ADMIN)).status_code == 422
    assert dead.calls == []


@pytest.mark.parametrize("action", ["replay", "purge"])
async def test_replay_and_purge_are_for_admin_keys(
        client: httpx.AsyncClient, dead: Admin, action: str) -> None:
    dead.answer = 1
    assert (await client.post(f"/queues/default/dead/{action}", headers=READ)).status_code == 403
    assert (await client.post(f"/queues/default/dead/{action}")).status_code == 401
    assert dead.calls == []


async def test_an_unknown_queue_or_letter_is_404_and_redis_down_503(
        client: httpx.AsyncClient, dead: Admin) -> None:
    requests = [("GET", "/queues/nope/dead", READ), ("GET", "/queues/nope/dead/1-0", READ),
                ("POST", "/queues/nope/dead/replay", ADMIN),
                ("POST", "/queues/nope/dead/purge", ADMIN)]
    for method, url, key in requests:
        dead.answer = admin.QueueNotFound("nope")
        body = {"all": True} if method == "POST" else None
        r = await client.request(method, url, headers=key, json=body)
        assert (r.status_code, r.json()) == (404, {"detail": "no queue named 'nope'"})
        dead.answer = admin.DeadLetterNotFound("nope", "1-0")
        r = await client.request(method, url, headers=key, json=body)
        assert (r.status_code, r.json()) == (
            404, {"detail": "no dead letter '1-0' in queue 'nope'"})
        dead.answer = RedisUnavailable("down")
        r = await client.request(method, url, headers=key, json=body)
        assert r.status_code == 503
    assert len(dead.calls) == 12


# -- cancel ----------------------------------------------------------------------------------


class Cancels:
    """Stand-ins for the TaskQueue's cancel and status."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tq: TaskQueue) -> None:
        self.calls: list[tuple[str, str]] = []
        self.outcome = "queued"
        self.record: TaskRecord | Exception = TaskRecord("default:1-0", "default",
                                                         TaskStatus.SUCCEEDED)

        async def cancel(task_id: str) -> str:
            self.calls.append(("cancel", task_id))
            return self.outcome

        async def status(task_id: str) -> TaskRecord:
            self.calls.append(("status", task_id))
            if isinstance(self.record, Exception):
                raise self.record
            return self.record

        monkeypatch.setattr(tq, "cancel", cancel)
        monkeypatch.setattr(tq, "status", status)


@pytest.fixture
def cancels(monkeypatch: pytest.MonkeyPatch, tq: TaskQueue) -> Cancels:
    return Cancels(monkeypatch, tq)


async def test_cancel_answers_where_the_task_was(
        client: httpx.AsyncClient, cancels: Cancels) -> None:
    for outcome in ("queued", "delayed", "running"):
        cancels.outcome = outcome
        r = await client.post("/tasks/default:1-0/cancel", headers=ADMIN)
        assert (r.status_code, r.json()) == (200, {"id": "default:1-0", "outcome": outcome})
    assert cancels.calls == [("cancel", "default:1-0")] * 3


async def test_cancel_of_an_ended_task_is_409_naming_its_status(
        client: httpx.AsyncClient, cancels: Cancels) -> None:
    cancels.outcome = "unknown"
    r = await client.post("/tasks/default:1-0/cancel", headers=ADMIN)
    assert (r.status_code, r.json()) == (
        409, {"detail": "task default:1-0 already ended succeeded"})
    assert cancels.calls == [("cancel", "default:1-0"), ("status", "default:1-0")]


async def test_cancel_of_no_task_is_404(client: httpx.AsyncClient, cancels: Cancels) -> None:
    cancels.outcome = "unknown"
    cancels.record = TaskNotFound("default:1-0")
    r = await client.post("/tasks/default:1-0/cancel", headers=ADMIN)
    assert r.status_code == 404
    assert cancels.calls == [("cancel", "default:1-0"), ("status", "default:1-0")]
    r = await client.post("/tasks/no-id/cancel", headers=ADMIN)
    assert (r.status_code, r.json()) == (404, {"detail": "no task with id 'no-id'"})
    assert len(cancels.calls) == 2


async def test_cancel_is_for_admin_keys(client: httpx.AsyncClient, cancels: Cancels) -> None:
    assert (await client.post("/tasks/default:1-0/cancel", headers=READ)).status_code == 403
    assert (await client.post("/tasks/default:1-0/cancel")).status_code == 401
    assert cancels.calls == []


async def test_reading_a_task_needs_a_key(client: httpx.AsyncClient, cancels: Cancels) -> None:
    assert (await client.get("/tasks/default:1-0")).status_code == 401
    r = await client.get("/tasks/default:1-0", headers=READ)
    assert (r.status_code, r.json()["status"]) == (200, "succeeded")


# -- the schema clients are generated from ---------------------------------------------------


def test_the_schema_documents_the_dead_letter_and_cancel_routes(tq: TaskQueue) -> None:
    paths = make_app(tq).openapi()["paths"]
    problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    operations = [(paths["/v1/queues/{name}/dead"]["get"], "queues"),
                  (paths["/v1/queues/{name}/dead/{dead_id}"]["get"], "queues"),
                  (paths["/v1/queues/{name}/dead/replay"]["post"], "queues"),
                  (paths["/v1/queues/{name}/dead/purge"]["post"], "queues"),
                  (paths["/v1/tasks/{task_id}/cancel"]["post"], "tasks")]
    for operation, tag in operations:
        assert operation["tags"] == [tag]
        for status in ("401", "404"):
            assert operation["responses"][status]["content"] == problem, (operation, status)
    listed = paths["/v1/queues/{name}/dead"]["get"]["responses"]["200"]["content"]
    assert listed["application/json"]["example"] == [_DEAD_EXAMPLE]
    shown = paths["/v1/queues/{name}/dead/{dead_id}"]["get"]["responses"]["200"]["content"]
    assert shown["application/json"]["example"] == _DEAD_EXAMPLE
