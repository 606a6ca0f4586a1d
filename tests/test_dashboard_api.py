"""What the dashboard reads and how it is served, over real HTTP: pages of queues and of dead
letters, completions per minute, consumers, failures, tasks by status, what a worker holds, the
caller's role; the page and its files (offline, with headers that forbid inline scripts), in the
service and inside a user's app through ``taskq_router``."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
from fastapi import FastAPI

from taskq import TaskQueue, Worker
from taskq.dashboard import ASSETS
from taskq.deadletter import DeadEntry
from taskq.fastapi import ApiConfig, ApiKeys, lifespan, taskq_router
from taskq.keys import queues_key
from tests.api_fixtures import ADMIN, ADMIN_KEY, READ, make_app, serve
from tests.helpers import eventually


async def test_queues_come_a_page_at_a_time_with_the_total(
    client: httpx.AsyncClient, app_tq: TaskQueue
) -> None:
    names = [f"q{i:04d}" for i in range(1000)]
    await app_tq.redis.sadd(queues_key(app_tq.prefix), *names)  # type: ignore[misc]
    every = sorted([*names, "default", "notes"])
    r = await client.get("/queues", params={"offset": 50, "limit": 50}, headers=READ)
    assert r.status_code == 200
    assert r.headers["X-Total-Count"] == str(len(every))
    assert [q["name"] for q in r.json()] == every[50:100]
    r = await client.get("/queues", params={"match": "Q09", "limit": 5}, headers=READ)
    assert r.headers["X-Total-Count"] == "100"
    assert [q["name"] for q in r.json()] == [f"q09{i:02d}" for i in range(5)]
    r = await client.get("/queues", params={"offset": 5000, "limit": 50}, headers=READ)
    assert r.json() == [] and r.headers["X-Total-Count"] == str(len(every))
    whole = await client.get("/queues", headers=READ)  # no paging asked: every queue, as before
    assert len(whole.json()) == len(every) == int(whole.headers["X-Total-Count"])
    assert (await client.get("/queues", params={"limit": 0}, headers=READ)).status_code == 422


async def _dead(tq: TaskQueue, n: int) -> list[str]:
    """``n`` dead letters written as the worker writes them (this test reads, not dies)."""
    keys = tq.keys("default")
    pipe = tq.redis.pipeline(transaction=False)
    for i in range(n):
        entry = DeadEntry(task_id=f"default:{1000 + i}-0", entry=f"{1000 + i}-0", task="fail",
                          reason="max_attempts", error_type="RuntimeError", error=f"e{i}",
                          traceback="", attempts=1, enqueued_ms=1000 + i, failed_ms=2000 + i,
                          worker="w", payload=b"")
        pipe.xadd(keys.dead, entry.fields())  # type: ignore[arg-type]
    return [i.decode() for i in await pipe.execute()]


async def test_dead_letters_page_back_from_a_cursor(
    client: httpx.AsyncClient, app_tq: TaskQueue
) -> None:
    written = await _dead(app_tq, 120)
    seen: list[str] = []
    before = None
    for size in (50, 50, 20, 0):
        params: dict[str, str | int] = {"limit": 50}
        if before:
            params["before"] = before
        page = (await client.get("/queues/default/dead", params=params, headers=READ)).json()
        assert len(page) == size
        seen += [d["id"] for d in page]
        before = page[-1]["id"] if page else None
    assert seen == written[::-1]  # newest first, each once
    bad = await client.get("/queues/default/dead", params={"before": "-"}, headers=READ)
    assert bad.status_code == 422


async def test_completions_per_minute_over_the_last_hour(
    client: httpx.AsyncClient, app_tq: TaskQueue
) -> None:
    await client.post("/enqueue/add", json={"a": 1, "b": 1}, headers=ADMIN)  # the queue exists
    sec, _ = await app_tq.redis.time()
    minute = int(sec) // 60
    keys = app_tq.keys("default")
    await app_tq.redis.set(keys.done_minute(minute - 2), 7, ex=60)
    await app_tq.redis.set(keys.done_minute(minute), 3, ex=60)
    r = (await client.get("/queues/default/throughput", params={"minutes": 5},
                          headers=READ)).json()
    if r["minute_ms"] // 60_000 != minute:  # the minute turned between the two reads
        minute += 1
        assert r["counts"][-4:] == [7, 0, 3, 0]
    else:
        assert r["counts"] == [0, 0, 7, 0, 3]
    assert r["minute_ms"] == minute * 60_000
    assert len((await client.get("/queues/default/throughput", headers=READ)).json()[
        "counts"]) == 60
    assert (await client.get("/queues/nope/throughput", headers=READ)).status_code == 404
    over = await client.get("/queues/default/throughput", params={"minutes": 121}, headers=READ)
    assert over.status_code == 422


async def test_consumers_running_tasks_failures_and_what_a_worker_holds(
    client: httpx.AsyncClient, app_tq: TaskQueue, start_worker: Callable[..., Worker]
) -> None:
    worker = start_worker(app_tq)
    failed = (await client.post("/enqueue/fail", json={"message": "nope"}, headers=ADMIN)).json()
    await app_tq.wait(failed["id"], 20)
    held = (await client.post("/enqueue/sleepy", json={"seconds": 30}, headers=ADMIN)).json()

    async def holding() -> list[dict[str, object]]:
        r = await client.get(f"/workers/{worker.id}/tasks", headers=READ)
        assert r.status_code == 200
        return [t for t in r.json() if t["id"] == held["id"]]

    (task,) = await eventually(holding, 20, what="the worker holding the task")
    assert task["status"] == "running" and task["worker"] == worker.id
    one = (await client.get(f"/workers/{worker.id}", headers=READ)).json()
    assert one["id"] == worker.id and one["alive"] is True
    running = (await client.get("/queues/default/tasks", params={"status": "running"},
                                headers=READ)).json()
    assert [t["id"] for t in running] == [held["id"]]
    consumers = (await client.get("/queues/default/consumers", headers=READ)).json()
    assert [(c["name"], c["pending"], c["alive"]) for c in consumers] == [(worker.id, 1, True)]
    failures = (await client.get("/queues/default/failures", headers=READ)).json()
    assert [(f["task_id"], f["status"]) for f in failures] == [(failed["id"], "dead")]
    assert "nope" in failures[0]["error"]
    assert (await client.get("/workers/nobody", headers=READ)).status_code == 404
    assert (await client.get("/workers/nobody/tasks", headers=READ)).status_code == 404
    bad = await client.get("/queues/default/tasks", params={"status": "bogus"}, headers=READ)
    assert bad.status_code == 422
    await client.post(f"/tasks/{held['id']}/cancel", headers=ADMIN)


async def test_whoami_names_the_role_of_the_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/whoami", headers=READ)).json() == {
        "role": "read", "auth_disabled": False}
    assert (await client.get("/whoami", headers=ADMIN)).json()["role"] == "admin"
    assert (await client.get("/whoami")).status_code == 401


async def test_the_service_serves_the_page_and_its_files_offline(app_tq: TaskQueue) -> None:
    async with serve(make_app(app_tq)) as client:
        root = f"http://127.0.0.1:{client.base_url.port}"
        moved = await client.get(root + "/ui")
        assert moved.status_code == 308 and moved.headers["location"] == "ui/"
        page = await client.get(root + "/ui/")  # no key needed: the data needs one
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert '<meta name="taskq-api" content="../v1/">' in page.text
        assert '<meta name="taskq-auth" content="on">' in page.text
        assert "Authentication is disabled" not in page.text
        files = re.findall(r"""(?:src|href)=["'](assets/[^"']+)["']""", page.text)
        assert "assets/js/app.js" in files and "assets/style.css" in files
        for path in [f.relative_to(ASSETS).as_posix() for f in ASSETS.rglob("*.*")
                     if f.name != "index.html"]:
            r = await client.get(f"{root}/ui/assets/{path}")
            assert r.status_code == 200, path
            again = await client.get(f"{root}/ui/assets/{path}",
                                     headers={"If-None-Match": r.headers["etag"]})
            assert again.status_code == 304, path
        js = await client.get(root + "/ui/assets/js/app.js")
        assert js.headers["content-type"].startswith("text/javascript")
        assert (await client.get(root + "/ui/assets/../app.py")).status_code == 404
        assert (await client.get(root + "/ui/assets/nope.js")).status_code == 404
    async with serve(make_app(app_tq, auth_disabled=True, api_keys="")) as client:
        page = await client.get(f"http://127.0.0.1:{client.base_url.port}/ui/")
        assert "Authentication is disabled" in page.text
        assert '<meta name="taskq-auth" content="off">' in page.text
    async with serve(make_app(app_tq, dashboard=False)) as client:
        gone = await client.get(f"http://127.0.0.1:{client.base_url.port}/ui/")
        assert gone.status_code == 404


async def test_taskq_router_serves_it_beside_the_api_in_a_users_app(app_tq: TaskQueue) -> None:
    app = FastAPI(lifespan=lifespan(app_tq))
    app.include_router(taskq_router(app_tq, ApiConfig(keys=ApiKeys.from_keys(admin=[ADMIN_KEY]))),
                       prefix="/ops/taskq")
    quiet = FastAPI(lifespan=lifespan(app_tq))
    quiet.include_router(taskq_router(app_tq, ApiConfig(keys=ApiKeys.off(), dashboard=False)),
                         prefix="/taskq")
    async with serve(app) as client:
        root = f"http://127.0.0.1:{client.base_url.port}"
        page = await client.get(root + "/ops/taskq/ui/")
        assert page.status_code == 200
        assert '<meta name="taskq-api" content="../">' in page.text  # the API: /ops/taskq/
        assert (await client.get(root + "/ops/taskq/ui/assets/js/app.js")).status_code == 200
        who = await client.get(root + "/ops/taskq/whoami", headers=ADMIN)
        assert who.json()["role"] == "admin"
        schema = (await client.get(root + "/openapi.json")).json()
        assert not [p for p in schema["paths"] if "/ui" in p]  # pages are not API operations
    async with serve(quiet) as client:
        gone = await client.get(f"http://127.0.0.1:{client.base_url.port}/taskq/ui/")
        assert gone.status_code == 404


def test_no_asset_writes_markup_or_loads_from_elsewhere() -> None:
    """Data reaches the page only as text: no innerHTML, outerHTML, insertAdjacentHTML,
    document.write or eval in any script; and nothing names another host."""
    scripts = list(ASSETS.rglob("*.js"))
    assert len(scripts) >= 10
    for f in [*scripts, ASSETS / "index.html", ASSETS / "style.css"]:
        text = f.read_text()
        for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                       "eval(", "new Function", "@import", "url(http"):
            assert banned not in text, (f.name, banned)
        assert not re.search(r"""(?:src|href|from|import)\s*=?\s*["']https?://""", text), f.name
