"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright through
its executable path): every page loads with no request leaving this machine, replay takes a dead
letter off the list, a progress bar moves live, a script in an error shows as text, a read key
cannot act, the pages fit a phone's width, schedules pause and resume, and a workflow's steps show
live and it cancels.

``TASKQ_DASHBOARD_SHOTS=DIR`` also saves a screenshot of each page into DIR (docs/dashboard.md
shows them; see :func:`test_every_page_loads_offline`).
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from taskq import TaskQueue, Worker, admin
from taskq.worker.context import Clock
from taskq.worker.schedules import Scheduler
from taskq.workflow import chain, start
from tests.api_fixtures import ADMIN_KEY, READ_KEY, make_app, serve
from tests.helpers import eventually

playwright_api = pytest.importorskip("playwright.async_api")

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless browser installed "
                                "(apt-get install chromium; .ci/run installs it)")
SHOTS = os.environ.get("TASKQ_DASHBOARD_SHOTS")
TIMEOUT_MS = 20_000
PHONE = {"width": 390, "height": 844}


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        b = await p.chromium.launch(executable_path=BROWSER, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            # every host but this one fails to resolve: a page that needs a CDN breaks
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
        yield b
        await b.close()


class Page:
    """A browser page on the dashboard that records what would make a test fail: a request
    to another host, a script error, a console error, a dialog (an alert() that ran)."""

    def __init__(self, page: Any, root: str) -> None:
        self.page = page
        self.root = root
        self.problems: list[str] = []
        self.allowed: list[str] = []  # console errors a test expects (a refused key's 401)
        self.dialogs: list[str] = []
        self.dismissing: list[asyncio.Future[None]] = []
        page.set_default_timeout(TIMEOUT_MS)
        page.on("request", self._request)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _request(self, request: Any) -> None:
        if not request.url.startswith(self.root):
            self.problems.append(f"request off this host: {request.url}")

    def _console(self, msg: Any) -> None:
        if msg.type == "error" and not any(a in msg.text for a in self.allowed):
            self.problems.append(f"console error: {msg.text}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        self.dismissing.append(asyncio.ensure_future(dialog.dismiss()))

    async def open(self, route: str = "") -> None:
        await self.page.goto(f"{self.root}/ui/#/{route}")

    async def sign_in(self, key: str = ADMIN_KEY) -> None:
        await self.open()
        await self.page.get_by_label("API key").fill(key)
        await self.page.get_by_role("button", name="Sign in").click()
        await self.page.get_by_role("heading", level=1, name="Queues").wait_for()

    async def go(self, route: str, heading: str) -> None:
        await self.page.evaluate("r => { location.hash = r }", "#/" + route)
        await self.page.locator("h1", has_text=heading).wait_for()

    async def shot(self, name: str) -> None:
        if SHOTS:
            await self.page.wait_for_timeout(300)  # let a live update land before the picture
            await self.page.screenshot(path=str(Path(SHOTS) / f"dashboard-{name}.png"),
                                       full_page=True)

    def assert_clean(self) -> None:
        assert not self.problems, self.problems
        assert not self.dialogs, self.dialogs


@pytest.fixture
async def dashboard(app_tq: TaskQueue, browser: Any) -> AsyncIterator[Callable[..., Any]]:
    """Open pages on the service (admin and read keys as tests/api_fixtures.py gives them)."""
    opened: list[Any] = []
    async with serve(make_app(app_tq)) as client:
        root = f"http://127.0.0.1:{client.base_url.port}"

        async def new_page(**options: Any) -> Page:
            context = await browser.new_context(**options)
            opened.append(context)
            return Page(await context.new_page(), root)

        yield new_page
        for c in opened:
            await c.close()


async def test_every_page_loads_offline(app_tq: TaskQueue, dashboard: Callable[..., Any],
                                        start_worker: Callable[..., Worker]) -> None:
    add, fail, steps = (app_tq.registry[n] for n in ("add", "fail", "steps"))
    start_worker(app_tq, concurrency=4)
    done = await add.enqueue(a=2, b=3)
    failed = await fail.enqueue(message="the upstream service said no")
    running = await steps.enqueue(n=200, seconds=0.1)  # runs through the test
    await app_tq.wait(done.id, 20)
    await app_tq.wait(failed.id, 20)
    await eventually(lambda: _running(app_tq, running.id), 20, what="steps running")
    if SHOTS:
        await _seed_history(app_tq)
    page = await dashboard(viewport={"width": 1280, "height": 900})
    await page.sign_in()
    p = page.page
    await p.get_by_role("link", name="default", exact=True).wait_for()
    assert await p.locator("svg.chart").count() >= 1  # the last hour's completions
    await page.shot("queues")

    await page.go("queue/default", "Queue default")
    await p.get_by_role("heading", name="Recent failures").wait_for()
    await p.get_by_text("the upstream service said no").first.wait_for()
    await p.get_by_role("button", name="Pause").wait_for()
    await page.shot("queue")

    await page.go(f"task/{done.id}", "Task")
    await p.locator(".badge-succeeded").wait_for()
    await p.get_by_role("heading", name="Result").wait_for()
    await page.go(f"task/{running.id}", "Task")
    await p.locator("#task-progress").wait_for()
    await page.shot("task")

    await page.go("dead", "Dead letters")
    await p.get_by_role("link", name="default", exact=True).click()
    await p.locator("h1", has_text="Dead letters of").wait_for()
    await p.get_by_text("max_attempts").first.wait_for()
    await page.shot("dead-letters")
    await p.get_by_role("link", name="Show").first.click()
    await p.get_by_role("heading", name="Traceback").wait_for()
    await page.shot("dead-letter")

    await page.go("workers", "Workers")
    await p.locator(".badge-alive").first.wait_for()
    await p.locator("table.data a.mono").first.click()
    await p.get_by_role("heading", name="Tasks it holds").wait_for()
    await p.get_by_role("link", name=running.id).wait_for()  # what the worker holds
    await page.shot("worker")
    await page.go("workers", "Workers")
    await page.shot("workers")

    # the task search in the header
    await p.get_by_label("Task id").fill(done.id)
    await p.get_by_label("Task id").press("Enter")
    await p.locator("h1", has_text=done.id).wait_for()
    await app_tq.cancel(running.id)
    page.assert_clean()


async def _seed_history(tq: TaskQueue) -> None:
    """For the screenshots only: an hour of per-minute completion counts, as workers would
    have left them (a test runs for seconds, so the chart would show one bar)."""
    sec, _ = await tq.redis.time()
    now = int(sec) // 60
    for queue, scale in (("default", 40), ("notes", 9)):
        keys = tq.keys(queue)
        for m in range(1, 60):
            count = int(scale * (1.6 + math.sin(m / 6) + 0.4 * math.cos(m * 1.7)))
            await tq.redis.set(keys.done_minute(now - m), count, ex=600)


async def _running(tq: TaskQueue, task_id: str) -> bool:
    return (await tq.status(task_id)).status == "running"


async def test_replay_takes_the_dead_letter_off_the_list(
    app_tq: TaskQueue, dashboard: Callable[..., Any], start_worker: Callable[..., Worker]
) -> None:
    fail = app_tq.registry["fail"]
    worker = start_worker(app_tq, concurrency=2)
    first, second = await fail.enqueue(message="first"), await fail.enqueue(message="second")
    for h in (first, second):
        await app_tq.wait(h.id, 20)
    worker.stop()  # the replayed task must stay queued, not die again under a new id
    await eventually(lambda: _no_consumers_alive(app_tq), 30, what="worker stopped")
    letters = {d.task_id: d.id for d in await _letters(app_tq)}
    assert set(letters) == {first.id, second.id}

    page = await dashboard()
    await page.sign_in()
    await page.go("queue/default/dead", "Dead letters of")
    p = page.page
    row = p.locator(f'tr[data-row="{letters[first.id]}"]')
    await row.wait_for()
    await row.get_by_role("button", name="Replay").click()
    dialog = p.get_by_role("dialog")
    await dialog.get_by_role("button", name="Replay").click()
    await row.wait_for(state="detached")  # gone from the list, without a reload
    await p.get_by_text("Replayed 1 dead letter").wait_for()
    await p.locator(f'tr[data-row="{letters[second.id]}"]').wait_for()  # the other stays
    assert (await app_tq.status(first.id)).status == "queued"
    assert [d.task_id for d in await _letters(app_tq)] == [second.id]

    # purge all asks first; cancelling the dialog purges nothing
    await p.get_by_role("button", name="Purge all").click()
    await p.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    assert len(await _letters(app_tq)) == 1
    await p.get_by_role("button", name="Purge all").click()
    await p.get_by_role("dialog").get_by_role("button", name="Purge").click()
    await p.get_by_text("No dead letters.").wait_for()
    assert await _letters(app_tq) == []
    page.assert_clean()


async def _no_consumers_alive(tq: TaskQueue) -> bool:
    return not [w for w in await admin.list_workers(tq) if w.alive]


async def _letters(tq: TaskQueue) -> list[Any]:
    return await admin.dead_letters(tq, "default", 100)


async def test_the_progress_bar_moves_live(app_tq: TaskQueue, dashboard: Callable[..., Any],
                                           start_worker: Callable[..., Worker]) -> None:
    steps = app_tq.registry["steps"]
    handle = await steps.enqueue(n=20, seconds=0.25)
    page = await dashboard()
    await page.sign_in()
    await page.go(f"task/{handle.id}", "Task")  # opened while still queued: no reload after
    start_worker(app_tq)
    bar = page.page.locator("#task-progress")
    seen: list[float] = []

    async def moved() -> bool:
        if await bar.count():
            value = float(await bar.get_attribute("value") or 0)
            if not seen or value != seen[-1]:
                seen.append(value)
        return len(seen) >= 3 and seen[-1] > seen[0]

    await eventually(moved, 30, interval=0.05, what="the progress bar moving")
    assert seen == sorted(seen) and 0 < seen[0] < seen[-1] <= 1, seen
    await page.page.locator(".badge-succeeded").wait_for(timeout=30_000)
    await page.page.get_by_role("heading", name="Result").wait_for()
    page.assert_clean()


async def test_pause_resume_and_cancel_act_on_the_queue_and_the_task(
    app_tq: TaskQueue, dashboard: Callable[..., Any], start_worker: Callable[..., Worker]
) -> None:
    start_worker(app_tq)
    handle = await app_tq.registry["sleepy"].enqueue(seconds=60)
    await eventually(lambda: _running(app_tq, handle.id), 20, what="sleepy running")
    page = await dashboard()
    await page.sign_in()
    p = page.page
    await page.go("queue/default", "Queue default")
    await p.get_by_role("button", name="Pause").click()
    await p.locator("h1 .badge-paused").wait_for()
    assert (await admin.queue_info(app_tq, "default")).paused
    await p.get_by_role("button", name="Resume").click()
    await p.locator("h1 .badge-running").wait_for()
    assert not (await admin.queue_info(app_tq, "default")).paused

    await page.go(f"task/{handle.id}", "Task")
    await p.locator("h1 .badge-running").wait_for()
    await p.get_by_role("button", name="Cancel task").click()
    await p.get_by_role("dialog").get_by_role("button", name="Cancel task").click()
    await p.locator("h1 .badge-cancelled").wait_for()  # the live stream saw it end
    assert (await app_tq.status(handle.id)).status == "cancelled"
    assert await p.get_by_role("button", name="Cancel task").count() == 0
    page.assert_clean()


async def test_a_script_in_an_error_renders_as_text(
    app_tq: TaskQueue, dashboard: Callable[..., Any], start_worker: Callable[..., Worker]
) -> None:
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    start_worker(app_tq)
    handle = await app_tq.registry["fail"].enqueue(message=evil)
    await app_tq.wait(handle.id, 20)
    page = await dashboard()
    await page.sign_in()
    p = page.page
    await page.go(f"task/{handle.id}", "Task")
    error = p.locator("#task-error")
    await error.wait_for()
    text = await error.text_content() or ""
    assert text.startswith("RuntimeError: ") and text.endswith(evil), text
    assert await p.locator("pre", has_text="onerror").count() >= 2  # arguments and error
    await page.go("queue/default/dead", "Dead letters of")
    await p.get_by_text(evil, exact=False).first.wait_for()
    await page.go("queue/default", "Queue default")
    await p.get_by_text(evil, exact=False).first.wait_for()
    assert await p.locator("main script, main img").count() == 0
    assert not page.dialogs
    page.assert_clean()


async def test_a_read_key_sees_but_cannot_act(app_tq: TaskQueue,
                                              dashboard: Callable[..., Any]) -> None:
    await app_tq.registry["add"].enqueue(a=1, b=2)
    page = await dashboard()
    await page.sign_in(READ_KEY)
    p = page.page
    await p.get_by_text("read key").wait_for()
    await page.go("queue/default", "Queue default")
    assert await p.get_by_role("button", name="Pause").is_disabled()
    # a wrong key is refused at sign-in, and the key is never put in the URL
    await p.get_by_role("button", name="Sign out").click()
    page.allowed.append("status of 401")
    await p.get_by_label("API key").fill("not-a-key-of-this-service")
    await p.get_by_role("button", name="Sign in").click()
    await p.get_by_text("This key was not accepted.").wait_for()
    assert "key" not in p.url.split("#", 1)[0]
    page.assert_clean()


async def test_without_authentication_every_page_says_so(app_tq: TaskQueue,
                                                         browser: Any) -> None:
    async with serve(make_app(app_tq, auth_disabled=True, api_keys="",
                              api_read_keys="")) as client:
        root = f"http://127.0.0.1:{client.base_url.port}"
        context = await browser.new_context()
        page = Page(await context.new_page(), root)
        await page.open()
        await page.page.get_by_role("heading", name="Queues").wait_for()  # no sign-in
        for route, heading in (("workers", "Workers"), ("dead", "Dead letters")):
            await page.go(route, heading)
            assert await page.page.get_by_role("alert").filter(
                has_text="Authentication is disabled").count() == 1
        await context.close()
        page.assert_clean()


async def test_pages_fit_a_phone(app_tq: TaskQueue, dashboard: Callable[..., Any],
                                 start_worker: Callable[..., Worker]) -> None:
    start_worker(app_tq)
    handle = await app_tq.registry["fail"].enqueue(message="x" * 300)
    await app_tq.wait(handle.id, 20)
    page = await dashboard(viewport=PHONE, is_mobile=True, has_touch=True)
    await page.sign_in()
    for route, heading in (("", "Queues"), ("queue/default", "Queue default"),
                           ("queue/default/dead", "Dead letters of"), ("workers", "Workers"),
                           (f"task/{handle.id}", "Task")):
        await page.go(route, heading)
        await page.page.locator("table.data, .figures").first.wait_for()
        width = await page.page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (route, width)
    await page.go("queue/default/dead", "Dead letters of")
    await page.shot("phone")
    page.assert_clean()


async def test_keyboard_reaches_every_control_and_each_has_a_name(
    app_tq: TaskQueue, dashboard: Callable[..., Any], start_worker: Callable[..., Worker]
) -> None:
    start_worker(app_tq)
    handle = await app_tq.registry["fail"].enqueue(message="keyboard")
    await app_tq.wait(handle.id, 20)
    page = await dashboard()
    await page.sign_in()
    p = page.page
    await page.go("queue/default/dead", "Dead letters of")
    await p.locator("tr[data-row]").wait_for()
    unnamed = await p.evaluate("""() => [...document.querySelectorAll('input, button, a')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                     && !e.textContent.trim())
        .map(e => e.outerHTML)""")
    assert unnamed == []
    # Tab from the top reaches the row's Replay button, and Enter opens the confirmation
    await p.locator("body").focus()
    for _ in range(40):
        await p.keyboard.press("Tab")
        if await p.evaluate("document.activeElement.textContent") == "Replay":
            break
    else:
        pytest.fail("Tab never reached a Replay button")
    await p.keyboard.press("Enter")
    dialog = p.get_by_role("dialog")
    await dialog.wait_for()
    await p.keyboard.press("Escape")  # closes without acting
    await dialog.wait_for(state="detached")
    assert len(await _letters(app_tq)) == 1
    page.assert_clean()


async def _store_schedules(redis_url: str, prefix: str) -> str:
    """Store two schedules as a starting worker would, and fire "ping" once (as the worker's
    scheduler would); returns the task id it fired."""
    app = TaskQueue(redis_url, prefix=prefix)

    @app.task(name="add")
    async def add(a: int, b: int) -> int:
        return a + b

    app.schedule(add.message(a=6, b=0), cron="0 6 * * *", timezone="Europe/Berlin",
                 name="daily-report")
    app.schedule(add.message(a=1, b=1), every=1, name="ping", catch_up="skip")
    scheduler = Scheduler(app, Clock(), missed_after_ms=6000, every_ms=500)
    try:
        await scheduler.sync()

        async def fired() -> str | None:
            await scheduler.clock.sync(app.redis)
            await scheduler.fire()
            return (await admin.schedule_info(app, "ping")).last_task_id

        return str(await eventually(fired, 20, interval=0.2, what="ping fired"))
    finally:
        await app.aclose()


async def test_schedules_pause_and_resume(app_tq: TaskQueue, dashboard: Callable[..., Any],
                                          redis_url: str, prefix: str) -> None:
    fired = await _store_schedules(redis_url, prefix)
    page = await dashboard(viewport={"width": 1280, "height": 700})
    await page.sign_in()
    p = page.page
    await p.get_by_role("link", name="Schedules").click()
    await p.locator("h1", has_text="Schedules").wait_for()
    daily, ping = p.locator('tr[data-row="daily-report"]'), p.locator('tr[data-row="ping"]')
    await daily.get_by_text("0 6 * * * (Europe/Berlin)").wait_for()
    await ping.get_by_role("link", name=fired).wait_for()  # the last run, a link to its task
    assert await daily.get_by_text("never").count() == 1
    assert await ping.locator(".badge-running").count() == 1
    await page.shot("schedules")

    await ping.get_by_role("button", name="Pause").click()
    await ping.locator(".badge-paused").wait_for()
    assert (await admin.schedule_info(app_tq, "ping")).paused
    assert not (await admin.schedule_info(app_tq, "daily-report")).paused
    await ping.get_by_role("button", name="Resume").click()
    await ping.locator(".badge-running").wait_for()
    assert not (await admin.schedule_info(app_tq, "ping")).paused

    await p.set_viewport_size(PHONE)  # the table turns into cards; nothing scrolls sideways
    await page.page.wait_for_function(f"document.documentElement.scrollWidth <= {PHONE['width']}")
    await ping.get_by_role("link", name=fired).click()
    await p.locator("h1", has_text=fired).wait_for()
    page.assert_clean()


async def test_a_workflow_shows_its_steps_live_and_cancels(
    app_tq: TaskQueue, dashboard: Callable[..., Any], start_worker: Callable[..., Worker]
) -> None:
    add, sleepy = app_tq.registry["add"], app_tq.registry["sleepy"]
    start_worker(app_tq, concurrency=2)
    wf = await start(app_tq, chain(add.message(a=1, b=2), sleepy.message(seconds=60),
                                   add.message(a=3, b=4)))

    async def sleeping() -> bool:
        return [s.state for s in (await wf.status()).steps] == ["succeeded", "running", "waiting"]

    await eventually(sleeping, 20, what="the second step running")
    page = await dashboard(viewport={"width": 1280, "height": 700})
    await page.sign_in()
    p = page.page
    await p.get_by_role("link", name="Workflows").click()
    await p.get_by_label("Workflow id").fill(wf.id)
    await p.get_by_label("Workflow id").press("Enter")
    await p.locator("h1", has_text=wf.id).wait_for()
    rows = [p.locator(f'tr[data-row="{i}"]') for i in range(3)]
    steps = (await wf.status()).steps
    for row, state, step in zip(rows, ("succeeded", "running", "waiting"), steps, strict=True):
        await row.locator(f".badge-{state}").wait_for()
        await row.get_by_role("link", name=step.task_id).wait_for()  # each step's task
    await rows[0].get_by_text("3", exact=True).wait_for()  # its result
    await page.shot("workflow")

    await p.get_by_role("button", name="Cancel workflow").click()
    await p.get_by_role("dialog").get_by_role("button", name="Cancel workflow").click()
    await p.locator("h1 .badge-cancelled").wait_for()
    await rows[2].locator(".badge-cancelled").wait_for()  # the waiting step never runs
    assert (await wf.status()).status == "cancelled"
    assert await p.get_by_role("button", name="Cancel workflow").count() == 0
    await rows[1].locator(".badge-running").wait_for()  # a running step goes on...
    await app_tq.cancel(steps[1].task_id)
    await rows[1].locator(".badge-cancelled").wait_for()  # ...and its end shows live
    await p.set_viewport_size(PHONE)
    await page.page.wait_for_function(f"document.documentElement.scrollWidth <= {PHONE['width']}")
    page.assert_clean()
