"""Read-only routes for operators (and the dashboard): who am I, a queue's throughput history,
consumers, recent failures and tasks by status, one worker and the tasks it holds. Thin HTTP
over :mod:`taskq.admin`."""

# No "from __future__ import annotations": FastAPI reads these routes' annotations at run
# time, and some refer to the factory's local values.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field

from taskq import admin
from taskq.integrations.auth import Role, require
from taskq.integrations.config import ApiConfig
from taskq.integrations.routes_queues import QueueName, _queue_errors
from taskq.integrations.routes_tasks import record_out
from taskq.integrations.schemas import Problem, TaskOut
from taskq.queue import TaskQueue
from taskq.records import TaskStatus

_404: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}


class WhoAmI(BaseModel):
    role: str = Field(description="read or admin", examples=["admin"])
    auth_disabled: bool = Field(description="true when the API takes every caller as admin")


class Throughput(BaseModel):
    model_config = {"json_schema_extra": {"examples": [
        {"queue": "default", "minute_ms": 1732190040000, "counts": [12, 30, 25]}]}}

    queue: str
    minute_ms: int = Field(description="start of the last (current, partial) minute, Redis "
                                       "clock, ms since the epoch")
    counts: list[int] = Field(description="completions per minute, oldest first, the current "
                                          "minute last")


def inspect_router(tq: TaskQueue, config: ApiConfig) -> APIRouter:
    read = [Depends(require(config.keys, Role.READ))]
    router = APIRouter(tags=["queues"], responses={401: {"model": Problem}})
    who = require(config.keys, Role.READ)

    @router.get("/whoami", summary="The role of the API key sent", tags=["health"])
    async def whoami(role: Annotated[Role, Depends(who)]) -> WhoAmI:
        return WhoAmI(role=role.value, auth_disabled=config.keys.disabled)

    @router.get("/queues/{name}/throughput", dependencies=read, responses=_404,
                summary="Completions per minute over the last hour (or up to two)")
    async def throughput(
        name: QueueName, minutes: Annotated[int, Query(ge=1, le=120)] = 60,
    ) -> Throughput:
        with _queue_errors():
            minute_ms, counts = await admin.throughput(tq, name, minutes)
        return Throughput(queue=name, minute_ms=minute_ms, counts=counts)

    @router.get("/queues/{name}/consumers", dependencies=read, responses=_404,
                response_model=list[admin.ConsumerInfo],
                summary="The queue's consumers: entries held, idle time, worker alive")
    async def consumers(name: QueueName) -> list[dict[str, Any]]:
        with _queue_errors():
            return [c.to_dict() for c in await admin.consumers(tq, name)]

    @router.get("/queues/{name}/failures", dependencies=read, responses=_404,
                response_model=list[admin.Failure],
                summary="Recent failures, newest first: dead letters and failed attempts "
                        "awaiting a retry")
    async def failures(
        name: QueueName, limit: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> list[dict[str, Any]]:
        with _queue_errors():
            return [f.to_dict() for f in await admin.recent_failures(tq, name, limit)]

    @router.get("/queues/{name}/tasks", dependencies=read, responses=_404,
                summary="The queue's tasks by status (as the read model sees them)")
    async def tasks(
        name: QueueName,
        status: Annotated[TaskStatus | None, Query(description="one status; running, queued, "
                                                   "failed, then recent ended ones if absent")]
        = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[TaskOut]:
        with _queue_errors():
            return [record_out(r) for r in await admin.list_tasks(tq, name, status, limit)]

    @router.get("/workers/{worker_id}", dependencies=read, responses=_404,
                response_model=admin.WorkerInfo, summary="One worker")
    async def worker(worker_id: Annotated[str, Path(max_length=500)]) -> dict[str, Any]:
        with _queue_errors():
            info = await admin.worker_info(tq, worker_id)
        if info is None:
            raise HTTPException(404, f"no worker {worker_id!r}")
        return info.to_dict()

    @router.get("/workers/{worker_id}/tasks", dependencies=read, responses=_404,
                summary="The tasks a worker holds (delivered to it, not finished)")
    async def held(
        worker_id: Annotated[str, Path(max_length=500)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[TaskOut]:
        with _queue_errors():
            found = await admin.worker_info(tq, worker_id) is not None
            held = await admin.held_tasks(tq, worker_id, limit) if found else []
        if not found:
            raise HTTPException(404, f"no worker {worker_id!r}")
        return [record_out(r) for r in held]

    return router
