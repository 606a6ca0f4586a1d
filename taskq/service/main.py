"""The service's command line (``taskq api``, ``python -m taskq.service``): serve with uvicorn."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer
import uvicorn

from taskq import url_choice
from taskq.connection import fatal_config_error
from taskq.errors import ConfigError, RedisFailure
from taskq.queue import TaskQueue
from taskq.service.app import create_app
from taskq.service.loader import load_app
from taskq.service.settings import ApiSettings
from taskq.usage import OneLineCommand

EXIT_CONFIG = 78
"""Exit code of a start refused by Redis for good: wrong password, missing ACL permission."""
EXIT_REDIS = 3
"""Exit code of a start with Redis unreachable or not answering."""

cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})
_S = ApiSettings()


@cli.command(cls=OneLineCommand, help="Serve the taskq HTTP API for a TaskQueue.\n\n"
             "Example: TASKQ_API_KEYS=... taskq api myapp.tasks:tq --port 8000")
def main(
    ctx: typer.Context,
    app: Annotated[str, typer.Argument(help="module:attribute of the TaskQueue",
                                       envvar="TASKQ_APP")] = _S.app,
    host: Annotated[str, typer.Option(envvar="TASKQ_HOST")] = _S.host,
    port: Annotated[int, typer.Option(envvar="TASKQ_PORT")] = _S.port,
    log_level: Annotated[str, typer.Option(envvar="TASKQ_LOG_LEVEL")] = _S.log_level,
    redis_url: Annotated[str | None, typer.Option(
        envvar="TASKQ_REDIS_URL",
        help="Redis URL: sets TASKQ_REDIS_URL for this command; a URL given to the TaskQueue in "
             "code wins (an error if they differ)")] = _S.redis_url,
) -> None:
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not app:
        raise typer.BadParameter("give the TaskQueue as module:attribute (or TASKQ_APP)")
    source = ctx.get_parameter_source("redis_url")  # a command-line option, not the envvar
    option_url = redis_url if source is not None and source.name == "COMMANDLINE" else None
    url_choice.apply_option(option_url)  # before the app is imported: its TaskQueue reads it
    try:  # bad settings: a clear message, here
        tq = load_app(app)
        problem = tq.url_choice.option_error(option_url) if option_url else None
        if problem is not None:
            raise ConfigError(problem)
        service = create_app(ApiSettings(app=app), tq)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:  # a wrong password or ACL, an unreachable Redis: one line here, not a traceback
        asyncio.run(_check_redis(tq))
    except RedisFailure as exc:
        fatal = fatal_config_error(exc)
        typer.echo(f"error: cannot start: {fatal or exc}", err=True)
        raise typer.Exit(EXIT_CONFIG if fatal else EXIT_REDIS) from None
    # The app object itself, not an import string: uvicorn then imports nothing by name, so a
    # module of the current directory (a project's own api/main.py) can never stand in for it.
    # Access logs carry method, path and status only: never bodies or headers (API keys).
    uvicorn.run(service, host=host, port=port, log_level=log_level.lower(),
                proxy_headers=False, server_header=False, timeout_graceful_shutdown=10)


async def _check_redis(tq: TaskQueue) -> None:
    try:
        await tq.ready(memory=False)
    finally:
        await tq.aclose()
