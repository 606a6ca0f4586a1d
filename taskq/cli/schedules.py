"""Periodic schedule commands: ``taskq schedules``; ``taskq schedule pause|resume NAME``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from taskq import admin
from taskq.admin import ScheduleInfo
from taskq.cli.common import age, out, print_json, print_table, run, want_json
from taskq.cli.fit import Cell, Col, fitted

JsonOpt = Annotated[bool, typer.Option("--json", help="print the stable JSON shape (docs/cli.md)")]
NameArg = Annotated[str, typer.Argument(help="schedule name", show_default=False)]

app = typer.Typer(help="Pause or resume a periodic schedule (list them with `taskq schedules`).\n\n"
                       "Example: taskq schedule pause daily-report    |    "
                       "taskq schedule resume daily-report",
                  no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.command("schedules", help=SCHEDULES_HELP)(schedules)
    root.add_typer(app, name="schedule")


SCHEDULES_HELP = """Every periodic schedule, as the workers last synced it from code: its task and
queue, when it fires (cron and timezone, or period), its next fire times, its last run's task
id, the tasks it enqueued and the ticks it skipped (paused, catch-up policy, full backlog).

Example: taskq schedules    |    taskq schedules --json"""


def _next(ms: int | None) -> str:
    """The next fire time in UTC: its time and how soon within a day, else its date too."""
    if ms is None:
        return "-"
    at = datetime.fromtimestamp(ms / 1000, UTC)
    if ms - time.time() * 1000 < 86_400_000:
        return f"{at:%H:%M:%S}Z ({age(ms)})"
    return f"{at:%Y-%m-%d %H:%M}Z"


def schedules_table(items: Sequence[ScheduleInfo]) -> Table:
    cols = [Col("schedule", whole=True), Col("task", 5), Col("queue", 6), Col("when", 2),
            Col("next fire (UTC)", 1), Col("last task", whole=True),
            Col("fired", 4, right=True), Col("skipped", 7, right=True), Col("state", 0)]
    rows: list[list[Cell]] = []
    for s in items:
        state = (Text("paused", style="bold yellow") if s.paused
                 else Text("active", style="green"))
        nxt = s.next_fire_ms[0] if s.next_fire_ms else None
        rows.append([s.name, s.task, s.queue, s.schedule,
                     _next(nxt),
                     s.last_task_id or "-", str(s.fired_total), str(s.skipped_total), state])
    return fitted("Schedules", cols, rows, width=out.width,
                  empty="no schedules (none declared, or no worker started since)")


def schedules(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    items = run(ctx, admin.list_schedules)
    if want_json(ctx, as_json):
        print_json({"schedules": [s.to_dict() for s in items]})
    else:
        print_table(schedules_table(items))


@app.command("pause", help="""Pause a schedule: its ticks pass without a task until `taskq
schedule resume NAME` (kept across worker restarts and deploys).

Example: taskq schedule pause daily-report""")
def pause(ctx: typer.Context, name: NameArg, as_json: JsonOpt = False) -> None:
    run(ctx, lambda tq: admin.pause_schedule(tq, name))
    if want_json(ctx, as_json):
        print_json({"schedule": name, "paused": True})
    else:
        out.print(f"schedule {name} paused: its ticks pass without a task; "
                  f"`taskq schedule resume {name}` to undo")


@app.command("resume", help="""Resume a paused schedule: it fires from its next tick on (the
ticks of the pause are not caught up).

Example: taskq schedule resume daily-report""")
def resume(ctx: typer.Context, name: NameArg, as_json: JsonOpt = False) -> None:
    run(ctx, lambda tq: admin.resume_schedule(tq, name))
    if want_json(ctx, as_json):
        print_json({"schedule": name, "paused": False})
    else:
        out.print(f"schedule {name} resumed")
