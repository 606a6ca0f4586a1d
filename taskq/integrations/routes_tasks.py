"""Routes on tasks: the registry, enqueue, status, long-poll wait, cancel."""

# No "from __future__ import annotations": FastAPI reads these routes' annotations at run
# time, and some refer to the factory's local values.

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse

from taskq import codec, ids
from taskq.errors import ResultTimeout, TaskNotRegistered, UniqueKeyReused
from taskq.integrations import idempotency
from taskq.integrations.auth import Role, require
from taskq.integrations.bodies import parse_json
from taskq.integrations.config import ApiConfig
from taskq.integrations.errors import http_errors
from taskq.integrations.examples import arguments_schema, body_examples
from taskq.integrations.limits import read_limited
from taskq.integrations.schemas import Cancelled, Enqueued, Problem, TaskInfo, TaskOut
from taskq.priority import Priority
from taskq.queue import TaskQueue
from taskq.records import TaskRecord
from taskq.task import Task

TaskId = Annotated[str, Path(description="a task id as returned by enqueue",
                             examples=["default:1732190000000-0"])]
MAX_DELAY_S = 366 * 86_400


def record_out(record: TaskRecord) -> TaskOut:
    """The record as JSON can show it: undecodable bytes as base64, NaN as null."""
    return TaskOut.model_validate(codec.json_safe(record.to_dict()))


def check_id(task_id: str) -> str:
    if not ids.is_task_id(task_id):
        raise HTTPException(404, f"no task with id {task_id!r}")
    return task_id


def task_info(task: Task[Any, Any]) -> TaskInfo:
    return TaskInfo(name=task.name, queue=task.options.queue,
                    max_attempts=task.options.max_attempts, timeout_s=task.options.timeout_s,
                    arguments=arguments_schema(task))


def _parse_object(body: bytes) -> dict[str, Any]:
    data = parse_json(body or b"{}")
    if not isinstance(data, dict):
        raise HTTPException(422, [{"loc": ["body"], "msg": "the body must be a JSON object of "
                                   "the task's arguments by name", "type": "dict_type"}])
    return data


def _enqueue_openapi(tq: TaskQueue) -> dict[str, Any]:
    return {"requestBody": {"required": False, "content": {"application/json": {
        "schema": {"type": "object", "additionalProperties": True,
                   "description": "the task's arguments by name (see GET /registry)"},
        "examples": body_examples(tq),
    }}}}


def tasks_router(tq: TaskQueue, config: ApiConfig) -> APIRouter:
    read = [Depends(require(config.keys, Role.READ))]
    admin = [Depends(require(config.keys, Role.ADMIN))]
    router = APIRouter(tags=["tasks"], responses={401: {"model": Problem}})
    names = sorted(tq.registry)

    @router.get("/registry", dependencies=read, summary="Registered tasks and their arguments")
    async def registry() -> list[TaskInfo]:
        return [task_info(tq.registry[n]) for n in names]

    @router.post(
        "/enqueue/{task_name}", dependencies=read, status_code=202,
        summary="Enqueue a registered task", openapi_extra=_enqueue_openapi(tq),
        responses={404: {"model": Problem}, 413: {"model": Problem}, 422: {"model": Problem},
                   429: {"model": Problem}, 503: {"model": Problem}},
    )
    async def enqueue(
        request: Request,
        task_name: Annotated[str, Path(examples=names[:1] or ["send_welcome_email"])],
        delay_s: Annotated[float | None, Query(ge=0, le=MAX_DELAY_S,
                                               description="run this many seconds later")] = None,
        priority: Annotated[Priority | None, Query(
            description="high, normal or low (default: the task's own)")] = None,
        idempotency_key: Annotated[str | None, Header(
            description="the same key returns the same task id while the task lives and "
                        "for the idempotency window after it succeeded")] = None,
    ) -> JSONResponse:
        """The body is a JSON object of the task's arguments by name, validated against the
        task's signature (422 with pydantic's detail). Answers 202 with the task id.
        ``task_name`` is a registered name (``module.function`` unless the task was given
        one) or an unambiguous short one (``send_email``); 404 when unknown or ambiguous (the
        detail lists the matching full names)."""
        try:  # the full name, or an unambiguous short one (taskq.names)
            task = tq.resolve_task(task_name)
        except TaskNotRegistered as exc:  # 404, naming the full names when several match
            raise HTTPException(404, str(exc)) from None
        body = await read_limited(request, config.max_body_bytes)
        if idempotency_key is not None:
            idempotency.check_key(idempotency_key)
        arguments = _parse_object(body)
        with http_errors():
            msg = task.build((), arguments, level=priority)
            if idempotency_key is not None:  # the task's unique key: atomic with the add
                msg = replace(msg, options=idempotency.options(
                    task.name, idempotency_key, int(config.idempotency_ttl_s * 1000),
                    idempotency.fingerprint(msg.args, msg.kwargs, delay_s), delay_s))
            try:
                (handle,) = await tq.enqueue_many([msg], delay=delay_s)
            except UniqueKeyReused:
                raise idempotency.reused() from None
            task_id, run_at, replayed = handle.id, handle.run_at_ms, handle.deduplicated
        status_url = str(request.url_for("task_status", task_id=task_id).path)
        out = Enqueued(id=task_id, task=task.name, queue=ids.split(task_id)[0],
                       run_at_ms=run_at, status_url=status_url, idempotent_replay=replayed)
        return JSONResponse(out.model_dump(), 202, headers={"Location": status_url})

    @router.get("/tasks/{task_id}", dependencies=read, name="task_status",
                summary="A task's status, result or error", responses={404: {"model": Problem}})
    async def status(task_id: TaskId) -> TaskOut:
        with http_errors():
            return record_out(await tq.status(check_id(task_id)))

    @router.get(
        "/tasks/{task_id}/wait", dependencies=read, summary="Wait for a task to end (long poll)",
        responses={202: {"model": TaskOut, "description": "still not ended at the timeout"},
                   404: {"model": Problem}},
    )
    async def wait(
        task_id: TaskId,
        timeout_s: Annotated[float, Query(ge=0, le=config.wait_max_s)] = min(
            30.0, config.wait_max_s),
    ) -> JSONResponse:
        """200 with the final record once the task ends (succeeded, dead, cancelled or
        expired); 202
        with the current record if it has not ended within ``timeout_s``."""
        with http_errors():
            record = await tq.status(check_id(task_id))
            if not record.terminal and timeout_s > 0:
                try:
                    record = await tq.wait(task_id, timeout_s)
                except ResultTimeout:
                    record = await tq.status(task_id)
        return JSONResponse(record_out(record).model_dump(mode="json", by_alias=True),
                            200 if record.terminal else 202)

    @router.post("/tasks/{task_id}/cancel", dependencies=admin, summary="Cancel a task",
                 responses={403: {"model": Problem}, 404: {"model": Problem},
                            409: {"model": Problem, "description": "the task already ended"}})
    async def cancel(task_id: TaskId) -> Cancelled:
        """Queued or delayed: removed before it runs. Running: an ``async`` task is cancelled
        in its worker; a plain ``def`` task cannot be interrupted, so it is flagged
        (``ctx.cancelled``), runs on, and its result is discarded (status ``cancelled``)."""
        with http_errors():
            outcome = await tq.cancel(check_id(task_id))
            if outcome == "unknown":
                record = await tq.status(task_id)  # 404 when there is no such task
                raise HTTPException(409, f"task {task_id} already ended {record.status}")
        return Cancelled(id=task_id, outcome=outcome)

    return router
