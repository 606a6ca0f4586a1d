"""Routes on queues: figures, pause/resume, workers, and dead letters (list, show, replay,
purge). Everything here is a thin HTTP layer over :mod:`taskq.admin`."""

# No "from __future__ import annotations": FastAPI reads these routes' annotations at run
# time, and some refer to the factory's local values.

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from taskq import admin, codec, ids
from taskq.admin.dead import FIRST_ID
from taskq.integrations.auth import Role, require
from taskq.integrations.bodies import parse_json
from taskq.integrations.config import ApiConfig
from taskq.integrations.errors import http_errors
from taskq.integrations.limits import read_limited
from taskq.integrations.schemas import (
    DeadSelection,
    KeptLetter,
    Paused,
    Problem,
    Purged,
    Replayed,
)
from taskq.queue import TaskQueue

QueueName = Annotated[str, Path(description="a queue name", examples=["default"])]

_QUEUE_EXAMPLE = {
    "name": "default", "length": 12, "in_flight": 4, "lag": 8, "delayed": 2, "dead": 1,
    "consumers": 2, "oldest_waiting_age_s": 0.8, "completed_last_minute": 340,
    "completed_total": 10452, "retried_total": 17, "dead_total": 1, "lost_total": 0,
    "paused": False, "throttled_total": 0, "priority_waiting": {},
}
_DEAD_EXAMPLE = {
    "id": "1732190000123-0", "queue": "default", "task_id": "default:1732190000000-0",
    "entry": "1732190000100-0", "task": "always_fails", "reason": "max_attempts",
    "error_type": "RuntimeError", "error": "the upstream service said no",
    "traceback": "Traceback (most recent call last): ...", "attempts": 3,
    "enqueued_ms": 1732190000000, "failed_ms": 1732190000123, "worker": "host-1234-ab12",
    "args": [], "kwargs": {"reason": "demo"}, "payload_ok": True,
}


def _example(value: Any) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"application/json": {"example": value}}},
            404: {"model": Problem}}


@contextmanager
def _queue_errors() -> Iterator[None]:
    try:
        with http_errors():
            yield
    except (admin.QueueNotFound, admin.DeadLetterNotFound) as exc:
        raise HTTPException(404, str(exc)) from None


def _entry_ids(dead_ids: list[str] | None) -> list[str] | None:
    """The ids that can name one dead letter; the rest (``-``, ``+``, a bare time, which Redis
    would read as ranges) name none, as an unknown id does."""
    return None if dead_ids is None else [d for d in dead_ids if ids.is_entry_id(d)]


_SELECTION_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": DeadSelection.model_json_schema()}}}}


def _selection_of(limit: int) -> Any:
    """A dependency: the body as a DeadSelection, parsed by :func:`parse_json` so that no body
    can make it a 500. Nothing selects every dead letter but ``"all": true``: an empty body,
    ``null``, ``{}`` or ``"ids": null`` are 422."""

    async def selection(request: Request) -> DeadSelection:
        body = await read_limited(request, limit)
        data = parse_json(body) if body.strip() else None
        try:
            return DeadSelection.model_validate({} if data is None else data)
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                          for e in exc.errors(include_url=False)]) from None

    return Depends(selection)


