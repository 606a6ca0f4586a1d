"""Task commands: tasks, task, cancel, enqueue."""

from __future__ import annotations

import os
import shlex
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from taskq import admin, urls
from taskq.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    call_args,
    confirm,
    fail,
    out,
    parse_json,
    print_json,
    print_table,
    print_text,
    run,
    shorten,
    target,
    timestamp,
    want_json,
)
from taskq.cli.fit import details
from taskq.cli.queues import JsonOpt, QueueArg, YesOpt
from taskq.cli.render import tasks_table
from taskq.errors import ConfigError, TaskNotRegistered, TaskValidationError
from taskq.loading import load_app
from taskq.queue import TaskQueue
from taskq.records import TaskRecord, TaskStatus
from taskq.url_choice import DEFAULT_URL, UrlSource

IdArg = Annotated[str, typer.Argument(help="task id, as <queue>:<id>", show_default=False)]
STATUSES = ", ".join(str(s) for s in TaskStatus)


def register(app: typer.Typer) -> None:
    app.command("tasks", help=TASKS_HELP)(tasks)
    app.command("task", help=TASK_HELP)(task)
    app.command("cancel", help=CANCEL_HELP)(cancel)
    app.command("enqueue", help=ENQUEUE_HELP)(enqueue)


TASKS_HELP = f"""The tasks of a queue, by status: queued (waiting), running (delivered), failed
(waiting for a retry), succeeded, dead, cancelled, expired (recent records, newest first). Without
--status: running, queued, failed, then recent ended ones. Statuses: {STATUSES}.

Example: taskq tasks emails --status running --limit 20"""


def tasks(
    ctx: typer.Context,
    name: QueueArg,
    status: Annotated[str | None, typer.Option(help=f"one of: {STATUSES}")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="the most to show")] = 50,
    as_json: JsonOpt = False,
) -> None:
    if status is not None and status not in {str(s) for s in TaskStatus}:
        fail(f"unknown status {status!r}; use one of: {STATUSES}", EXIT_USAGE)
    rows = run(ctx, lambda tq: admin.list_tasks(tq, name, status, limit))
    if want_json(ctx, as_json):
        print_json({"tasks": [r.to_dict() for r in rows]})
    else:
        print_table(tasks_table(rows, f"Tasks of {name}" + (f" ({status})" if status else "")))


TASK_HELP = """Everything known of one task: task name, arguments, status, attempts, timings,
worker, error with traceback, result. Long values are shortened unless --full.

Example: taskq task emails:1718000000000-0"""


def task(ctx: typer.Context, task_id: IdArg, as_json: JsonOpt = False,
         full: Annotated[bool, typer.Option(help="do not shorten long values")] = False) -> None:
    record = run(ctx, lambda tq: admin.task_record(tq, task_id))
    if want_json(ctx, as_json):
        print_json(record.to_dict())
        return
    print_table(record_table(record, full))
    if record.traceback:
        out.print("[bold]traceback[/bold]")
        tb = record.traceback if full else record.traceback[-3000:]
        print_text(tb)


def record_table(r: TaskRecord, full: bool = False) -> Table:
    width = 10_000 if full else 200
    rows: list[tuple[str, Any]] = [
        ("status", str(r.status)), ("queue", r.queue), ("task", r.task or "?"),
        ("arguments", "(not kept)" if r.result_dropped else
         call_args(r.args, r.kwargs, width, width if full else 60) or "(none)"),
        ("attempts", r.attempts), ("deliveries", r.deliveries), ("worker", r.worker),
        ("enqueued", timestamp(r.enqueued_ms)), ("runs at", timestamp(r.run_at_ms)),
        ("started", timestamp(r.started_ms)), ("finished", timestamp(r.finished_ms)),
        ("progress", None if r.progress is None else
         f"{r.progress:.0%} {r.progress_message or ''}".strip()),
        (_error_row(r), _error_text(r)),
        ("result", result_text(r, width)),
        ("entry id", r.entry_id),
    ]
    return details(f"Task {r.id}", [(name, str(value)) for name, value in rows
                                    if value is not None and value != "-"],
                   whole=("entry id",))


def _error_row(r: TaskRecord) -> str:
    """``reason`` for why a task was cancelled or expired (no exception), else ``error``."""
    return "reason" if r.error and not r.error_type else "error"


def _error_text(r: TaskRecord) -> str | None:
    """``Type: message`` of an exception; the message alone when there is no type."""
    if not r.error:
        return None
    return f"{r.error_type}: {r.error}" if r.error_type else r.error


def result_text(r: TaskRecord, width: int) -> str | None:
    """What the result row says: the result of a succeeded task, or that it was not kept."""
    if r.result_dropped:
        return "not kept: Redis was out of memory"
    return shorten(r.result, width) if r.status is TaskStatus.SUCCEEDED else None


class Level(StrEnum):
    """A priority level (see taskq.priority)."""

    high = "high"
    normal = "normal"
    low = "low"


CANCEL_HELP = """Cancel a task: a waiting or delayed one is removed before it runs; a running one
is asked to stop (async tasks are cancelled, a sync task's result is discarded). Asks first
unless --yes.

Example: taskq cancel emails:1718000000000-0 --yes"""


