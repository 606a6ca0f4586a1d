"""Priority levels: a small fixed set, each a *lane* of its queue.

A queue has three levels: ``high``, ``normal`` (the default) and ``low``. The ``normal`` level
is the queue itself, exactly as without priorities; each other level is a lane named
``"<queue>!<level>"`` with its own stream, delayed set, records and dead letters, all under the
queue's hash tag (see :mod:`taskq.keys`), so that a queue and its lanes share one Redis Cluster
slot and one set of rate and concurrency limits. A task of a lane keeps its lane through
retries, delays, hand-backs and dead-letter replays, because every script of a lane works on
the lane's keys. Task ids of a lane name it (``"emails!high:1712-0"``), so status, cancel and
wait find the task without knowing its level.

A worker of a queue reads its lanes highest first (see :mod:`taskq.worker.reader`), once it has
seen them: a lane is registered in the queues set by the first enqueue to it, and workers look
for their queues' lanes at start and with every flags refresh (about twice a second).
"""

from __future__ import annotations

from typing import Literal

from taskq.errors import InvalidOption

Priority = Literal["high", "normal", "low"]
"""The priority of a task or of one enqueue."""

LEVELS: tuple[Priority, ...] = ("high", "normal", "low")
"""Highest first."""

SEPARATOR = "!"
_LANE_LEVELS = ("high", "low")


def lane(queue: str, priority: Priority | None) -> str:
    """The queue name that carries ``priority`` work of ``queue`` (``queue`` itself for
    ``normal`` or None). Raises InvalidOption (a ValueError) for an unknown level."""
    if priority is None or priority == "normal":
        return queue
    if priority not in _LANE_LEVELS:
        raise InvalidOption(f"priority must be one of {', '.join(LEVELS)}, not {priority!r}")
    return f"{base(queue)}{SEPARATOR}{priority}"


def split(name: str) -> tuple[str, Priority]:
    """(queue, level) of a queue or lane name: ``"emails!high"`` -> ``("emails", "high")``."""
    head, sep, level = name.rpartition(SEPARATOR)
    if sep and head and level in _LANE_LEVELS:
        return head, level  # type: ignore[return-value]
    return name, "normal"


def base(name: str) -> str:
    """The queue a lane belongs to (a queue's own name for a queue)."""
    return split(name)[0]


def level(name: str) -> Priority:
    return split(name)[1]


def rank(name: str) -> int:
    """0 for a high lane, 1 for a queue itself, 2 for a low lane (lower runs first)."""
    return LEVELS.index(split(name)[1])


def lanes(queue: str) -> tuple[str, ...]:
    """Every level's queue name of ``queue``, highest first."""
    q = base(queue)
    return tuple(lane(q, p) for p in LEVELS)


def is_lane(name: str) -> bool:
    return split(name)[1] != "normal"
