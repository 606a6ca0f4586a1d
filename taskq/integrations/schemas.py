"""HTTP request and response models (pydantic), with the examples shown in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

TASK_ID_EXAMPLE = "default:1732190000000-0"


# The pydantic mypy plugin gives __init__ a **kwargs of its own, which clashes with the field
# named "kwargs" (the record's stable JSON shape); instances are made with model_validate.
class TaskOut(BaseModel):  # type: ignore[no-redef]
    """What is known of one task (the record's stable JSON shape)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": TASK_ID_EXAMPLE, "queue": "default", "status": "succeeded",
        "task": "send_welcome_email", "args": [], "kwargs": {"email": "ada@example.com"},
        "attempts": 1, "enqueued_ms": 1732190000000, "started_ms": 1732190000004,
        "finished_ms": 1732190000010, "run_at_ms": None, "result": {"sent_to": "ada@example.com"},
        "error_type": None, "error": None, "traceback": None, "progress": None,
        "progress_message": None, "worker": "host-1234-ab12", "entry_id": None,
        "deliveries": None, "result_dropped": False,
    }]})

    id: str
    queue: str
    status: str = Field(description="queued, running, failed (will retry), succeeded, dead, "
                                    "cancelled or expired (not started before its expiry)")
    task: str | None = None
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    attempts: int = 0
    enqueued_ms: int | None = None
    started_ms: int | None = None
    finished_ms: int | None = None
    run_at_ms: int | None = None
    result: Any = None
    error_type: str | None = None
    error: str | None = None
    traceback: str | None = None
    progress: float | None = None
    progress_message: str | None = None
    worker: str | None = None
    entry_id: str | None = None
    deliveries: int | None = None
    result_dropped: bool = Field(False, description="true when the task ended while Redis was "
                                 "out of memory: its record kept only its status (result not "
                                 "kept: Redis was out of memory)")


class Enqueued(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": TASK_ID_EXAMPLE, "task": "send_welcome_email", "queue": "default",
        "run_at_ms": None, "status_url": f"/v1/tasks/{TASK_ID_EXAMPLE}",
        "idempotent_replay": False,
    }]})

    id: str = Field(description="the task id, stable across retries and replays")
    task: str
    queue: str
    run_at_ms: int | None = Field(None, description="due time of a delayed task")
    status_url: str
    idempotent_replay: bool = Field(
        False, description="true when an earlier request with the same Idempotency-Key "
                           "enqueued this task")


class Cancelled(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": TASK_ID_EXAMPLE, "outcome": "queued"}]})

    id: str
    outcome: str = Field(description="queued or delayed (removed before it ran), or running "
                                     "(the worker cancels an async task; a sync task's result "
                                     "is discarded)")


class TaskInfo(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "send_welcome_email", "queue": "default", "max_attempts": 3,
        "timeout_s": None, "arguments": {"type": "object", "properties": {
            "email": {"type": "string"}}, "required": ["email"]},
    }]})

    name: str
    queue: str
    max_attempts: int
    timeout_s: float | None
    arguments: dict[str, Any] = Field(description="JSON schema of the request body of enqueue")


class Problem(BaseModel):
    detail: Any


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class KeptLetter(BaseModel):
    """A dead letter a replay left in place: another task holds its unique key."""

    id: str
    task_id: str
    key: str
    holder: str = Field(description="the task holding the key")
    kept_after_success: bool = Field(description="the holder succeeded and keeps its key "
                                                 "(unique_for); else it lives")
    reason: str


class Replayed(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"queue": "default",
                                                              "replayed": 2,
                                                              "workflow_steps": []}]})

    queue: str
    replayed: int = Field(description="dead letters enqueued again, attempts reset to 0")
    workflow_steps: list[str] = Field(
        default_factory=list,
        description="task ids of dead letters not replayed because they are workflow steps: "
                    "a step's death already failed its workflow, which a replay cannot resume "
                    "(start the workflow again)")
    kept: list[KeptLetter] = Field(
        default_factory=list,
        description="dead letters not replayed (they stay): their unique key is held by "
                    "another task")


class Purged(BaseModel):
    queue: str
    purged: int = Field(examples=[3])


class Paused(BaseModel):
    queue: str
    paused: bool
    warning: str | None = Field(default=None, description=(
        "only when the name was no queue yet (a likely typo): the known queues and the closest"))


def _not_nullable(schema: dict[str, Any]) -> None:
    """The schema of a DeadSelection: ``ids`` and ``task`` are absent or of their type, never
    null (a null is answered 422), and examples."""
    for prop in schema.get("properties", {}).values():
        branches = prop.pop("anyOf", None)
        if branches:
            prop.update(next(b for b in branches if b.get("type") != "null"))
            prop.pop("default", None)
    schema["examples"] = [{"ids": ["1732190000000-0"]}, {"task": "always_fails"},
                          {"all": True}]


class DeadSelection(BaseModel):
    """Which dead letters to replay or purge: by ``ids``, every one of a ``task``, or every
    dead letter of the queue with ``"all": true`` (required: an empty body, ``{}`` or
    ``"ids": null`` select nothing and are answered 422)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_not_nullable)

    ids: list[str] | None = Field(
        None, max_length=1000, description="dead-letter ids (with ``task``: only those of it)")
    task: str | None = Field(
        None, max_length=500, description="only dead letters of this task (every one of them "
                                          "unless ``ids`` are given)")
    all: bool = Field(False, description="every dead letter of the queue (of ``task``, if "
                                         "given): must be said explicitly")

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = sorted(str(k) for k, v in data.items() if v is None)
            if nulls:
                raise ValueError(f"{', '.join(nulls)} may not be null: leave it out, or say "
                                 'which dead letters ("ids": [...], "task": "...", '
                                 '"all": true)')
        return data

    @model_validator(mode="after")
    def _explicit(self) -> DeadSelection:
        if self.ids is not None and self.all:
            raise ValueError('give "ids" or "all": true, not both')
        if self.ids is None and self.task is None and not self.all:
            raise ValueError('say which dead letters: "ids": [...], "task": "...", or '
                             '"all": true for every dead letter of the queue')
        return self
