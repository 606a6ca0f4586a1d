"""What every command shares: connection options, running an admin call, exit codes, output."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import typer
from redis.exceptions import ConnectionError as RawConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RawTimeoutError
from rich.console import Console, RenderableType

from taskq import codec
from taskq.cli.visible import visible
from taskq.errors import (
    ConfigError,
    DeadLetterNotFound,
    QueueNotFound,
    RedisAuthError,
    RedisCommandError,
    RedisPermissionError,
    RedisTimeout,
    RedisUnavailable,
    TaskNotFound,
    TaskNotRegistered,
    TaskqError,
    TaskValidationError,
)
from taskq.queue import TaskQueue

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REDIS = 3

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 not found (queue, task, dead letter) or the operation failed or was "
    "declined; 2 usage error, bad JSON or a malformed Redis URL; 3 Redis unreachable, or "
    "refusing the password or the ACL user's permissions."
)

PIPED_WIDTH = 160
"""Columns of output that is not a terminal (pipes, CI) and no COLUMNS: tables need room."""

out = Console(highlight=False, soft_wrap=False, width=PIPED_WIDTH)
err = Console(stderr=True, highlight=False)


def output_width() -> int:
    """The width of this run's output: ``COLUMNS``, else the terminal's, else 160 (piped)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if _isatty(sys.stdout):
        return shutil.get_terminal_size().columns
    return PIPED_WIDTH


def configure_output() -> None:
    """Size :data:`out` for this run (read at each run, not at import: tests run many)."""
    out.width = output_width()


def print_table(renderable: RenderableType) -> None:
    """Print a table without cropping its lines to the width: a table wider than the terminal
    (an id longer than the screen) keeps its ids whole (see :mod:`taskq.cli.fit`)."""
    out.print(renderable, crop=False)


@dataclass(frozen=True, slots=True)
class Target:
    """Where the commands look: the Redis URL and key prefix (global options). ``url_given``:
    ``--redis-url`` was on the command line (not only in ``TASKQ_REDIS_URL``)."""

    redis_url: str
    prefix: str
    prefix_given: bool = False
    url_given: bool = False
    json: bool = False

    def app(self) -> TaskQueue:
        """A TaskQueue for the read commands (they never import the app, so no URL in code
        applies: ``--redis-url``, else ``TASKQ_REDIS_URL``, else the default)."""
        return TaskQueue(self.redis_url, prefix=self.prefix, socket_timeout=5.0)


def target(ctx: typer.Context) -> Target:
    obj = ctx.find_root().obj
    if not isinstance(obj, Target):  # a command module used on its own (tests)
        return Target("redis://localhost:6379/0", "taskq")
    return obj


def want_json(ctx: typer.Context, as_json: bool) -> bool:
    """JSON output: ``--json`` after the command, or before it (``taskq --json queues``)."""
    return as_json or target(ctx).json


def print_text(text: str) -> None:
    """Text from a task (a traceback) as it is, but never as markup nor with its control
    characters (:func:`taskq.cli.visible.visible`)."""
    out.print(visible(text), markup=False, highlight=False)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    err.print(f"error: {visible(message)}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def run(ctx: typer.Context, call: Callable[[TaskQueue], Awaitable[T]],
        app: TaskQueue | None = None) -> T:
    """Run ``call`` with a TaskQueue (closed after), turning errors into one line + exit code."""
    t = target(ctx)
    try:
        tq = app or t.app()
    except ConfigError as exc:  # e.g. a malformed Redis URL
        fail(str(exc), EXIT_USAGE)

    async def main() -> T:
        try:
            return await call(tq)
        finally:
            await tq.aclose()

    try:
        return asyncio.run(main())
    except (QueueNotFound, TaskNotFound, DeadLetterNotFound) as exc:
        fail(str(exc), EXIT_FAILED)
    except (RedisUnavailable, RedisTimeout, RedisAuthError, RedisPermissionError) as exc:
        fail(str(exc), EXIT_REDIS)
    except RedisCommandError as exc:
        fail(f"Redis refused the command: {exc}", EXIT_FAILED)
    except TaskNotRegistered as exc:  # a short --task name of several tasks: a usage error
        fail(str(exc), EXIT_USAGE if exc.matches else EXIT_FAILED)
    except TaskValidationError as exc:  # e.g. an int beyond 64 bits, found when encoding
        fail(str(exc), EXIT_USAGE)
    except TaskqError as exc:
        fail(str(exc), EXIT_FAILED)
    except (RawConnectionError, RawTimeoutError) as exc:  # from a client not made by taskq
        fail(f"cannot reach Redis: {type(exc).__name__}: {exc}", EXIT_REDIS)
    except RedisError as exc:  # any other redis-py error: still one line
        fail(f"Redis error: {type(exc).__name__}: {exc}", EXIT_FAILED)
    except ValueError as exc:  # e.g. a malformed Redis URL
        fail(str(exc), EXIT_USAGE)


