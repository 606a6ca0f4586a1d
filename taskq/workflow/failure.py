"""What a failure handler (``on_failure=``, ``on_error=``) is given: the step that died."""

from __future__ import annotations

from typing import Any

from typing_extensions import TypedDict

from taskq.codec import WorkflowRef, pack


class StepFailure(TypedDict):
    """The input of a failure handler: the workflow, the step that ended dead (its index, task
    id and task name) and why (the dead-letter reason, error type and message)."""

    workflow: str
    step: int
    task_id: str
    task: str
    reason: str
    error_type: str
    error: str


def step_failure(ref: WorkflowRef, task_id: str, task: str, reason: str, error_type: str,
                 error: str) -> bytes:
    """The failure handler's input for step ``ref`` dying, as msgpack."""
    failure: dict[str, Any] = {
        "workflow": ref.id, "step": ref.step, "task_id": task_id, "task": task,
        "reason": reason, "error_type": error_type, "error": error[:2000],
    }
    return pack(failure)