def queues_router(tq: TaskQueue, config: ApiConfig) -> APIRouter:
    read = [Depends(require(config.keys, Role.READ))]
    admin_only = [Depends(require(config.keys, Role.ADMIN))]
    router = APIRouter(tags=["queues"], responses={401: {"model": Problem}})
    selection_body = _selection_of(config.max_body_bytes)

    @router.get("/queues", dependencies=read, summary="Every queue with its figures",
                response_model=list[admin.QueueInfo], responses=_example([_QUEUE_EXAMPLE]))
    async def queues(
        response: Response,
        offset: Annotated[int, Query(ge=0, description="skip this many (by name)")] = 0,
        limit: Annotated[int | None, Query(ge=1, le=1000, description="at most this many; "
                                           "every queue when absent")] = None,
        match: Annotated[str | None, Query(max_length=200, description="only queues whose "
                                           "name contains this (any case)")] = None,
    ) -> list[dict[str, Any]]:
        """By name. ``X-Total-Count`` tells how many queues match in all; with ``limit`` only
        that page's queues are read from Redis."""
        with _queue_errors():
            if limit is None and not offset and not match:
                found = await admin.list_queues(tq)
                total = len(found)
            else:
                total, found = await admin.queue_page(tq, offset, limit or 1_000_000, match)
        response.headers["X-Total-Count"] = str(total)
        return [q.to_dict() for q in found]

    @router.get("/queues/{name}", dependencies=read, summary="One queue's figures",
                response_model=admin.QueueInfo, responses=_example(_QUEUE_EXAMPLE))
    async def queue(name: QueueName) -> dict[str, Any]:
        with _queue_errors():
            return (await admin.queue_info(tq, name)).to_dict()

    @router.post("/queues/{name}/pause", dependencies=admin_only, summary="Pause a queue",
                 responses={403: {"model": Problem}}, response_model_exclude_none=True)
    async def pause(name: QueueName) -> Paused:
        """Workers stop taking new tasks from the queue; running tasks finish. A name that is
        no queue yet is paused too (before the deploy that brings its tasks) and registered;
        the answer's ``warning`` then names the known queues and the closest one."""
        with _queue_errors():
            unknown = await admin.pause(tq, name)
        return Paused(queue=name, paused=True, warning=None if unknown is None else str(unknown))

    @router.post("/queues/{name}/resume", dependencies=admin_only, summary="Resume a queue",
                 responses={403: {"model": Problem}}, response_model_exclude_none=True)
    async def resume(name: QueueName) -> Paused:
        with _queue_errors():
            unknown = await admin.resume(tq, name)
        return Paused(queue=name, paused=False, warning=None if unknown is None else str(unknown))

    @router.get("/queues/{name}/dead", dependencies=read, summary="Dead letters, newest first",
                response_model=list[admin.DeadLetter], responses=_example([_DEAD_EXAMPLE]))
    async def dead_letters(
        name: QueueName,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        task: Annotated[str | None, Query(description="only this task's")] = None,
        before: Annotated[str | None, Query(
            description="only dead letters older than this one (the id of the last one of "
                        "the previous page)", examples=["1732190000123-0"])] = None,
    ) -> list[dict[str, Any]]:
        if before is not None and (not ids.is_entry_id(before) or before == FIRST_ID):
            raise HTTPException(422, [{"loc": ["query", "before"], "type": "value_error",
                                       "msg": "not a dead-letter id (<ms>-<seq>, above 0-0)"}])
        with _queue_errors():
            letters = await admin.dead_letters(tq, name, limit, task, before)
        return [codec.json_safe(d.to_dict()) for d in letters]

    @router.get("/queues/{name}/dead/{dead_id}", dependencies=read, summary="One dead letter",
                response_model=admin.DeadLetter, responses=_example(_DEAD_EXAMPLE))
    async def dead_letter(
        name: QueueName,
        dead_id: Annotated[str, Path(examples=["1732190000123-0"])],
    ) -> dict[str, Any]:
        with _queue_errors():
            letter = await admin.dead_letter(tq, name, dead_id) if ids.is_entry_id(
                dead_id) else None
        if letter is None:
            raise HTTPException(404, f"no dead letter {dead_id!r} in queue {name!r}")
        return codec.json_safe(letter.to_dict())  # type: ignore[no-any-return]

    @router.post("/queues/{name}/dead/replay", dependencies=admin_only,
                 summary="Enqueue dead letters again (attempts reset)",
                 openapi_extra=_SELECTION_BODY,
                 responses={403: {"model": Problem}, 404: {"model": Problem},
                            422: {"model": Problem}})
    async def replay(name: QueueName, selection: DeadSelection = selection_body) -> Replayed:
        """By ``ids``, by ``task``, or every dead letter of the queue with ``{"all": true}``
        (422 for a body that says none of these). Each keeps its task id; its attempts start
        again from zero. Dead letters of workflow steps are not replayed (listed in
        ``workflow_steps``): start the workflow again."""
        sel = selection
        with _queue_errors():
            r = await admin.replay_dead_letters(tq, name, _entry_ids(sel.ids), sel.task)
        return Replayed(queue=name, replayed=r.replayed, workflow_steps=r.workflow_steps,
                        kept=[KeptLetter(**k.to_dict()) for k in r.kept])

    @router.post("/queues/{name}/dead/purge", dependencies=admin_only,
                 summary="Delete dead letters", openapi_extra=_SELECTION_BODY,
                 responses={403: {"model": Problem}, 404: {"model": Problem},
                            422: {"model": Problem}})
    async def purge(name: QueueName, selection: DeadSelection = selection_body) -> Purged:
        """By ``ids``, by ``task``, or every dead letter of the queue with ``{"all": true}``
        (422 for a body that says none of these: an empty body, ``{}``, ``"ids": null``)."""
        sel = selection
        with _queue_errors():
            n = await admin.purge_dead(tq, name, _entry_ids(sel.ids), sel.task)
        return Purged(queue=name, purged=n)

    @router.get("/workers", dependencies=read, summary="Workers and their figures",
                response_model=list[admin.WorkerInfo])
    async def workers() -> list[dict[str, Any]]:
        with _queue_errors():
            return [w.to_dict() for w in await admin.list_workers(tq)]

    return router
