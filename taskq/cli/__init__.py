"""The ``taskq`` command: inspect and operate queues, dead letters and workers.

One Typer app; one module per command group (queues, tasks, dead, processes). Read-only commands
need only Redis (never the user's code); ``enqueue`` imports the app named by ``--app``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from taskq.cli import dead, processes, queues, schedules, tasks, workflows
from taskq.cli.common import EXIT_CODES_HELP, Target, configure_output
from taskq.cli.usage import OneLineErrors

HELP = """Operate taskq queues: inspect backlogs, workers and failures; pause, purge, replay.

Start with `taskq queues` (the overview), then `taskq queue NAME`, `taskq workers`,
`taskq dead list NAME`. Every read command takes --json, before or after the command (shapes
in docs/cli.md); destructive commands ask first unless --yes, and refuse without a terminal.

Example: TASKQ_REDIS_URL=redis://localhost:6379/0 taskq queues"""

app = typer.Typer(
    name="taskq",
    cls=OneLineErrors,
    help=HELP,
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def connection(
    ctx: typer.Context,
    redis_url: Annotated[str, typer.Option(
        envvar="TASKQ_REDIS_URL", help="Redis URL, e.g. redis://:password@host:6379/0",
        show_default=True)] = "redis://localhost:6379/0",
    prefix: Annotated[str | None, typer.Option(
        envvar="TASKQ_PREFIX", help="key prefix of your TaskQueue  [default: taskq]",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="JSON output for the command (as its own --json does)")] = False,
) -> None:
    configure_output()
    # given on the command line: it stands for TASKQ_REDIS_URL in this command (a URL given in
    # code still wins for `enqueue --app`, `worker` and `api`: see taskq.url_choice)
    source = ctx.get_parameter_source("redis_url")
    url_given = source is not None and source.name == "COMMANDLINE"
    ctx.obj = Target(redis_url, prefix or "taskq", prefix_given=prefix is not None,
                     url_given=url_given, json=as_json)


queues.register(app)
tasks.register(app)
app.add_typer(dead.app, name="dead")
processes.register(app)
schedules.register(app)
workflows.register(app)


def main() -> None:
    """Console entry point (``taskq``)."""
    app()


__all__ = ["app", "main"]
