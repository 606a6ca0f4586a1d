"""The Server-Sent Events stream of one task, against a real Redis and worker."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from taskq import TaskQueue, Worker
from tests.api_fixtures import ADMIN, READ

ORDER = {"queued": 0, "running": 1, "failed": 1, "succeeded": 2, "dead": 2, "cancelled": 2}


async def read_events(client: httpx.AsyncClient, task_id: str,
                      on_first: Callable[[], None]) -> list[tuple[int, str, dict[str, Any]]]:
    """Every event of the stream until the server ends it: (id, name, data)."""
    events: list[tuple[int, str, dict[str, Any]]] = []
    frame: dict[str, str] = {}
    async with client.stream("GET", f"/tasks/{task_id}/events", headers=READ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line == "":
                if frame:
                    events.append((int(frame["id"]), frame["event"], json.loads(frame["data"])))
                    if len(events) == 1:
                        on_first()
                frame = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                frame[name] = value
    return events


def check_order(events: list[tuple[int, str, dict[str, Any]]]) -> None:
    ids = [e[0] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    ranks = [ORDER[e[2]["status"]] for e in events]
    assert ranks == sorted(ranks), [e[2]["status"] for e in events]
    assert [e[1] for e in events] == ["status"] * len(events)


async def test_events_in_order_with_progress_until_succeeded(
    client: httpx.AsyncClient, app_tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    r = await client.post("/enqueue/steps", json={"n": 4, "seconds": 0.15}, headers=ADMIN)
    task_id = r.json()["id"]
    events = await read_events(client, task_id, lambda: start_worker(app_tq))
    statuses = [e[2]["status"] for e in events]
    assert statuses[0] == "queued"
    assert "running" in statuses
    assert statuses[-1] == "succeeded" and events[-1][2]["result"] == 4
    check_order(events)
    progress = [e[2]["progress"] for e in events if e[2]["progress"] is not None]
    assert progress == sorted(progress) and len(progress) >= 2
    messages = [e[2]["progress_message"] for e in events if e[2]["progress_message"]]
    assert messages[0].startswith("step ")


async def test_events_end_at_dead(
    client: httpx.AsyncClient, app_tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    r = await client.post("/enqueue/fail", json={"message": "nope"}, headers=ADMIN)
    task_id = r.json()["id"]
    events = await read_events(client, task_id, lambda: start_worker(app_tq))
    check_order(events)
    assert events[0][2]["status"] == "queued"
    assert events[-1][2]["status"] == "dead"
    assert "nope" in events[-1][2]["error"]


async def test_events_of_an_ended_task_is_one_event(client: httpx.AsyncClient) -> None:
    r = await client.post("/enqueue/add", json={"a": 1, "b": 1}, headers=ADMIN)
    task_id = r.json()["id"]
    await client.post(f"/tasks/{task_id}/cancel", headers=ADMIN)
    events = await read_events(client, task_id, lambda: None)
    assert [e[2]["status"] for e in events] == ["cancelled"]
