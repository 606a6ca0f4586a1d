"""Operating periodic schedules: ``taskq schedules``, ``taskq schedule pause|resume NAME`` and
the HTTP API's ``/schedules`` (read key to view, admin key to act)."""

from __future__ import annotations

import asyncio
import json

import httpx
from typer.testing import CliRunner

from taskq import TaskQueue
from taskq.cli import app as cli_app
from taskq.worker.context import Clock
from taskq.worker.schedules import Scheduler
from tests.api_fixtures import ADMIN, READ

runner = CliRunner()


async def synced(url: str, prefix: str) -> None:
    """Store two schedules as a starting worker would."""
    app = TaskQueue(url, prefix=prefix)

    @app.task(name="report")
    async def report(kind: str) -> None: ...

    app.schedule(report.message(kind="daily"), cron="0 6 * * *", timezone="Europe/Berlin",
                 name="daily-report")
    app.schedule(report.message(kind="ping"), every=30, name="ping", catch_up="skip")
    clock = Clock()
    await clock.sync(app.redis)
    await Scheduler(app, clock, missed_after_ms=6000, every_ms=500).sync()
    await app.aclose()


def test_cli_lists_pauses_and_resumes(redis_url: str, prefix: str) -> None:
    asyncio.run(synced(redis_url, prefix))

    def cli(*args: str) -> tuple[int, str]:
        r = runner.invoke(cli_app, ["--redis-url", redis_url, "--prefix", prefix, *args])
        return r.exit_code, r.output

    code, text = cli("schedules")  # (names are never cut; the rest may wrap at 80 columns)
    assert code == 0 and "daily-report" in text and "ping" in text, text
    code, text = cli("schedules", "--json")
    listed = json.loads(text)["schedules"]
    daily = next(s for s in listed if s["name"] == "daily-report")
    assert daily["cron"] == "0 6 * * *" and daily["timezone"] == "Europe/Berlin"
    assert len(daily["next_fire_ms"]) == 3 and daily["paused"] is False
    assert daily["last_task_id"] is None and daily["fired_total"] == 0
    code, text = cli("schedule", "pause", "daily-report")
    assert code == 0 and "paused" in text
    code, text = cli("--json", "schedules")
    daily = next(s for s in json.loads(text)["schedules"]
                 if s["name"] == "daily-report")
    assert daily["paused"] is True and daily["next_fire_ms"] == []
    code, text = cli("schedule", "resume", "daily-report", "--json")
    assert code == 0 and '"paused": false' in text
    code, text = cli("schedule", "pause", "no-such")
    assert code == 1 and "no schedule named 'no-such'" in text


async def test_http_lists_pauses_and_resumes(client: httpx.AsyncClient, redis_url: str,
                                             prefix: str) -> None:
    await synced(redis_url, prefix)
    r = await client.get("/schedules", headers=READ)
    assert r.status_code == 200
    assert [s["name"] for s in r.json()] == ["daily-report", "ping"]
    r = await client.get("/schedules/ping", headers=READ)
    assert r.json()["every_s"] == 30 and r.json()["catch_up"] == "skip"
    assert (await client.get("/schedules/nope", headers=READ)).status_code == 404
    assert (await client.post("/schedules/ping/pause", headers=READ)).status_code == 403
    assert (await client.get("/schedules")).status_code == 401
    r = await client.post("/schedules/ping/pause", headers=ADMIN)
    assert r.status_code == 200 and r.json() == {"schedule": "ping", "paused": True}
    assert (await client.get("/schedules/ping", headers=READ)).json()["paused"] is True
    r = await client.post("/schedules/ping/resume", headers=ADMIN)
    assert r.json() == {"schedule": "ping", "paused": False}
    assert (await client.get("/schedules/ping", headers=READ)).json()["paused"] is False
    assert (await client.post("/schedules/nope/pause", headers=ADMIN)).status_code == 404
