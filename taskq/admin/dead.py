"""The operator view of dead letters: list, show, replay (attempts reset, same task id), purge."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from taskq import codec, deadletter, names
from taskq.admin._redis import PAGE, require_queue
from taskq.admin.values import DeadLetter, KeptLetter, Replay
from taskq.errors import DeadLetterTruncated
from taskq.fieldvalues import text
from taskq.keys import QueueKeys
from taskq.scripts import KeyHeld
from taskq.state import decode_message

if TYPE_CHECKING:
    from taskq.queue import TaskQueue

log = logging.getLogger(__name__)

MAX_SCAN = 200_000
FIRST_ID = "0-0"
LAST_ID = f"{2**64 - 1}-{2**64 - 1}"


def _letter(queue: str, dead_id: Any, fields: dict[bytes, bytes]) -> DeadLetter:
    d = deadletter.parse(fields)
    msg = decode_message(d.payload)
    return DeadLetter(
        id=text(dead_id), queue=queue, task_id=d.task_id, entry=d.entry,
        task=d.task or (msg.task if msg else ""), reason=d.reason, error_type=d.error_type,
        error=d.error, traceback=d.traceback, attempts=d.attempts, enqueued_ms=d.enqueued_ms,
        failed_ms=d.failed_ms, worker=d.worker,
        args=list(msg.args) if msg else [], kwargs=dict(msg.kwargs) if msg else {},
        payload_ok=msg is not None,
    )


async def _scan(
    tq: TaskQueue, keys: QueueKeys, newest_first: bool, after: str | None = None
) -> AsyncIterator[tuple[str, dict[bytes, bytes]]]:
    """Every dead letter, page by page (bounded to MAX_SCAN), from just past ``after`` (a dead
    letter's id: older ones when ``newest_first``, newer ones otherwise) or from the end.
    Nothing is older than ``0-0`` nor newer than the largest id (Redis refuses those as
    exclusive bounds: "invalid end ID")."""
    cursor: str | None = after
    seen = 0
    if cursor == (FIRST_ID if newest_first else LAST_ID):
        return
    while seen < MAX_SCAN:
        if newest_first:
            rows = await tq.redis.xrevrange(keys.dead, max=f"({cursor}" if cursor else "+",
                                            min="-", count=PAGE)
        else:
            rows = await tq.redis.xrange(keys.dead, min=f"({cursor}" if cursor else "-",
                                         max="+", count=PAGE)
        for dead_id, fields in rows:
            yield text(dead_id), fields
        if len(rows) < PAGE:
            return
        seen += len(rows)
        cursor = text(rows[-1][0])


async def resolve_task(tq: TaskQueue, name: str, task: str | None) -> str | None:
    """The full task name a ``--task`` filter stands for: itself when a dead letter of the
    queue (or a registered task) has that name, else the one such name ending with
    ``.task`` (``send_email`` for ``myapp.tasks.send_email``); raises TaskNotRegistered with
    the candidates when several do. None stays None."""
    if task is None:
        return None
    keys = await require_queue(tq, name)
    found = set(tq.registry)
    async for _, fields in _scan(tq, keys, newest_first=True):
        found.add(deadletter.task_of(fields))
    return names.resolve_among(found, task)


async def dead_letters(
    tq: TaskQueue, name: str, limit: int = 50, task: str | None = None,
    before: str | None = None,
) -> list[DeadLetter]:
    """The newest dead letters of a queue (newest first), optionally only those of ``task``;
    with ``before`` (a dead letter's id, as a page's last one) only those older than it, so
    pages of a long list cost one page each."""
    keys = await require_queue(tq, name)
    task = await resolve_task(tq, name, task)
    out: list[DeadLetter] = []
    if limit <= 0:
        return out
    async for dead_id, fields in _scan(tq, keys, newest_first=True, after=before):
        if task is None or deadletter.task_of(fields) == task:
            out.append(_letter(name, dead_id, fields))
            if len(out) >= limit:
                break
    return out


async def dead_letter(tq: TaskQueue, name: str, dead_id: str) -> DeadLetter | None:
    """One dead letter by its id (the dead-letter stream's entry id), or None."""
    keys = await require_queue(tq, name)
    try:
        rows = await tq.redis.xrange(keys.dead, min=dead_id, max=dead_id, count=1)
    except Exception:  # not a stream id
        return None
    return _letter(name, rows[0][0], rows[0][1]) if rows else None


async def _select(
    tq: TaskQueue, keys: QueueKeys, dead_ids: Sequence[str] | None, task: str | None
) -> list[tuple[str, dict[bytes, bytes]]]:
    if dead_ids is not None:
        pipe = tq.redis.pipeline(transaction=False)
        for d in dead_ids:
            pipe.xrange(keys.dead, min=d, max=d, count=1)
        found = []
        for rows in await pipe.execute(raise_on_error=False):
            if isinstance(rows, list) and rows:
                found.append((text(rows[0][0]), rows[0][1]))
        return [(d, f) for d, f in found if task is None or deadletter.task_of(f) == task]
    return [
        (d, f) async for d, f in _scan(tq, keys, newest_first=False)
        if task is None or deadletter.task_of(f) == task
    ]


def replay_payload(fields: dict[bytes, bytes]) -> bytes | None:
    """The message to enqueue again: attempts reset to 0, its task id kept; a payload that
    cannot be decoded goes back raw; None when there is no payload at all, or only its first
    bytes (a ``payload_too_large`` dead letter)."""
    d = deadletter.parse(fields)
    if not d.payload or d.truncated:
        return None
    msg = decode_message(d.payload)
    if msg is None:
        return d.payload
    return codec.encode(msg.with_attempts(0, d.task_id or msg.task_id or ""))


async def replay_dead_letters(
    tq: TaskQueue, name: str, dead_ids: list[str] | None = None, task: str | None = None
) -> Replay:
    """Enqueue dead letters again (all when ``dead_ids`` is None), each atomically moved from the
    dead letters to the stream with its attempts reset, taking its task's unique key again (see
    :mod:`taskq.options`). Dead letters without a payload (lost entries) or with only its first
    bytes (``payload_too_large``) cannot run and stay; naming one of the latter in ``dead_ids``
    raises :class:`DeadLetterTruncated` (nothing replayed). So do those of workflow steps
    (listed in ``workflow_steps``): the step's death already failed its workflow (its waiting
    steps skipped, its failure handler run), and a replayed step would run alone, its result
    going nowhere. So do those whose unique key another task holds now (listed in ``kept``,
    with a warning logged): replaying them would make a second live task of one key.
    ``task``: a full or short task name (see :func:`resolve_task`)."""
    keys = await require_queue(tq, name)
    task = await resolve_task(tq, name, task)
    count = 0
    steps: list[str] = []
    kept: list[KeptLetter] = []
    chosen = await _select(tq, keys, dead_ids, task)
    if dead_ids is not None:
        for dead_id, fields in chosen:
            d = deadletter.parse(fields)
            if d.truncated:
                raise DeadLetterTruncated(dead_id, d.payload_bytes, len(d.payload))
    for dead_id, fields in chosen:
        d = deadletter.parse(fields)
        task_id = d.task_id
        msg = decode_message(d.payload)
        if msg is not None and msg.workflow is not None:
            steps.append(task_id or dead_id)
            continue
        payload = replay_payload(fields)
        if payload is None or not task_id:
            continue
        unique = msg.options.key if msg is not None and msg.options is not None else None
        r = await tq.scripts.replay(keys=keys, dead_id=dead_id, payload=payload,
                                    task_id=task_id, unique=unique)
        if isinstance(r, KeyHeld):
            letter = KeptLetter(dead_id, task_id, unique or "", r.holder, r.kept)
            log.warning("dead letter %s of queue %s not replayed: %s", dead_id, name,
                        letter.reason, extra={"task_id": task_id})
            kept.append(letter)
        elif r:
            count += 1
    return Replay(queue=name, replayed=count, workflow_steps=steps, kept=tuple(kept))


async def replay_dead(
    tq: TaskQueue, name: str, dead_ids: list[str] | None = None, task: str | None = None
) -> int:
    """Enqueue dead letters again (all when ``dead_ids`` is None): how many were replayed
    (see :func:`replay_dead_letters`, which also tells which were left and why)."""
    return (await replay_dead_letters(tq, name, dead_ids, task)).replayed


async def purge_dead(
    tq: TaskQueue, name: str, dead_ids: list[str] | None = None, task: str | None = None
) -> int:
    """Delete dead letters (all when ``dead_ids`` is None; ``task``: only that task's, a full
    or short name); returns how many were deleted."""
    keys = await require_queue(tq, name)
    task = await resolve_task(tq, name, task)
    if dead_ids is None and task is None:
        pipe = tq.redis.pipeline(transaction=True)
        pipe.xlen(keys.dead)
        pipe.delete(keys.dead)
        n, _ = await pipe.execute()
        return int(n)
    chosen = [d for d, _ in await _select(tq, keys, dead_ids, task)]
    deleted = 0
    for i in range(0, len(chosen), PAGE):
        deleted += int(await tq.redis.xdel(keys.dead, *chosen[i : i + PAGE]))
    return deleted
