"""``taskq dead list|show|replay|purge``: the dead letters of a queue."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

from taskq import admin
from taskq.admin import DeadLetter, Replay
from taskq.cli.common import (
    EXIT_USAGE,
    call_args,
    confirm,
    fail,
    out,
    print_json,
    print_table,
    print_text,
    run,
    timestamp,
    want_json,
)
from taskq.cli.fit import details
from taskq.cli.queues import JsonOpt, QueueArg, YesOpt
from taskq.cli.render import dead_table
from taskq.errors import DeadLetterNotFound
from taskq.queue import TaskQueue

app = typer.Typer(
    no_args_is_help=True,
    help="Dead letters: tasks that failed for good (attempts used up, not retryable, "
    "unknown task, bad payload, worker lost).\n\nExample: taskq dead list emails; "
    "taskq dead replay emails --all --yes",
)

IdsArg = Annotated[list[str] | None, typer.Argument(
    help="dead letter ids (or task ids) from `taskq dead list`", show_default=False)]
AllOpt = Annotated[bool, typer.Option("--all", help="every dead letter of the queue")]
TaskOpt = Annotated[str | None, typer.Option(
    "--task", help="only dead letters of this task (full name, or a short one: send_email)")]


@app.command("list", help="The newest dead letters of a queue.\n\n"
             "Example: taskq dead list emails --task send_email --limit 20")
def list_(ctx: typer.Context, name: QueueArg, task: TaskOpt = None,
          limit: Annotated[int, typer.Option(min=1, help="the most to show")] = 50,
          as_json: JsonOpt = False) -> None:
    letters = run(ctx, lambda tq: admin.dead_letters(tq, name, limit, task))
    if want_json(ctx, as_json):
        print_json({"dead_letters": [d.to_dict() for d in letters]})
    else:
        print_table(dead_table(letters))


async def find(tq: TaskQueue, name: str, ident: str) -> DeadLetter:
    """A dead letter by its id, or by the id of its task (the newest one)."""
    letter = await admin.dead_letter(tq, name, ident)
    if letter is None and ":" in ident:
        for d in await admin.dead_letters(tq, name, limit=100_000):
            if d.task_id == ident:
                return d
    if letter is None:
        raise DeadLetterNotFound(name, ident)
    return letter


@app.command("show", help="One dead letter in full: task, arguments, reason, error, "
             "traceback.\n\nExample: taskq dead show emails 1718000000000-0")
def show(ctx: typer.Context, name: QueueArg,
         dead_id: Annotated[str, typer.Argument(help="dead letter id or task id",
                                                show_default=False)],
         as_json: JsonOpt = False) -> None:
    letter = run(ctx, lambda tq: find(tq, name, dead_id))
    if want_json(ctx, as_json):
        print_json(letter.to_dict())
        return
    rows = [
        ("dead id", letter.id), ("task id", letter.task_id), ("task", letter.task),
        ("reason", letter.reason), ("error", f"{letter.error_type}: {letter.error}"),
        ("attempts", letter.attempts),
        ("arguments", call_args(letter.args, letter.kwargs, 400) if letter.payload_ok
         else "(payload cannot be decoded)"),
        ("enqueued", timestamp(letter.enqueued_ms)), ("failed", timestamp(letter.failed_ms)),
        ("worker", letter.worker or "-"), ("stream entry", letter.entry),
    ]
    print_table(details(f"Dead letter {letter.id} of {name}",
                 [(field, str(value)) for field, value in rows],
                 whole=("dead id", "task id", "stream entry")))
    if letter.traceback:
        out.print("[bold]traceback[/bold]")
        print_text(letter.traceback)


def _selection(ctx: typer.Context, name: str, ids: list[str] | None, all_: bool,
               task: str | None) -> tuple[list[str] | None, str]:
    """The dead ids chosen (None = all) and a description for the confirmation."""
    if ids and all_:
        fail("give dead letter ids or --all, not both", EXIT_USAGE)
    if not ids and not all_ and task is None:
        fail("say which dead letters: ids, --all, or --task TASK", EXIT_USAGE)
    if ids:
        async def resolve(tq: TaskQueue) -> list[str]:
            return [(await find(tq, name, i)).id for i in ids]

        return run(ctx, resolve), f"{len(ids)} dead letter(s)"
    info = run(ctx, lambda tq: admin.queue_info(tq, name))
    what = f"the dead letters of task {task!r}" if task else f"all {info.dead} dead letters"
    return None, what


def _task(ctx: typer.Context, name: str, task: str | None) -> str | None:
    """The full task name of ``--task`` (a short one resolved among the queue's dead letters;
    several matches: exit 2 with their names)."""
    return run(ctx, lambda tq: admin.resolve_dead_task(tq, name, task)) if task else None


def _none_matched(name: str, task: str | None, verb: str) -> NoReturn:
    which = f" of task {task!r}" if task else ""
    fail(f"no dead letter{which} in queue {name!r} matched; nothing was {verb}")


@app.command("replay", help="Enqueue dead letters again with their attempts reset (same task "
             "id). Asks first unless --yes.\n\nExample: taskq dead replay emails --all --yes; "
             "taskq dead replay emails 1718000000000-0")
def replay(ctx: typer.Context, name: QueueArg, ids: IdsArg = None, all_: AllOpt = False,
           task: TaskOpt = None, yes: YesOpt = False, as_json: JsonOpt = False) -> None:
    task = _task(ctx, name, task)
    chosen, what = _selection(ctx, name, ids, all_, task)
    confirm(f"Replay {what} of queue {name!r}?", yes)
    r = run(ctx, lambda tq: admin.replay_dead_letters(tq, name, chosen, task))
    left = bool(r.workflow_steps or r.kept)
    if want_json(ctx, as_json):
        print_json(r.to_dict())
    elif r.replayed or left:
        again = "; they are queued again" if r.replayed else ""
        out.print(f"replayed {r.replayed} dead letter(s) of {name}{again}")
        _say_left(r)
    if not r.replayed and not left:
        _none_matched(name, task, "replayed")


def _say_left(r: Replay) -> None:
    """The dead letters a replay left in place, and why."""
    for k in r.kept:
        out.print(f"kept dead letter {k.id} (task {k.task_id}): {k.reason}; replay it once "
                  "that task has ended", markup=False, highlight=False)
    if r.workflow_steps:
        shown = ", ".join(r.workflow_steps[:5]) + (", ..." if len(r.workflow_steps) > 5 else "")
        out.print(f"not replayed: {len(r.workflow_steps)} dead letter(s) of workflow steps "
                  f"({shown}): a step's death already failed its workflow, and a replay "
                  "cannot resume it; start the workflow again (the dead letters stay: purge "
                  "them when done)", markup=False, highlight=False)


@app.command("purge", help="Delete dead letters for good. Asks first unless --yes.\n\n"
             "Example: taskq dead purge emails --task send_email --yes")
def purge(ctx: typer.Context, name: QueueArg, ids: IdsArg = None, all_: AllOpt = False,
          task: TaskOpt = None, yes: YesOpt = False, as_json: JsonOpt = False) -> None:
    task = _task(ctx, name, task)
    chosen, what = _selection(ctx, name, ids, all_, task)
    confirm(f"Delete {what} of queue {name!r} for good?", yes)
    n = run(ctx, lambda tq: admin.purge_dead(tq, name, chosen, task))
    if want_json(ctx, as_json):
        print_json({"queue": name, "purged": n})
    elif n:
        out.print(f"deleted {n} dead letter(s) of {name}")
    if not n:
        _none_matched(name, task, "deleted")
