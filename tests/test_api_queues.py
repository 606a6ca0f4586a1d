"""Queues and dead letters over HTTP: figures, list, show, replay (attempts reset), purge."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from taskq import TaskQueue, Worker
from tests.api_fixtures import ADMIN, READ
from tests.helpers import eventually


async def dead_count(client: httpx.AsyncClient) -> int:
    r = await client.get("/queues/default", headers=READ)
    return int(r.json()["dead"])


async def test_queue_figures(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await client.post("/enqueue/add", json={"a": 1, "b": 1}, headers=ADMIN)
    await client.post("/enqueue/add", json={"a": 1, "b": 1}, params={"delay_s": 60},
                      headers=ADMIN)
    await client.post("/enqueue/note", json={"key": "k", "value": "v"}, headers=ADMIN)
    queues = {q["name"]: q for q in (await client.get("/queues", headers=READ)).json()}
    assert set(queues) >= {"default", "notes"}
    default = queues["default"]
    assert default["length"] == 3 and default["lag"] == 3 and default["delayed"] == 1
    assert default["in_flight"] == 0 and default["dead"] == 0 and default["consumers"] == 0
    assert queues["notes"]["length"] == 1
    missing = await client.get("/queues/no-such-queue", headers=READ)
    assert missing.status_code == 404


async def test_dead_letters_list_show_replay_purge(
    client: httpx.AsyncClient, app_tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    start_worker(app_tq)
    ids = []
    for i in range(3):
        r = await client.post("/enqueue/fail", json={"message": f"boom {i}"}, headers=ADMIN)
        ids.append(r.json()["id"])
    await eventually(lambda: dead_count(client), what="dead letters")

    async def all_dead() -> bool:
        return await dead_count(client) == 3

    await eventually(all_dead, what="three dead letters")
    letters = (await client.get("/queues/default/dead", headers=READ)).json()
    assert len(letters) == 3
    assert {d["task_id"] for d in letters} == set(ids)
    assert all(d["reason"] == "max_attempts" and d["attempts"] == 1 for d in letters)
    one = letters[0]
    shown = await client.get(f"/queues/default/dead/{one['id']}", headers=READ)
    assert shown.json()["error"] == one["error"]
    assert (await client.get("/queues/default/dead/1-1", headers=READ)).status_code == 404

    # replay one by id: it runs again (and fails again), attempts counted from zero
    r = await client.post("/queues/default/dead/replay", json={"ids": [one["id"]]},
                          headers=ADMIN)
    assert r.json() == {"queue": "default", "replayed": 1, "workflow_steps": [], "kept": []}
    # the replayed letter left the list at once (the others stay)
    gone = await client.get(f"/queues/default/dead/{one['id']}", headers=READ)
    assert gone.status_code == 404

    async def dead_again() -> list[dict[str, Any]] | None:
        now = (await client.get("/queues/default/dead", headers=READ)).json()
        again = [d for d in now if d["task_id"] == one["task_id"]]
        return now if again else None

    # a new attempt ran: the task died again, as a new letter written after the first one
    after = await eventually(dead_again, what="replayed task dead again")
    assert len(after) == 3 and one["id"] not in {d["id"] for d in after}
    (again,) = [d for d in after if d["task_id"] == one["task_id"]]
    assert again["failed_ms"] > one["failed_ms"] and again["attempts"] == 1
    assert again["error"] == one["error"]
    rec = (await client.get(f"/tasks/{one['task_id']}", headers=READ)).json()
    assert rec["status"] == "dead" and rec["attempts"] == 1
    assert rec["started_ms"] >= one["failed_ms"]

    unsaid = await client.post("/queues/default/dead/purge", json={}, headers=ADMIN)
    assert unsaid.status_code == 422  # every dead letter: only with "all": true
    purge = await client.post("/queues/default/dead/purge", json={"all": True}, headers=ADMIN)
    assert purge.json() == {"queue": "default", "purged": 3}
    assert await dead_count(client) == 0
    bad = await client.post("/queues/default/dead/purge", json={"nope": 1}, headers=ADMIN)
    assert bad.status_code == 422


async def test_pause_and_resume(client: httpx.AsyncClient) -> None:
    await client.post("/enqueue/add", json={"a": 1, "b": 1}, headers=ADMIN)
    r = await client.post("/queues/default/pause", headers=ADMIN)
    assert r.json() == {"queue": "default", "paused": True}
    assert (await client.get("/queues/default", headers=READ)).json()["paused"] is True
    await client.post("/queues/default/resume", headers=ADMIN)
    assert (await client.get("/queues/default", headers=READ)).json()["paused"] is False
    assert (await client.post("/queues/default/pause", headers=READ)).status_code == 403