def cancel(ctx: typer.Context, task_id: IdArg, yes: YesOpt = False,
           as_json: JsonOpt = False) -> None:
    record = run(ctx, lambda tq: admin.task_record(tq, task_id))
    if record.terminal:
        fail(f"task {task_id} already ended ({record.status}); nothing to cancel", EXIT_FAILED)
    confirm(f"Cancel task {task_id} ({record.task or '?'}, {record.status})?", yes)
    outcome = run(ctx, lambda tq: admin.cancel(tq, task_id))
    if want_json(ctx, as_json):
        print_json({"task_id": task_id, "outcome": outcome})
        return
    messages = {
        "delayed": "removed before it ran (it was delayed)",
        "queued": "removed before it ran",
        "running": "its worker was asked to stop it",
        "unknown": "it had already ended",
    }
    out.print(f"task {task_id}: {messages.get(outcome, outcome)}", soft_wrap=True)
    if outcome == "unknown":
        raise typer.Exit(EXIT_FAILED)


ENQUEUE_HELP = """Enqueue a task by name. Imports your app (--app module:attr, or TASKQ_APP) to
check the task exists and validate its arguments. TASK is the task's name: `module.function`
unless it was registered with name=..., or any unambiguous short form of it (`send_email` for
`myapp.tasks.send_email`). --args is a JSON array, --kwargs a JSON object.
Redis: the app's URL given in code, else --redis-url / TASKQ_REDIS_URL (a --redis-url that
the code overrides is an error); the app's prefix unless --prefix is given.

Example: taskq enqueue send_email --app myapp.tasks:tq --kwargs '{"to": "a@b.c"}'"""


def enqueue(
    ctx: typer.Context,
    task_name: Annotated[str, typer.Argument(metavar="TASK", help="registered task name",
                                             show_default=False)],
    app_spec: Annotated[str | None, typer.Option("--app", envvar="TASKQ_APP",
                                                 help="the TaskQueue, as module:attribute")] = None,
    args: Annotated[str | None, typer.Option("--args", help="JSON array")] = None,
    kwargs: Annotated[str | None, typer.Option("--kwargs", help="JSON object")] = None,
    delay: Annotated[float | None, typer.Option(min=0, help="run after this many seconds")] = None,
    priority: Annotated[Level | None, typer.Option(
        help="high, normal or low (default: the task's own)")] = None,
    as_json: JsonOpt = False,
) -> None:
    positional = parse_json(args, list, "--args")
    named = parse_json(kwargs, dict, "--kwargs")
    if not app_spec:
        fail("enqueue needs your app: --app module:attribute (or TASKQ_APP)", EXIT_USAGE)
    try:
        tq = load_app(app_spec)
    except ConfigError as exc:
        fail(f"--app: {exc}", EXIT_USAGE)
    t = target(ctx)
    if t.url_given and tq.url != t.redis_url:
        if tq.url_choice.source is UrlSource.CODE:  # the rule: a URL in code wins
            fail(tq.url_choice.option_error(t.redis_url) or "", EXIT_USAGE)
        # (this command only sends the message: a copy of the app on that Redis does it)
        tq = tq.configured(url=t.redis_url)
    if t.prefix_given:
        tq = tq.configured(prefix=t.prefix)
    try:
        registered = tq.resolve_task(task_name)
    except TaskNotRegistered as exc:
        if exc.matches:  # a short name of several tasks: say which
            fail(f"{exc} (tasks of {app_spec})", EXIT_USAGE)
        known = ", ".join(sorted(tq.registry)) or "none"
        fail(f"task {task_name!r} is not registered in {app_spec} (registered: {known})")
    try:
        msg = registered.build(tuple(positional), dict(named),
                               level=priority.value if priority is not None else None)
    except TaskValidationError as exc:
        fail(str(exc), EXIT_USAGE)
    except RecursionError:
        fail(f"invalid arguments for task {registered.name!r}: nested too deeply", EXIT_USAGE)

    async def call(q: TaskQueue) -> str:
        (handle,) = await q.enqueue_many([msg], delay=delay)
        return handle.id

    task_id = run(ctx, call, app=tq)
    if want_json(ctx, as_json):
        print_json({"task_id": task_id, "task": registered.name,
                    "queue": msg.queue or registered.options.queue})
    else:  # never wrapped: the id and the command stay whole, to copy
        out.print(f"enqueued {registered.name} as {task_id}", soft_wrap=True)
        command, hidden = follow_command(tq.url, tq.prefix, task_id)
        out.print(f"follow it: {command}", soft_wrap=True, markup=False)
        if hidden:
            out.print("  (set TASKQ_REDIS_URL to the app's Redis URL: its password is shown "
                      "as ***)", soft_wrap=True)


def follow_command(url: str, prefix: str, task_id: str) -> tuple[str, bool]:
    """A ``taskq task <id>`` command that finds the task on ``url`` under ``prefix``: with
    ``--redis-url`` and ``--prefix`` when a bare ``taskq`` (its environment, else the defaults)
    would look elsewhere; and whether the URL had to be hidden. A URL with a password is never
    printed: the command then sets ``TASKQ_REDIS_URL`` to it with the password as ``***``."""
    words = ["taskq"]
    hidden = False
    if url != (os.environ.get("TASKQ_REDIS_URL") or DEFAULT_URL):
        shown = urls.redact(url)
        if shown != url:
            words.insert(0, f"TASKQ_REDIS_URL={shlex.quote(shown)}")
            hidden = True
        else:
            words += ["--redis-url", shlex.quote(url)]
    if prefix != (os.environ.get("TASKQ_PREFIX") or "taskq"):
        words += ["--prefix", shlex.quote(prefix)]
    return " ".join([*words, "task", shlex.quote(task_id)]), hidden
