"""Workflow command: taskq workflow ID [--cancel]."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from taskq.cli.common import (
    confirm,
    out,
    print_json,
    print_table,
    run,
    shorten,
    timestamp,
    want_json,
)
from taskq.cli.fit import cell_text
from taskq.cli.queues import JsonOpt, YesOpt
from taskq.cli.visible import visible
from taskq.queue import TaskQueue
from taskq.workflow import Workflow, WorkflowStatus

WfArg = Annotated[str, typer.Argument(help="workflow id, as <queue>:<ms>-w<hex>",
                                      show_default=False)]


def register(app: typer.Typer) -> None:
    app.command("workflow", help=WORKFLOW_HELP)(workflow)


WORKFLOW_HELP = """A workflow (chain, group, chord) and each step's state: waiting (for the
steps before it), queued, running, failed (will retry), succeeded, dead, cancelled, skipped (the
workflow failed first), standby (a failure handler not needed). With --cancel: steps still
waiting never run and steps not yet taken by a worker are removed (asks first unless --yes).

Example: taskq workflow default:1718000000000-w3f2a9c0d1e2b4a5c"""


def workflow(ctx: typer.Context, workflow_id: WfArg, as_json: JsonOpt = False,
             cancel: Annotated[bool, typer.Option(help="cancel the workflow")] = False,
             yes: YesOpt = False) -> None:
    async def read(tq: TaskQueue) -> WorkflowStatus:
        return await Workflow(workflow_id, tq).status()

    status = run(ctx, read)
    if cancel:
        if status.status != "running":
            out.print(f"workflow {workflow_id} is {status.status}: nothing to cancel")
            raise typer.Exit(1)
        confirm(f"Cancel workflow {workflow_id} ({len(status.steps)} steps)?", yes)

        async def stop(tq: TaskQueue) -> WorkflowStatus:
            await Workflow(workflow_id, tq).cancel()
            return await Workflow(workflow_id, tq).status()

        status = run(ctx, stop)
    if want_json(ctx, as_json):
        print_json(status.to_dict())
        return
    out.print(Text.assemble(
        (f"Workflow {visible(status.id)}", "bold"),
        f"  {visible(status.kind)}, {visible(status.status)}"
        f"{'' if status.finished else ' (steps still running)'}, started "
        f"{timestamp(status.created_ms)}"), soft_wrap=True)
    table = Table(title=None)
    for col in ("step", "task", "state", "task id", "result / error"):
        table.add_column(col)
    for s in status.steps:
        detail = s.error if s.error else ("" if s.result is None else shorten(s.result, 60))
        # task text: never markup, control characters shown as escapes
        table.add_row(*(cell_text(c) for c in (
            str(s.index) + (" (handler)" if s.handler else ""), s.task, s.state, s.task_id,
            detail)))
    print_table(table)
