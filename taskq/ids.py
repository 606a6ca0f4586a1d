"""Task ids, and the one rule linking a task id to its stream entry.

A task's id is ``"<queue>:<suffix>"``. For a task enqueued straight to the stream the suffix is
the id Redis gave its first stream entry (``<ms>-<seq>``), so enqueueing needs no extra write;
a task scheduled for later gets ``<ms>-d<random>``. Both begin with a millisecond time, which
picks the record bucket of the task (see :mod:`taskq.records`).

A task's id and its current stream entry differ once the task has moved (a scheduled task
promoted, a retry, a release at shutdown, a replayed dead letter). Then the envelope carries
the task id (``Message.task_id``) and the queue's ``entries`` hash maps the task id to its
current entry. :func:`of_entry` and :func:`entry_of` are that rule, in both directions.
"""

from __future__ import annotations

import re
import secrets
import time

_ENTRY = re.compile(r"^\d+-\d+$")
_SUFFIX = re.compile(r"^\d+-(\d+|d[0-9a-f]+)$")


def task_id(queue: str, suffix: str) -> str:
    return f"{queue}:{suffix}"


def new_scheduled_id(queue: str) -> str:
    return f"{queue}:{int(time.time() * 1000)}-d{secrets.token_hex(8)}"


def split(task_id: str) -> tuple[str, str]:
    """(queue, suffix); raises ValueError for a string that is not a task id."""
    queue, sep, suffix = task_id.rpartition(":")
    if not sep or not queue or not _SUFFIX.match(suffix):
        raise ValueError(f"{task_id!r} is not a taskq task id")
    return queue, suffix


def is_task_id(value: str) -> bool:
    try:
        split(value)
    except ValueError:
        return False
    return True


def implied_entry(task_id: str) -> str | None:
    """The first stream entry id of a task enqueued straight to the stream, else None."""
    _, suffix = split(task_id)
    return suffix if _ENTRY.match(suffix) else None


def time_ms(task_id: str) -> int:
    _, suffix = split(task_id)
    return int(suffix.partition("-")[0])


def of_entry(queue: str, entry_id: str, envelope_id: str | None) -> str:
    """The id of the task a stream entry carries: the one in its envelope when it has moved,
    else ``"<queue>:<entry id>"``."""
    return envelope_id or f"{queue}:{entry_id}"


def entry_of(task_id: str, recorded: str | None) -> str | None:
    """The current stream entry of a task: the one its queue's ``entries`` hash recorded (a
    task that moved), else the entry its id implies (None for a scheduled id)."""
    return recorded if recorded else implied_entry(task_id)
