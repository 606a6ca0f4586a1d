"""Routes on periodic schedules: list them (next fire times, last run), pause and resume. A thin
HTTP layer over :mod:`taskq.admin.schedules`; read key to view, admin key to act."""

# No "from __future__ import annotations": FastAPI reads these routes' annotations at run time.

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel

from taskq import admin
from taskq.integrations.auth import Role, require
from taskq.integrations.config import ApiConfig
from taskq.integrations.errors import http_errors
from taskq.integrations.schemas import Problem
from taskq.queue import TaskQueue

ScheduleName = Annotated[str, Path(description="a schedule name", examples=["daily-report"])]

_EXAMPLE = {
    "name": "daily-report", "queue": "default", "task": "send_report",
    "schedule": "0 6 * * * (Europe/Berlin)", "cron": "0 6 * * *", "every_s": None,
    "timezone": "Europe/Berlin", "catch_up": "once", "paused": False,
    "next_fire_ms": [1765083600000, 1765170000000, 1765256400000],
    "last_tick_ms": 1764997200000, "last_fired_ms": 1764997200105,
    "last_task_id": "default:1764997200105-0", "fired_total": 41, "skipped_total": 0,
}


class SchedulePaused(BaseModel):
    schedule: str
    paused: bool


@contextmanager
def _schedule_errors() -> Iterator[None]:
    try:
        with http_errors():
            yield
    except admin.ScheduleNotFound as exc:
        raise HTTPException(404, str(exc)) from None


def schedules_router(tq: TaskQueue, config: ApiConfig) -> APIRouter:
    read = [Depends(require(config.keys, Role.READ))]
    admin_only = [Depends(require(config.keys, Role.ADMIN))]
    router = APIRouter(tags=["schedules"], responses={401: {"model": Problem}})

    @router.get("/schedules", dependencies=read,
                summary="Every periodic schedule: next fire times, last run",
                response_model=list[admin.ScheduleInfo],
                responses={200: {"content": {"application/json": {"example": [_EXAMPLE]}}}})
    async def schedules() -> list[dict[str, Any]]:
        with _schedule_errors():
            return [s.to_dict() for s in await admin.list_schedules(tq)]

    @router.get("/schedules/{name}", dependencies=read, summary="One periodic schedule",
                response_model=admin.ScheduleInfo,
                responses={200: {"content": {"application/json": {"example": _EXAMPLE}}},
                           404: {"model": Problem}})
    async def schedule(name: ScheduleName) -> dict[str, Any]:
        with _schedule_errors():
            return (await admin.schedule_info(tq, name)).to_dict()

    @router.post("/schedules/{name}/pause", dependencies=admin_only,
                 summary="Pause a schedule (its ticks pass without a task)",
                 responses={403: {"model": Problem}, 404: {"model": Problem}})
    async def pause(name: ScheduleName) -> SchedulePaused:
        with _schedule_errors():
            await admin.pause_schedule(tq, name)
        return SchedulePaused(schedule=name, paused=True)

    @router.post("/schedules/{name}/resume", dependencies=admin_only,
                 summary="Resume a schedule (from its next tick; the pause is not caught up)",
                 responses={403: {"model": Problem}, 404: {"model": Problem}})
    async def resume(name: ScheduleName) -> SchedulePaused:
        with _schedule_errors():
            await admin.resume_schedule(tq, name)
        return SchedulePaused(schedule=name, paused=False)

    return router
