"""The operator view of periodic schedules: what is stored in Redis (as the workers last synced
it from code), when each fires next, its last run; pause and resume.

Read from Redis alone (no app import is needed): each queue's ``periodic`` hash, for the queues
in the ``periodic-queues`` set. Next fire times are computed here from the stored definition,
after the later of the last tick and the Redis time now.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from taskq.admin._redis import redis_now_ms
from taskq.errors import ScheduleNotFound
from taskq.fieldvalues import text, to_int
from taskq.keys import periodic_queues_key
from taskq.periodic import Spec

if TYPE_CHECKING:
    from taskq.queue import TaskQueue

NEXT_TICKS = 3


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """One periodic schedule as stored in Redis. Times are ms since the epoch (Redis clock)."""

    name: str
    queue: str
    task: str
    schedule: str
    """How it reads: ``0 6 * * * (Europe/Berlin)`` or ``every 30s``."""
    cron: str | None
    every_s: float | None
    timezone: str
    catch_up: str
    paused: bool
    next_fire_ms: list[int]
    """The next few ticks (none while paused)."""
    last_tick_ms: int | None
    """The last tick claimed (fired, or passed over while paused or by the catch-up policy)."""
    last_fired_ms: int | None
    last_task_id: str | None
    fired_total: int
    skipped_total: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _stored(tq: TaskQueue) -> list[tuple[str, dict[str, bytes]]]:
    """(queue, the queue's periodic hash) for every queue schedules were ever synced to."""
    queues = sorted(text(q) for q in
                    await tq.redis.smembers(periodic_queues_key(tq.prefix)))  # type: ignore[misc]
    if not queues:
        return []
    pipe = tq.redis.pipeline(transaction=False)
    for q in queues:
        pipe.hgetall(tq.keys(q).periodic)
    hashes = await pipe.execute()
    return [(q, {text(k): v for k, v in h.items()}) for q, h in zip(queues, hashes, strict=True)]


def _info(queue: str, name: str, h: dict[str, bytes], now: int) -> ScheduleInfo:
    try:
        d = json.loads(h.get(f"i:{name}", b"{}"))
    except ValueError:
        d = {}
    if not isinstance(d, dict):
        d = {}
    last = to_int(h.get(f"l:{name}"), None)
    paused = f"x:{name}" in h
    every_ms = d.get("every_ms")
    cron = d.get("cron")
    tz = str(d.get("timezone") or "UTC")
    try:
        spec: Spec | None = Spec(cron=cron, every_ms=every_ms, timezone=tz)
    except (ValueError, TypeError):  # written by other code: shown, not computed
        spec = None
    nxt = [] if spec is None or paused else spec.next_ticks(max(last or 0, now), NEXT_TICKS)
    last_task = h.get(f"t:{name}")
    return ScheduleInfo(
        name=name, queue=queue, task=str(d.get("task", "")),
        schedule=spec.text() if spec is not None else "?", cron=cron,
        every_s=every_ms / 1000 if isinstance(every_ms, int) else None, timezone=tz,
        catch_up=str(d.get("catch_up", "once")), paused=paused, next_fire_ms=nxt,
        last_tick_ms=last, last_fired_ms=to_int(h.get(f"f:{name}"), None),
        last_task_id=text(last_task) if last_task else None,
        fired_total=to_int(h.get(f"n:{name}")) or 0,
        skipped_total=to_int(h.get(f"s:{name}")) or 0,
    )


async def list_schedules(tq: TaskQueue) -> list[ScheduleInfo]:
    """Every schedule stored in Redis, by name."""
    now = await redis_now_ms(tq)
    out = [_info(q, f[2:], h, now) for q, h in await _stored(tq) for f in h if f[:2] == "d:"]
    return sorted(out, key=lambda s: s.name)


async def schedule_info(tq: TaskQueue, name: str) -> ScheduleInfo:
    """One stored schedule; raises :class:`ScheduleNotFound`."""
    for s in await list_schedules(tq):
        if s.name == name:
            return s
    raise ScheduleNotFound(name)


async def _set_paused(tq: TaskQueue, name: str, paused: bool) -> None:
    for queue, h in await _stored(tq):
        if f"d:{name}" in h and await tq.scripts.periodic_pause(
                keys=tq.keys(queue), name=name, paused=paused):
            return
    raise ScheduleNotFound(name)


async def pause_schedule(tq: TaskQueue, name: str) -> None:
    """Pause a schedule: its ticks pass without a task until it is resumed (kept across
    worker restarts and deploys). Raises :class:`ScheduleNotFound`."""
    await _set_paused(tq, name, True)


async def resume_schedule(tq: TaskQueue, name: str) -> None:
    """Resume a paused schedule: it fires from its next tick on (the ticks of the pause are
    not caught up). Raises :class:`ScheduleNotFound`."""
    await _set_paused(tq, name, False)
