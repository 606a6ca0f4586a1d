"""workers (inspection), and the process commands ``worker`` and ``api`` (exec'd, so the CLI
never imports the worker or the HTTP service)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from taskq import admin
from taskq.cli.common import EXIT_USAGE, fail, out, print_json, print_table, run, target, want_json
from taskq.cli.queues import JsonOpt
from taskq.cli.render import workers_table
from taskq.queue import TaskQueue

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True,
                "help_option_names": []}


def register(app: typer.Typer) -> None:
    app.command("workers", help=WORKERS_HELP)(workers)
    app.command("worker", help=WORKER_HELP, context_settings=PASS_THROUGH,
                add_help_option=False)(worker)
    app.command("api", help=API_HELP, context_settings=PASS_THROUGH,
                add_help_option=False)(api)


WORKERS_HELP = """Workers: host, pid, queues, concurrency, in flight, processed, failed, last
heartbeat. Workers whose heartbeat expired are shown as DEAD, then forgotten (their unfinished
tasks are taken over by live workers after the lease); --keep-dead to only show them.

Example: taskq workers    |    taskq workers --json"""


def workers(ctx: typer.Context, as_json: JsonOpt = False,
            keep_dead: Annotated[bool, typer.Option(help="do not forget dead workers")] = False,
            ) -> None:
    async def call(tq: TaskQueue) -> tuple[list[admin.WorkerInfo], int]:
        found = await admin.list_workers(tq)
        cleaned = 0 if keep_dead else await admin.clean_dead_workers(tq)
        return found, cleaned

    found, cleaned = run(ctx, call)
    if want_json(ctx, as_json):
        print_json({"workers": [w.to_dict() for w in found], "cleaned": cleaned})
        return
    print_table(workers_table(found))
    if cleaned:
        out.print(f"forgot {cleaned} dead worker(s)")


WORKER_HELP = """Run worker processes (same as `python -m taskq.worker`); every option is passed on.
`taskq worker --help` shows them.

Example: taskq worker myapp.tasks:tq --queues emails,default --concurrency 50 --processes 2"""


def worker(ctx: typer.Context) -> None:
    _exec(ctx, "taskq.worker")  # taskq's own, never a `worker` module of the current directory


API_HELP = """Run the HTTP API (taskq's own service, `python -m taskq.service`); every option is
passed on. `taskq api --help` shows them.

Example: taskq api myapp.tasks:tq --port 8000"""


def api(ctx: typer.Context) -> None:
    _exec(ctx, "taskq.service", isolated=True)


def _exec(ctx: typer.Context, module: str, *, isolated: bool = False) -> None:
    """Replace this process by ``python -m module`` with the command's arguments. ``isolated``:
    with ``-P``, so the current directory cannot shadow taskq's own modules (the user's app is
    still found: :func:`taskq.loading.load_app` adds the directory when it loads it)."""
    t = target(ctx)
    if t.json:
        fail(f"`taskq {ctx.info_name}` runs a process and has no --json output", EXIT_USAGE)
    # --redis-url goes on as the command's own option (same rule, same error on a conflict)
    url = ["--redis-url", t.redis_url] if t.url_given else []
    if t.prefix_given:
        os.environ["TASKQ_PREFIX"] = t.prefix
    sys.stdout.flush()
    sys.stderr.flush()
    flags = ["-P"] if isolated else []
    os.execv(sys.executable, [sys.executable, *flags, "-m", module, *url, *ctx.args])
