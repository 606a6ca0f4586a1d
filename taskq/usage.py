"""Usage errors of taskq's commands (``taskq``, ``taskq worker``, ``taskq api``) as one line on
stderr, ``error: <message> (try '<command> --help')``, instead of click's usage block or
rich's boxes; exit codes unchanged (2 for usage errors)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

EXIT_FAILED = 1


def _click_class(name: str) -> type[Exception]:
    """A class of the click that Typer uses (Typer may vendor its own copy of click), found
    from the one exception Typer exports."""
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == name:
            return cls
    raise LookupError(name)  # pragma: no cover (every click has both)


UsageError = _click_class("UsageError")
ClickException = _click_class("ClickException")


def one_line(exc: Exception, program: str = "taskq") -> str:
    """``error: <message> (try 'taskq cmd --help')`` for a click error, on one line (the
    program's own help when the error does not say which command it is about)."""
    message = " ".join(str(getattr(exc, "format_message", exc.__str__)()).split())
    if not isinstance(exc, UsageError):
        return f"error: {message}"
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else program
    return f"error: {message} (try '{command} --help')"


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def run_one_line(main: Any, name: str, aborted: str, args: Sequence[str] | None,
                 prog_name: str | None, complete_var: str | None, standalone_mode: bool,
                 windows_expand_args: bool, **extra: Any) -> Any:
    """Click's ``main`` (``main``: the class's, bound) with its errors as one line;
    ``aborted``: the line for a Ctrl-C or end of input click turned into an abort."""
    if not standalone_mode:
        return main(args, prog_name, complete_var, False, windows_expand_args, **extra)
    try:
        code = main(args, prog_name, complete_var, False, windows_expand_args, **extra)
    except ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `taskq` or `taskq dead` alone
            exc.show()  # type: ignore[attr-defined]
        else:
            _say(one_line(exc, prog_name or name))
        sys.exit(getattr(exc, "exit_code", EXIT_FAILED))
    except typer.Abort:
        _say(aborted)
        sys.exit(EXIT_FAILED)
    sys.exit(code if isinstance(code, int) else 0)


class OneLineErrors(TyperGroup):
    """A command group (``taskq``): click's errors (a missing argument, an unknown option, a
    bad value) become one line instead of click's usage block; ``taskq`` alone still prints
    the help."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        return run_one_line(super().main, self.name or "taskq",
                            "error: aborted; nothing was changed", args, prog_name,
                            complete_var, standalone_mode, windows_expand_args, **extra)


class OneLineCommand(TyperCommand):
    """A single command (``taskq worker``, ``taskq api``) with one-line usage errors."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        return run_one_line(super().main, self.name or "taskq", "error: aborted", args,
                            prog_name, complete_var, standalone_mode, windows_expand_args,
                            **extra)
