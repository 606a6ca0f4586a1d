"""The worker's command line: ``python -m taskq.worker APP [options]`` (also ``taskq worker``
and the repository's ``python -m worker``) runs taskq workers for the TaskQueue at APP."""

from __future__ import annotations

import difflib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import typer

from taskq import jsonlog, priority, url_choice
from taskq.errors import ConfigError
from taskq.loading import load_app
from taskq.queue import TaskQueue
from taskq.usage import OneLineCommand
from taskq.worker.config import WorkerConfig
from taskq.worker.context import OnTransition
from taskq.worker.probe import check as probe
from taskq.worker.process import SUPERVISED_ENV, run_worker
from taskq.worker.settings import LogFormat, QueueOrderOption, WorkerSettings
from taskq.worker.supervisor import Supervisor

log = logging.getLogger("taskq.worker")

cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})
_S = WorkerSettings()


@cli.command(cls=OneLineCommand,
             help="Run workers for a TaskQueue.\n\nExample: taskq worker myapp.tasks:tq "
             "--queues emails,default --concurrency 100 --processes 2")
def run(
    ctx: typer.Context,
    app: Annotated[str, typer.Argument(help="module:attribute of the TaskQueue",
                                       envvar="TASKQ_APP")] = _S.app,
    queues: Annotated[str, typer.Option(help="comma-separated queues (default: all the app's)",
                                        envvar="TASKQ_QUEUES")] = _S.queues,
    queue_order: Annotated[QueueOrderOption | None, typer.Option(
        envvar="TASKQ_QUEUE_ORDER",
        help="with several queues: strict (in the order of --queues) or weighted (the first "
             "queue weighted n, the last 1); default: all read at once")] = _S.queue_order,
    concurrency: Annotated[int, typer.Option(min=1, help="tasks run at once per process",
                                             envvar="TASKQ_CONCURRENCY")] = _S.concurrency,
    processes: Annotated[int, typer.Option(min=1, help="worker processes (supervised)",
                                           envvar="TASKQ_PROCESSES")] = _S.processes,
    prefetch: Annotated[int | None, typer.Option(help="entries held beyond those running",
                                                 envvar="TASKQ_PREFETCH")] = _S.prefetch,
    lease_ms: Annotated[int, typer.Option(help="a dead worker's tasks run again after this",
                                          envvar="TASKQ_LEASE_MS")] = _S.lease_ms,
    grace_s: Annotated[float, typer.Option(help="on SIGTERM, time for running tasks to finish",
                                           envvar="TASKQ_GRACE_S")] = _S.grace_s,
    redis_url: Annotated[str | None, typer.Option(
        envvar="TASKQ_REDIS_URL",
        help="Redis URL: sets TASKQ_REDIS_URL for this command; a URL given to the TaskQueue in "
             "code wins (an error if they differ)")] = _S.redis_url,
    metrics_port: Annotated[int | None, typer.Option(
        min=1, max=65535, envvar="TASKQ_METRICS_PORT",
        help="serve Prometheus metrics on this port (with --processes N: ports P..P+N-1)",
    )] = _S.metrics_port,
    metrics_host: Annotated[str, typer.Option(help="address of the metrics server",
                                              envvar="TASKQ_METRICS_HOST")] = _S.metrics_host,
    log_level: Annotated[str, typer.Option(
        envvar="TASKQ_LOG_LEVEL",
        help="DEBUG, INFO (one line per ended task attempt), WARNING, ...")] = _S.log_level,
    log_format: Annotated[LogFormat, typer.Option(
        envvar="TASKQ_LOG_FORMAT", help="text, or json (one object per line, fields as keys)",
    )] = _S.log_format,
    check: Annotated[bool, typer.Option(
        "--check", help="healthcheck: exit 0 if a live worker of this host heartbeats, else 1",
    )] = False,
    burst: Annotated[bool, typer.Option(
        "--burst", envvar="TASKQ_BURST",
        help="exit 0 once the queues are empty (no entry, no delayed task due within 60 s)",
    )] = _S.burst,
    max_tasks: Annotated[int | None, typer.Option(
        min=1, envvar="TASKQ_MAX_TASKS",
        help="exit 0 after running this many tasks (the supervisor starts a fresh process)",
    )] = _S.max_tasks,
    max_memory: Annotated[int | None, typer.Option(
        min=1, envvar="TASKQ_MAX_MEMORY", metavar="MB",
        help="exit 0 once the process's memory passes this many MB (finishing what it holds)",
    )] = _S.max_memory,
    unknown_grace_s: Annotated[float, typer.Option(
        min=0, envvar="TASKQ_UNKNOWN_GRACE_S",
        help="hand back tasks of names this worker does not know for this long (rolling "
             "deploys) before dead-lettering them as unknown_task; 0: at once",
    )] = _S.unknown_grace_s,
    schedules: Annotated[bool, typer.Option(
        "--schedules/--no-schedules", envvar="TASKQ_SCHEDULES",
        help="sync the app's periodic schedules at start and fire their ticks (--no-schedules: "
             "neither; other workers of the app fire them)",
    )] = _S.schedules,
) -> None:
    jsonlog.configure(log_level, log_format.value)
    if not app:
        raise typer.BadParameter("give the TaskQueue as module:attribute (or TASKQ_APP)")
    recycles = (max_tasks is not None or max_memory is not None) and not burst
    if (processes > 1 or (recycles and os.environ.get(SUPERVISED_ENV) != "1")) and not check:
        # (a recycling worker, even one, runs under the supervisor: it starts a fresh process
        # for one that exited 0 on its --max-tasks/--max-memory limit)
        args = _strip(_strip(sys.argv[1:], "--processes"), "--metrics-port")
        raise typer.Exit(Supervisor(args, processes, grace_s, metrics_port, burst=burst).run())
    source = ctx.get_parameter_source("redis_url")  # a command-line option, not the envvar
    option_url = redis_url if source is not None and source.name == "COMMANDLINE" else None
    url_choice.apply_option(option_url)  # before the app is imported: its TaskQueue reads it
    try:
        tq = load_app(app)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    problem = tq.url_choice.option_error(option_url) if option_url else None
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    if check:
        code, message = probe(tq)
        typer.echo(message, err=code != 0)
        raise typer.Exit(code)
    names = tuple(q.strip() for q in queues.split(",") if q.strip()) or tuple(tq.queues)
    warn_unused_queues(tq, names if queues.strip() else ())
    config = WorkerConfig(
        queues=names or ("default",),
        concurrency=concurrency,
        queue_order=queue_order.value if queue_order is not None else None,
        prefetch=prefetch,
        lease_ms=lease_ms,
        renew_every_ms=max(100, lease_ms // 3),
        grace_s=grace_s,
        burst=burst,
        max_tasks=max_tasks,
        max_memory_mb=max_memory,
        unknown_grace_s=unknown_grace_s,
        schedules=schedules,
    )
    metrics_at = (metrics_host, metrics_port) if metrics_port else None
    hooks = ctx.obj if isinstance(ctx.obj, _Hooks) else _Hooks()
    raise typer.Exit(run_worker(tq, config, metrics_at, on_transition=hooks.on_transition))


def warn_unused_queues(tq: TaskQueue, names: Sequence[str]) -> list[str]:
    """Log a WARNING for each queue of ``--queues`` that no registered task uses (a typo, or
    a module the app does not import): the worker reads it, but nothing of this app is ever
    enqueued there. A lane (``emails!high``) counts as its queue. Returns those names."""
    used = set(tq.queues)
    unused = [q for q in names if priority.base(q) not in used]
    for q in unused:
        close = difflib.get_close_matches(q, sorted(used), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        log.warning("no registered task uses queue %r of --queues (tasks of this app use: "
                    "%s)%s", q, ", ".join(sorted(used)) or "none", hint)
    return unused


@dataclass(frozen=True, slots=True)
class _Hooks:
    """What :func:`main` passes to the command through click's context object."""

    on_transition: OnTransition | None = None


def main(argv: Sequence[str] | None = None, *,
         on_transition: OnTransition | None = None, prog_name: str = "taskq worker") -> None:
    """Run the command line on ``argv`` (default: the process's arguments); exits.
    ``on_transition``: the worker's transition hook (see :class:`taskq.worker.core.Worker`),
    for a single worker process (``--processes 1``); the fault suite installs its crash points
    this way. ``prog_name``: the command named in usage lines."""
    cli(args=None if argv is None else list(argv), obj=_Hooks(on_transition),
        prog_name=prog_name)


def _strip(args: list[str], option: str) -> list[str]:
    """``args`` without ``option`` and its value (the supervisor gives each child its own)."""
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == option:
            skip = True
            continue
        if a.startswith(option + "="):
            continue
        out.append(a)
    return out


if __name__ == "__main__":
    main()
