"""The operator view's values: frozen dataclasses whose ``to_dict`` is the CLI's and API's JSON.

Each ``to_dict`` is a stable shape, shared by the CLI (``--json``) and the HTTP API.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """The figures of one queue.

    ``length``: entries in the stream (waiting + in flight); ``in_flight``: delivered, not yet
    finished (the group's pending list); ``lag``: entries not yet delivered; ``delayed``:
    scheduled tasks and retries waiting for their time; ``dead``: dead letters;
    ``completed_last_minute``: completions over the last 60 s (current minute counter plus the
    previous one pro rata); ``throttled_total``: times a task was made to wait by its rate or
    concurrency limit (no attempt used); ``priority_waiting``: for a queue with priority lanes,
    entries in the stream of each level that has one (``{"high": 3, "normal": 40}``; see
    :mod:`taskq.priority`), else empty.
    """

    name: str
    length: int
    in_flight: int
    lag: int
    delayed: int
    dead: int
    consumers: int
    oldest_waiting_age_s: float | None
    completed_last_minute: int
    completed_total: int
    retried_total: int
    dead_total: int
    lost_total: int
    paused: bool
    expired_total: int = 0  # ended unstarted after their expiry (``with_options(expires=)``)
    deferred_total: int = 0  # looks at an unknown task name handed back in the deploy grace
    throttled_total: int = 0
    priority_waiting: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ConsumerInfo:
    """One consumer of a queue's group (a worker): entries it holds and how long it is idle."""

    name: str
    pending: int
    idle_ms: int
    alive: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DelayedTask:
    """A task waiting for its time (scheduled, or a retry after backoff)."""

    task_id: str
    task: str | None
    run_at_ms: int
    attempts: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Failure:
    """A recent failure: a dead letter (``status`` "dead") or a failed attempt awaiting retry
    (``status`` "failed")."""

    task_id: str
    task: str | None
    status: str
    error_type: str | None
    error: str | None
    attempts: int
    failed_ms: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of a queue's dead-letter stream; ``args``/``kwargs`` decoded from its payload
    when possible (``payload_ok`` False otherwise)."""

    id: str
    queue: str
    task_id: str
    entry: str
    task: str
    reason: str
    error_type: str
    error: str
    traceback: str
    attempts: int
    enqueued_ms: int | None
    failed_ms: int | None
    worker: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    payload_ok: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class KeptLetter:
    """A dead letter a replay left in place: its task's unique ``key`` is held by another
    task, ``holder``, that lives (queued, delayed, running or retrying) or succeeded and keeps
    its key (``kept_after_success``, unique_for). Replaying it then would make two live tasks
    of one key; replay it once the holder has ended, or purge it."""

    id: str
    task_id: str
    key: str
    holder: str
    kept_after_success: bool

    @property
    def reason(self) -> str:
        how = "succeeded and keeps it (unique_for)" if self.kept_after_success else "lives"
        return f"its unique key {self.key!r} is held by task {self.holder}, which {how}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Replay:
    """What a replay of dead letters of ``queue`` did: ``replayed`` enqueued again; the others
    of the selection with a payload stay in the dead letters, for one of two reasons:
    ``workflow_steps``, the task ids of dead letters of workflow steps (a step's death already
    failed its workflow, which a replay cannot resume: start the workflow again), and ``kept``,
    those whose unique key another task holds."""

    queue: str
    replayed: int
    workflow_steps: list[str] = field(default_factory=list)
    kept: tuple[KeptLetter, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"queue": self.queue, "replayed": self.replayed,
                "workflow_steps": list(self.workflow_steps),
                "kept": [k.to_dict() for k in self.kept]}


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker as its last heartbeat described it; ``alive`` while its heartbeat key lives."""

    id: str
    host: str
    pid: int | None
    queues: list[str]
    concurrency: int
    in_flight: int
    processed: int
    succeeded: int
    failed: int
    retried: int
    dead: int
    reclaimed: int
    started_ms: int | None
    heartbeat_ms: int | None
    stopping: bool
    alive: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
