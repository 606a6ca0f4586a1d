"""taskq.fastapi in a user's own app: lifespan, DurableTasks in async and sync routes, errors
mapped to HTTP answers, and the router mounted under the user's prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from taskq import RedisUnavailable, TaskQueue, TaskValidationError
from taskq.fastapi import (
    ApiConfig,
    ApiKeys,
    DurableTasks,
    add_exception_handlers,
    lifespan,
    taskq_router,
)
from tests.api_fixtures import ADMIN, ADMIN_KEY, serve
from tests.apps.api_tasks import build


class User(BaseModel):
    email: str


def sample_app(tq: TaskQueue, handlers: bool = True) -> FastAPI:
    note = tq.registry["note"]
    app = FastAPI(lifespan=lifespan(tq))
    if handlers:
        add_exception_handlers(app)
    app.include_router(taskq_router(tq, ApiConfig(keys=ApiKeys.from_keys(admin=[ADMIN_KEY]))),
                       prefix="/v1/taskq")

    @app.post("/async-users")
    async def register_async(user: User, tasks: DurableTasks) -> dict[str, object]:
        tasks.add_task(note, "emails", user.email)
        tasks.add_task(note, key="emails", value=user.email + "/2")
        assert len(tasks) == 2
        return {"ok": True}

    @app.post("/sync-users")
    def register_sync(user: User, tasks: DurableTasks) -> dict[str, object]:
        tasks.add_task(note, "emails", user.email)
        tasks.add_delayed(60, note, "later", user.email)
        return {"ok": True}

    @app.post("/failing")
    def failing(user: User, tasks: DurableTasks) -> None:
        tasks.add_task(note, "emails", user.email)
        raise HTTPException(400, "refused")

    @app.post("/bad-args")
    async def bad_args(tasks: DurableTasks) -> None:
        tasks.add_task(note, "emails", 123)  # type: ignore[arg-type]

    return app


@pytest.fixture
async def app_tq(redis_url: str, prefix: str) -> AsyncIterator[TaskQueue]:
    tq = build(prefix, redis_url)
    yield tq
    await tq.aclose()


async def notes(tq: TaskQueue) -> list[bytes]:
    return list(await tq.redis.xrange(tq.keys("notes").stream))


async def test_durable_tasks_are_in_redis_before_the_response(app_tq: TaskQueue) -> None:
    transport = httpx.ASGITransport(app=sample_app(app_tq))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.post("/async-users", json={"email": "a@example.com"})
        assert r.status_code == 200
        assert len(await notes(app_tq)) == 2  # already there when the response arrived
        r = await client.post("/sync-users", json={"email": "b@example.com"})
        assert r.status_code == 200
        assert len(await notes(app_tq)) == 3
        assert await app_tq.redis.zcard(app_tq.keys("notes").delayed) == 1


async def test_nothing_is_enqueued_when_the_route_fails(app_tq: TaskQueue) -> None:
    transport = httpx.ASGITransport(app=sample_app(app_tq))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.post("/failing", json={"email": "a@example.com"})
        assert r.status_code == 400
        r = await client.post("/bad-args")
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "value"]
    assert await notes(app_tq) == []


@pytest.mark.parametrize("handlers", [True, False])
async def test_backlog_full_in_a_user_route_is_429(redis_url: str, prefix: str,
                                                   handlers: bool) -> None:
    tq = build(prefix, redis_url, max_backlog=1)
    try:
        transport = httpx.ASGITransport(app=sample_app(tq, handlers))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.post("/async-users", json={"email": "a@example.com"})
            assert r.status_code == 429
            assert "retry-after" in r.headers
    finally:
        await tq.aclose()


async def test_durable_tasks_answer_422_without_add_exception_handlers(
        app_tq: TaskQueue) -> None:
    """The README's app (no add_exception_handlers): a bad add_task is a 422 with every
    error, not a 500; an app's own handler for the error still wins."""
    app = sample_app(app_tq, handlers=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.post("/bad-args")
        assert r.status_code == 422, r.text
        assert [e["loc"] for e in r.json()["detail"]] == [["body", "value"]]

    async def own(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"mine": str(exc)}, 418)

    app = sample_app(app_tq, handlers=False)
    app.add_exception_handler(TaskValidationError, own)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.post("/bad-args")
        assert r.status_code == 418 and "mine" in r.json()
    assert await notes(app_tq) == []


async def test_router_mounted_under_the_users_prefix(app_tq: TaskQueue) -> None:
    async with serve(sample_app(app_tq)) as client:
        base = f"http://127.0.0.1:{client.base_url.port}/v1/taskq"
        async with httpx.AsyncClient(base_url=base) as mounted:
            assert (await mounted.get("/health")).status_code == 200
            r = await mounted.post("/enqueue/note", json={"key": "k", "value": "v"},
                                   headers=ADMIN)
            assert r.status_code == 202
            assert r.headers["location"].startswith("/v1/taskq/tasks/")
            assert (await mounted.get("/registry")).status_code == 401


async def test_lifespan_refuses_to_start_without_redis() -> None:
    tq = build("unused", "redis://127.0.0.1:1/0")
    with pytest.raises(RedisUnavailable, match=r"cannot reach Redis at redis://127.0.0.1:1/0"):
        async with lifespan(tq)(None):
            pass