def print_json(value: Any) -> None:
    """``value`` as strict JSON: bytes as ``{"$bytes": base64}``, NaN and infinities as null
    (:func:`taskq.codec.json_safe`)."""
    try:
        text = json.dumps(codec.json_safe(value), indent=2, sort_keys=False, allow_nan=False,
                          default=_json_default)
    except RecursionError:
        fail("a value is nested too deeply to print as JSON")
    sys.stdout.write(text + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return repr(value)


def parse_json(text: str | None, kind: type, what: str) -> Any:
    """Parse a --args/--kwargs value; a bad one is a usage error (exit 2)."""
    if text is None or text == "":
        return kind()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{what} is not valid JSON: {exc.msg} at position {exc.pos}", EXIT_USAGE)
    except RecursionError:
        fail(f"{what} is nested too deeply", EXIT_USAGE)
    if not isinstance(value, kind):
        fail(f"{what} must be a JSON {'array' if kind is list else 'object'}, "
             f"got {type(value).__name__}", EXIT_USAGE)
    return value


def shorten(value: Any, width: int = 60) -> str:
    """A one-line rendering of a value, cut to ``width`` characters (bytes as
    ``{"$bytes": base64}``, see :func:`taskq.codec.json_safe`)."""
    try:
        text = json.dumps(codec.json_safe(value), default=_json_default, ensure_ascii=False)
    except RecursionError:
        text = f"(nested {codec.nesting(value)} levels deep)"
    return text if len(text) <= width else text[: width - 1] + "…"


def clip(text: str, width: int = 60) -> str:
    """Plain text on one line, cut to ``width`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def call_args(args: list[Any], kwargs: dict[str, Any], width: int = 60,
              value_width: int = 40) -> str:
    """``1, "x", key=value`` with each value cut to ``value_width`` and all to ``width``."""
    parts = [shorten(a, value_width) for a in args]
    parts += [f"{k}={shorten(v, value_width)}" for k, v in kwargs.items()]
    text = ", ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def age(ms: int | None, now_ms: int | None = None) -> str:
    """'12s ago' / 'in 3m' for a time in ms since the epoch."""
    if ms is None:
        return "-"
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    delta = (now - ms) / 1000
    text = duration(abs(delta))
    return f"{text} ago" if delta >= 0 else f"in {text}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def timestamp(ms: int | None) -> str:
    if ms is None:
        return "-"
    try:
        iso = datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    except (OverflowError, ValueError, OSError):  # written by something else than taskq
        return f"{ms} ms since the epoch (out of range)"
    return f"{iso} UTC ({age(ms)})"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no stream, or a closed one
        return False


def interactive() -> bool:
    """Whether someone can answer a question: stdin is a terminal (not a pipe, a file, null)."""
    return _isatty(sys.stdin)


def confirm(question: str, yes: bool) -> None:
    """Ask before a destructive change unless --yes. Declining exits 1; so does no terminal,
    at once (a pipe is never read: `echo y | taskq purge q` must not purge, and a silent pipe
    must not hang)."""
    if yes:
        return
    if not interactive():
        fail("refusing without a terminal to confirm on: pass --yes to run without asking; "
             "nothing was changed")
    try:
        agreed = typer.confirm(question, default=False)
    except typer.Abort:
        fail("no confirmation (pass --yes to run without asking); nothing was changed")
    if not agreed:
        fail("declined; nothing was changed")
