"""Usage errors as one line on stderr (``error: ...``, with the hint to ``--help``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from taskq.cli.common import EXIT_FAILED, err


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


class OneLineErrors(TyperGroup):
    """The root command: click's errors (a missing argument, an unknown option, a bad value)
    become one line instead of click's usage block; ``taskq`` alone still prints the help."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args,
                                **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args,
                                **extra)
        except ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # `taskq` or `taskq dead` alone
                exc.show()  # type: ignore[attr-defined]
            else:
                err.print(one_line(exc, prog_name or self.name or "taskq"), markup=False,
                          soft_wrap=True)
            sys.exit(getattr(exc, "exit_code", EXIT_FAILED))
        except typer.Abort:
            err.print("error: aborted; nothing was changed", markup=False)
            sys.exit(EXIT_FAILED)
        sys.exit(code if isinstance(code, int) else 0)
