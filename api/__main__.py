"""``python -m api [APP] [--host H] [--port P]``: serve the HTTP API with uvicorn."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer
import uvicorn

from api.main import create_app
from api.settings import ApiSettings
from taskq.errors import ConfigError

cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
_S = ApiSettings()


@cli.command(help="Serve the taskq HTTP API for a TaskQueue.\n\n"
             "Example: TASKQ_API_KEYS=... python -m api myapp.tasks:tq --port 8000")
def main(
    app: Annotated[str, typer.Argument(help="module:attribute of the TaskQueue",
                                       envvar="TASKQ_APP")] = _S.app,
    host: Annotated[str, typer.Option(envvar="TASKQ_HOST")] = _S.host,
    port: Annotated[int, typer.Option(envvar="TASKQ_PORT")] = _S.port,
    log_level: Annotated[str, typer.Option(envvar="TASKQ_LOG_LEVEL")] = _S.log_level,
) -> None:
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not app:
        raise typer.BadParameter("give the TaskQueue as module:attribute (or TASKQ_APP)")
    os.environ["TASKQ_APP"] = app
    try:
        create_app(ApiSettings())  # fail here, with a clear message, on bad settings
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    # Access logs carry method, path and status only: never bodies or headers (API keys).
    uvicorn.run("api.main:app", host=host, port=port, log_level=log_level.lower(),
                proxy_headers=False, server_header=False, timeout_graceful_shutdown=10)


if __name__ == "__main__":
    cli()
