"""Queue commands: queues, queue, pause, resume, purge, watch."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live

from taskq import admin, priority
from taskq.cli import render
from taskq.cli.common import (
    EXIT_USAGE,
    confirm,
    err,
    fail,
    out,
    print_json,
    print_table,
    run,
    target,
    want_json,
)
from taskq.cli.visible import visible
from taskq.errors import QueueNotFound
from taskq.queue import TaskQueue

JsonOpt = Annotated[bool, typer.Option("--json", help="print the stable JSON shape (docs/cli.md)")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
QueueArg = Annotated[str, typer.Argument(help="queue name", show_default=False)]


def register(app: typer.Typer) -> None:
    app.command("queues", help=QUEUES_HELP)(queues)
    app.command("queue", help=QUEUE_HELP)(queue)
    app.command("pause", help=PAUSE_HELP)(pause)
    app.command("resume", help=RESUME_HELP)(resume)
    app.command("purge", help=PURGE_HELP)(purge)
    app.command("watch", help=WATCH_HELP)(watch)


QUEUES_HELP = """Every queue with its figures: stream length, in flight (delivered, unfinished),
waiting (not yet delivered), delayed, dead letters, consumers, age of the oldest waiting task
and completions over the last minute.

Example: taskq queues    |    taskq --redis-url redis://:pw@host:6379/0 queues --json"""


def queues(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    infos = run(ctx, admin.list_queues)
    if want_json(ctx, as_json):
        print_json({"queues": [q.to_dict() for q in infos]})
    else:
        print_table(render.queues_table(infos))


QUEUE_HELP = """One queue in depth: its figures, consumers (idle time, in flight), the next
delayed tasks and the recent failures.

Example: taskq queue emails    |    taskq queue emails --json"""


def queue(ctx: typer.Context, name: QueueArg, as_json: JsonOpt = False,
          limit: Annotated[int, typer.Option(min=1, help="rows per section")] = 10) -> None:
    async def call(tq: TaskQueue) -> dict[str, Any]:
        info = await admin.queue_info(tq, name)
        return {
            "queue": info,
            "consumers": await admin.consumers(tq, name),
            "next_delayed": await admin.next_delayed(tq, name, limit),
            "recent_failures": await admin.recent_failures(tq, name, limit),
        }

    r = run(ctx, call)
    if want_json(ctx, as_json):
        print_json({"queue": r["queue"].to_dict(),
                    **{k: [v.to_dict() for v in r[k]]
                       for k in ("consumers", "next_delayed", "recent_failures")}})
        return
    print_table(render.queue_summary(r["queue"]))
    print_table(render.consumers_table(r["consumers"]))
    print_table(render.delayed_table(r["next_delayed"]))
    print_table(render.failures_table(r["recent_failures"]))


PAUSE_HELP = """Pause a queue: workers stop taking new tasks from it within about 1.5 s; running
tasks finish; enqueueing still works (tasks wait). Undo with `taskq resume`. A name that is no
queue yet is paused too (pausing before the deploy that brings its tasks is legitimate), with a
warning naming the known queues and the closest one, in case it is a typo.

Example: taskq pause emails"""


def _warn_unknown(unknown: QueueNotFound | None, done: str) -> None:
    if unknown is not None:
        err.print(f"warning: {visible(str(unknown))}; {done}", markup=False, highlight=False,
                  soft_wrap=True)


def pause(ctx: typer.Context, name: QueueArg, as_json: JsonOpt = False) -> None:
    unknown = run(ctx, lambda tq: admin.pause(tq, name))
    _warn_unknown(unknown, "paused anyway: its workers will take nothing until "
                           f"`taskq resume {name}`")
    if want_json(ctx, as_json):
        print_json({"queue": name, "paused": True})
    else:
        out.print(f"queue {name} paused: workers take no new tasks from it (running ones "
                  f"finish); `taskq resume {name}` to undo")


RESUME_HELP = """Resume a paused queue: workers take tasks from it again.

Example: taskq resume emails"""


def resume(ctx: typer.Context, name: QueueArg, as_json: JsonOpt = False) -> None:
    unknown = run(ctx, lambda tq: admin.resume(tq, name))
    _warn_unknown(unknown, "nothing to resume")
    if want_json(ctx, as_json):
        print_json({"queue": name, "paused": False})
    else:
        out.print(f"queue {name} resumed")


PURGE_HELP = """Delete every WAITING task of a queue (not yet delivered, or delayed), in each of
its priority lanes (high, normal, low; give `QUEUE!high` for one lane only), and release the
unique keys of the tasks removed. Tasks delivered to a worker (running, or held by a worker
that died until another reclaims them) are untouched; dead letters are kept (see `taskq dead
purge`). Asks first unless --yes.

Example: taskq purge emails --yes"""


def purge(ctx: typer.Context, name: QueueArg, yes: YesOpt = False,
          as_json: JsonOpt = False) -> None:
    lanes = run(ctx, lambda tq: admin.purge_lanes(tq, name))
    total = sum(i.lag + i.delayed for i in lanes)
    parts = "; ".join(f"{priority.level(i.name)}: {i.lag} not yet delivered, "
                      f"{i.delayed} delayed" for i in lanes)
    running = sum(i.in_flight for i in lanes)
    confirm(f"Delete the {total} waiting tasks of queue {name!r} ({parts})? Their unique "
            f"keys are released; the {running} tasks delivered to workers and the dead "
            "letters are kept.", yes)
    n = run(ctx, lambda tq: admin.purge_queue(tq, name))
    if want_json(ctx, as_json):
        print_json({"queue": name, "purged": n})
    else:
        out.print(f"purged {n} waiting tasks from queue {name}")


WATCH_HELP = """A live view of queues and workers, refreshed every --interval seconds, until
Ctrl-C (or for --seconds).

Example: taskq watch --interval 1"""


WATCH_RUNNING = 20  # running tasks with progress shown by `taskq watch`


def watch(
    ctx: typer.Context,
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between refreshes")] = 2.0,
    seconds: Annotated[float | None, typer.Option(min=0, help="stop after this long")] = None,
) -> None:
    if target(ctx).json:
        fail("watch is a live view and has no --json output; use `taskq --json queues`",
             EXIT_USAGE)
    async def call(tq: TaskQueue) -> None:
        deadline = None if seconds is None else time.monotonic() + seconds

        async def view() -> Group:
            queues_, workers = await asyncio.gather(admin.list_queues(tq),
                                                    admin.list_workers(tq))
            busy = [q.name for q in queues_ if q.in_flight]
            running = await asyncio.gather(*(admin.list_tasks(tq, q, "running", WATCH_RUNNING)
                                             for q in busy))
            progress = [r for rows in running for r in rows if r.progress is not None]
            return Group(render.queues_table(queues_), render.workers_table(workers),
                         render.progress_table(progress[:WATCH_RUNNING]),
                         f"[dim]{time.strftime('%H:%M:%S')}  refresh {interval:g}s  "
                         f"Ctrl-C to quit[/dim]")

        with Live(await view(), console=out, auto_refresh=False) as live:
            while deadline is None or time.monotonic() < deadline:
                pause_s = interval if deadline is None else min(
                    interval, max(0.0, deadline - time.monotonic()))
                await asyncio.sleep(pause_s)
                live.update(await view(), refresh=True)

    try:
        run(ctx, call)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
