"""Routes on workflows: status (each step's state), cancel."""

# No "from __future__ import annotations": FastAPI reads these routes' annotations at run time.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel

from taskq import codec
from taskq.integrations.auth import Role, require
from taskq.integrations.config import ApiConfig
from taskq.integrations.errors import http_errors
from taskq.integrations.schemas import Problem
from taskq.queue import TaskQueue
from taskq.workflow import Workflow, WorkflowStatus

WorkflowId = Annotated[str, Path(description="a workflow id as taskq.workflow.start returned",
                                 examples=["default:1732190000000-w3f2a9c0d1e2b4a5c"])]


class StepOut(BaseModel):
    index: int
    task: str
    task_id: str
    queue: str
    state: str
    handler: bool = False
    result: Any = None
    error: str | None = None


class WorkflowOut(BaseModel):
    id: str
    kind: str
    status: str
    finished: bool
    created_ms: int
    steps: list[StepOut]


class WorkflowCancelled(BaseModel):
    id: str
    before: str
    status: WorkflowOut


def workflow_out(status: WorkflowStatus) -> WorkflowOut:
    return WorkflowOut.model_validate(codec.json_safe(status.to_dict()))


def workflows_router(tq: TaskQueue, config: ApiConfig) -> APIRouter:
    read = [Depends(require(config.keys, Role.READ))]
    admin = [Depends(require(config.keys, Role.ADMIN))]
    router = APIRouter(tags=["workflows"], responses={401: {"model": Problem}})

    @router.get("/workflows/{workflow_id}", dependencies=read,
                summary="A workflow's status and each step's state",
                responses={404: {"model": Problem}})
    async def status(workflow_id: WorkflowId) -> WorkflowOut:
        with http_errors():
            return workflow_out(await Workflow(workflow_id, tq).status())

    @router.post("/workflows/{workflow_id}/cancel", dependencies=admin,
                 summary="Cancel a workflow",
                 responses={403: {"model": Problem}, 404: {"model": Problem}})
    async def cancel(workflow_id: WorkflowId) -> WorkflowCancelled:
        """Steps still waiting never run; steps enqueued but not yet taken by a worker are
        removed; running steps go on (their end starts nothing). ``before``: the workflow's
        status before the call (``running`` when this call cancelled it)."""
        with http_errors():
            wf = Workflow(workflow_id, tq)
            before = await wf.cancel()
            return WorkflowCancelled(id=workflow_id, before=before,
                                     status=workflow_out(await wf.status()))

    return router
