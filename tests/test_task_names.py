"""Task names: ``module.qualname`` by default, and one resolution of short names
(:mod:`taskq.names`) that the CLI's ``enqueue`` and the HTTP enqueue route both use."""

from __future__ import annotations

import json

import pytest
from click.testing import Result
from typer.testing import CliRunner

from taskq import TaskNotRegistered, TaskQueue
from taskq.cli import app as cli_app
from tests.api_fixtures import ADMIN, make_app, serve
from tests.apps import named

FULL = "tests.apps.named.send_email"
BILLING = "tests.apps.named.billing.send_email"
RESIZE = "tests.apps.named.resize_image"

runner = CliRunner()


def test_default_names_are_module_and_qualname() -> None:
    tq = named.build("unused")
    assert sorted(tq.registry) == ["emails.welcome", BILLING, RESIZE, FULL]


@pytest.mark.parametrize(("given", "full"), [
    (FULL, FULL), (BILLING, BILLING), ("resize_image", RESIZE), ("named.resize_image", RESIZE),
    ("billing.send_email", BILLING), ("named.send_email", FULL), ("welcome", "emails.welcome"),
    ("welcome_new_user", "emails.welcome"), ("emails.welcome", "emails.welcome"),
])
def test_a_short_name_resolves_when_one_task_matches(given: str, full: str) -> None:
    assert named.build("unused").resolve_task(given).name == full


def test_ambiguous_and_unknown_names_are_refused_with_the_matches() -> None:
    tq = named.build("unused")
    with pytest.raises(TaskNotRegistered) as ambiguous:
        tq.resolve_task("send_email")
    assert ambiguous.value.matches == (BILLING, FULL)
    assert FULL in str(ambiguous.value) and BILLING in str(ambiguous.value)
    for unknown in ("image", "ize_image", "apps", "tests.apps.named", ""):
        with pytest.raises(TaskNotRegistered) as missing:
            tq.resolve_task(unknown)
        assert missing.value.matches == ()
    assert tq.get_task("resize_image") is None  # exact lookups stay exact


def test_an_exact_name_wins_over_a_tail() -> None:
    tq = TaskQueue("redis://127.0.0.1:1/0", prefix="unused")

    @tq.task(name="report")
    async def a() -> None: ...

    @tq.task(name="monthly.report")
    async def b() -> None: ...

    assert tq.resolve_task("report").name == "report"
    assert tq.resolve_task("monthly.report").name == "monthly.report"


def test_cli_enqueue_by_short_name(redis_url: str, prefix: str) -> None:
    def enqueue(name: str, kwargs: str) -> Result:
        return runner.invoke(cli_app, ["--redis-url", redis_url, "--prefix", prefix, "enqueue",
                                       name, "--app", "tests.apps.named:tq", "--kwargs", kwargs,
                                       "--json"])

    done = enqueue("resize_image", '{"path": "a.png"}')
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert (data["task"], data["queue"]) == (RESIZE, "images")
    shown = runner.invoke(cli_app, ["--redis-url", redis_url, "--prefix", prefix, "task",
                                    data["task_id"], "--json"])
    assert json.loads(shown.stdout)["task"] == RESIZE

    ambiguous = enqueue("send_email", '{"to": "a@b.c"}')
    assert ambiguous.exit_code == 2
    err = ambiguous.stderr
    assert "ambiguous" in err and FULL in err and BILLING in err
    assert len(err.splitlines()) == 1

    unknown = enqueue("nope", "{}")
    assert unknown.exit_code == 1 and "not registered" in unknown.stderr


async def test_http_enqueue_by_short_name(redis_url: str, prefix: str) -> None:
    tq = named.build(prefix, redis_url)
    try:
        async with serve(make_app(tq)) as client:
            r = await client.post("/enqueue/resize_image", json={"path": "a.png"}, headers=ADMIN)
            assert r.status_code == 202, r.text
            assert (r.json()["task"], r.json()["queue"]) == (RESIZE, "images")
            status = await client.get(f"/tasks/{r.json()['id']}", headers=ADMIN)
            assert status.json()["task"] == RESIZE
            full = await client.post(f"/enqueue/{BILLING}", json={"to": "x"}, headers=ADMIN)
            assert full.status_code == 202 and full.json()["task"] == BILLING

            ambiguous = await client.post("/enqueue/send_email", json={"to": "x"},
                                          headers=ADMIN)
            assert ambiguous.status_code == 404
            detail = ambiguous.json()["detail"]
            assert "ambiguous" in detail and FULL in detail and BILLING in detail
            unknown = await client.post("/enqueue/nope", json={}, headers=ADMIN)
            assert unknown.status_code == 404 and "not registered" in unknown.json()["detail"]
    finally:
        await tq.aclose()


