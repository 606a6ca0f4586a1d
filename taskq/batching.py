"""Planning an enqueue: which script calls a batch of messages needs, and its backlog check.

A batch that fits one script call is checked against the backlog limit inside that call
(atomic). A larger batch (more than ``CHUNK`` messages, or several queues) is checked first for
every queue it touches, and then added without further checks, so a refused batch adds nothing;
concurrent producers may then pass the limit by at most one batch each (the limit is soft).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taskq import codec, ids
from taskq.codec import Message
from taskq.errors import BacklogFull

CHUNK = 500


@dataclass(frozen=True, slots=True)
class Call:
    """One script call: messages of one queue, with their ids when scheduled for later."""

    queue: str
    payloads: list[bytes]
    messages: list[Message]
    task_ids: list[str] | None = None  # set for delayed messages (ids chosen here)


def plan(encoded: Sequence[tuple[str, bytes, Message]], delayed: bool) -> list[Call]:
    by_queue: dict[str, list[tuple[bytes, Message]]] = {}
    for queue, payload, msg in encoded:
        by_queue.setdefault(queue, []).append((payload, msg))
    calls: list[Call] = []
    for queue, items in by_queue.items():
        for i in range(0, len(items), CHUNK):
            chunk = items[i : i + CHUNK]
            msgs = [m for _, m in chunk]
            if not delayed:
                calls.append(Call(queue, [p for p, _ in chunk], msgs))
                continue
            task_ids = [ids.new_scheduled_id(queue) for _ in chunk]
            payloads = [codec.encode(m.with_attempts(m.attempts, t))
                        for m, t in zip(msgs, task_ids, strict=True)]
            calls.append(Call(queue, payloads, msgs, task_ids))
    return calls


def check_backlogs(calls: Sequence[Call], backlogs: dict[str, int], limit: int) -> None:
    """Raise BacklogFull if adding the batch would pass the limit of any queue."""
    if limit <= 0:
        return
    wanted: dict[str, int] = {}
    for c in calls:
        wanted[c.queue] = wanted.get(c.queue, 0) + len(c.payloads)
    for queue, n in wanted.items():
        if backlogs.get(queue, 0) + n > limit:
            raise BacklogFull(queue, backlogs.get(queue, 0), limit)
