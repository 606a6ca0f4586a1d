"""Planning an enqueue: which script calls a batch of messages needs, and its backlog check.

:func:`prepare` is the plan that async and sync enqueue share (only their I/O differs):
queues to register, one plain XADD when a single message goes to a queue far below its limit,
the backlogs to read first when the batch needs several calls, and the limit each call checks.

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


@dataclass(frozen=True, slots=True)
class Plan:
    """What an enqueue does, in order: register ``new_queues``; then either one plain XADD
    (``single``), or read the backlogs of ``precheck`` (``check_backlogs``) and send ``calls``,
    each checked against ``limit`` inside its script (0: unchecked)."""

    calls: list[Call]
    delay_ms: int
    new_queues: set[str]
    single: bool
    precheck: list[str]
    limit: int


def prepare(
    encoded: Sequence[tuple[str, bytes, Message]], delay_ms: int, known: set[str],
    gauge: BacklogGauge, limit: int, now: float,
) -> Plan:
    calls = plan(encoded, delay_ms > 0)
    new_queues = {c.queue for c in calls} - known
    if delay_ms == 0 and gauge.all_fast(calls, now, limit):
        single = len(calls) == 1 and len(calls[0].payloads) == 1
        return Plan(calls, delay_ms, new_queues, single, [], 0)  # far below: no check needed
    if len(calls) > 1 and limit > 0:
        return Plan(calls, delay_ms, new_queues, False, sorted({c.queue for c in calls}), 0)
    return Plan(calls, delay_ms, new_queues, False, [], limit)


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


class BacklogGauge:
    """What a producer last knew of each queue's stream length, to skip the checked (scripted)
    enqueue while a queue is far below its limit: then a plain XADD does, one command.

    The exact length is read at most ``fresh_s`` ago (by a checked enqueue or a pre-check) and
    this producer's own additions since are counted. Below half the limit the plain path is
    used; above it every enqueue is checked atomically. Several producers may each pass half
    the limit within ``fresh_s``, so the limit is soft there: it still stops unbounded growth.
    """

    def __init__(self, fresh_s: float = 1.0) -> None:
        self.fresh_s = fresh_s
        self._seen: dict[str, tuple[int, float]] = {}

    def fast(self, queue: str, n: int, now: float, limit: int) -> bool:
        if limit <= 0:
            return True
        seen = self._seen.get(queue)
        return seen is not None and now - seen[1] < self.fresh_s and seen[0] + n <= limit // 2

    def all_fast(self, calls: Sequence[Call], now: float, limit: int) -> bool:
        wanted: dict[str, int] = {}
        for c in calls:
            wanted[c.queue] = wanted.get(c.queue, 0) + len(c.payloads)
        return all(self.fast(q, n, now, limit) for q, n in wanted.items())

    def saw(self, queue: str, length: int, now: float) -> None:
        if length >= 0:
            self._seen[queue] = (length, now)

    def added(self, queue: str, n: int) -> None:
        seen = self._seen.get(queue)
        if seen is not None:
            self._seen[queue] = (seen[0] + n, seen[1])
