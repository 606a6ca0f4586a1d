"""Text that task code (or whoever writes to Redis) provides: error messages, tracebacks,
progress messages, task names. Made safe to store (bounded, valid UTF-8: msgpack refuses a
lone surrogate) and to write in a text log line (one line, no terminal control sequences).

The checks cost a C-level scan of the text and copy nothing when it is plain.
"""

from __future__ import annotations

from taskq.deadletter import ERROR_LIMIT, TRACEBACK_LIMIT

__all__ = ["ERROR_LIMIT", "LOG_LIMIT", "PROGRESS_LIMIT", "TRACEBACK_LIMIT", "error_text",
           "for_log", "storable", "storable_tail"]

# ERROR_LIMIT: characters of an error message kept (the head), in records as in dead letters;
# TRACEBACK_LIMIT: characters of a traceback kept (the tail: where it was raised).
PROGRESS_LIMIT = 1_000
"""Characters of a progress message kept."""
LOG_LIMIT = 200
"""Characters of task-provided text in one log line."""


def storable(text: str, limit: int = ERROR_LIMIT) -> str:
    """The first ``limit`` characters of ``text``, lone surrogates as ``\\udxxx``."""
    if len(text) > limit:
        text = text[:limit]
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def storable_tail(text: str, limit: int = TRACEBACK_LIMIT) -> str:
    """The last ``limit`` characters of ``text``, lone surrogates as ``\\udxxx``."""
    return storable(text[-limit:], limit)


def error_text(exc: BaseException) -> str:
    """What an exception says, storable: ``str(exc)`` (its type name when empty); a
    :class:`BaseException` that is not an :class:`Exception` (SystemExit, KeyboardInterrupt,
    ...) as ``Type(text)``; ``<unprintable Type>`` when its ``__str__`` raises."""
    name = type(exc).__name__
    try:
        text = str(exc)
    except BaseException:  # its __str__ is task code (a SystemExit from it ends nothing)
        return f"<unprintable {name}>"
    if not isinstance(exc, Exception):
        return f"{name}({storable(text, ERROR_LIMIT - len(name) - 2)})" if text else name
    return storable(text) if text else name


def for_log(text: str, limit: int = LOG_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, with newlines, escape sequences and every other
    unprintable character written as Python escapes (``\\n``, ``\\x1b``): one log line that
    cannot forge another or drive a terminal."""
    if len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")
