"""Text from tasks shown as text: control characters become visible escapes before printing.

A task's error, traceback, arguments, result or progress message (and a dead letter's) are
written by task code, or by whoever can enqueue. Printed raw, ``ESC [2J`` clears the operator's
screen, ``ESC ]0;...`` retitles the terminal, ``ESC ]8;;url`` makes a hidden link, ``CR``
overwrites a line, and a right-to-left override reorders what is read. Rich escapes its own
markup (``[bold]``) when told to, but passes these through. :func:`visible` writes each as
``\\x1b``, ``\\r``, ``\\u202e``; only newlines and tabs are kept (a traceback needs them).
Every place the CLI prints such text goes through it: :func:`taskq.cli.fit.cell_text` for
table cells, :func:`taskq.cli.common.print_text` for tracebacks.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 but tab and newline, DEL, C1 (8-bit CSI, OSC...)
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidirectional marks and overrides
    "\u2028\u2029]"  # line and paragraph separators
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every control character but newline and tab written as an escape
    (``"\\x1b[2J"`` for ESC [2J): safe to print on a terminal."""
    return _UNSAFE.sub(_escape, text)
