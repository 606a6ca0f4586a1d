"""The router factory: the whole HTTP API of a TaskQueue, to mount in any FastAPI app.

    app = FastAPI(lifespan=lifespan(tq))
    app.include_router(taskq_router(tq, ApiConfig(keys=ApiKeys.from_keys(admin=[KEY]))),
                       prefix="/taskq")
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from taskq.dashboard import dashboard_router
from taskq.integrations.bodies import json_bodies_only
from taskq.integrations.config import ApiConfig
from taskq.integrations.errors import unavailable_reason
from taskq.integrations.hosts import known_hosts_only
from taskq.integrations.routes_inspect import inspect_router
from taskq.integrations.routes_queues import queues_router
from taskq.integrations.routes_schedules import schedules_router
from taskq.integrations.routes_tasks import tasks_router
from taskq.integrations.routes_workflows import workflows_router
from taskq.integrations.schemas import Health, Problem
from taskq.integrations.sse import events_router
from taskq.queue import TaskQueue

log = logging.getLogger(__name__)


def health_router(tq: TaskQueue) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health", summary="Liveness: the process answers")
    async def health() -> Health:
        return Health(status="ok")

    @router.get("/ready", summary="Readiness: Redis answers, the scripts are loaded, the ACL "
                "user may produce to the queues, Redis has memory for new tasks",
                responses={503: {"model": Problem}})
    async def ready() -> JSONResponse:
        try:
            await tq.ready()
        except Exception as exc:
            log.warning("not ready: %s: %s", type(exc).__name__, exc)
            return JSONResponse(
                {"detail": f"Redis not ready: {type(exc).__name__}: {unavailable_reason(exc)}"},
                503, headers={"Retry-After": "2"})
        return JSONResponse({"status": "ready"})

    return router


def taskq_router(tq: TaskQueue, config: ApiConfig | None = None) -> APIRouter:
    """Every endpoint: health, registry, enqueue, status, wait, cancel, events, queues and
    dead letters, workers; and the web dashboard at ``ui/`` (``config.dashboard``).
    Authentication follows ``config.keys``: with no keys configured every protected route
    answers 401 until keys are given or ``ApiKeys.off()`` is passed. Request bodies must be JSON
    (415 otherwise; see :mod:`taskq.integrations.bodies`). While authentication is off, only
    requests to localhost, an IP address or ``config.allowed_hosts`` are answered (421
    otherwise; see :mod:`taskq.integrations.hosts`)."""
    config = config or ApiConfig()
    if config.keys.disabled:
        log.warning("AUTHENTICATION IS DISABLED: anyone who can reach this API can enqueue, "
                    "cancel, replay and purge tasks")
    elif config.keys.empty:
        log.warning("no API keys configured: every protected route will answer 401")
    router = APIRouter(dependencies=[
        Depends(known_hosts_only(config.keys.disabled, config.allowed_hosts)),
        Depends(json_bodies_only(config.keys))],
        responses={415: {"model": Problem, "description": "a request body that is not JSON"}})
    router.include_router(health_router(tq))
    router.include_router(tasks_router(tq, config))
    router.include_router(events_router(tq, config))
    router.include_router(queues_router(tq, config))
    router.include_router(schedules_router(tq, config))
    router.include_router(workflows_router(tq, config))
    router.include_router(inspect_router(tq, config))
    if config.dashboard:
        router.include_router(dashboard_router(auth_disabled=config.keys.disabled))
    return router
