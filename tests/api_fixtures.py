"""Fixtures of the HTTP API tests: the service in the test's event loop, over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from taskq import TaskQueue
from taskq.service.app import create_app
from taskq.service.settings import ApiSettings
from tests.apps.api_tasks import build

ADMIN_KEY = "admin-key-0123456789abcdef"
READ_KEY = "read-key-0123456789abcdef"
ADMIN = {"X-API-Key": ADMIN_KEY}
READ = {"X-API-Key": READ_KEY}


def settings(**overrides: object) -> ApiSettings:
    values: dict[str, object] = {"api_keys": ADMIN_KEY, "api_read_keys": READ_KEY,
                                 "wait_max_s": 10.0}
    values.update(overrides)
    return ApiSettings(**values)  # type: ignore[arg-type]


def make_app(tq: TaskQueue, **overrides: object) -> FastAPI:
    return create_app(settings(**overrides), tq=tq)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app`` with uvicorn on a free port in this loop; yield a client on it."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/v1", timeout=30) as c:
            yield c
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@pytest.fixture
async def app_tq(redis_url: str, prefix: str) -> AsyncIterator[TaskQueue]:
    """The API tests' TaskQueue (tests/apps/api_tasks.py), closed at teardown."""
    tq = build(prefix, redis_url)
    yield tq
    await tq.aclose()


@pytest.fixture
async def client(app_tq: TaskQueue) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the service, served over real HTTP in the test's loop."""
    async with serve(make_app(app_tq)) as c:
        yield c
