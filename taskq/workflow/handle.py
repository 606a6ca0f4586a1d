"""A caller's handle on a workflow: its status (each step's state), its result, cancel."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from taskq import codec, ids
from taskq.errors import (
    ResultTimeout,
    TaskNotFound,
    WorkflowFailed,
    WorkflowNotFound,
)
from taskq.records import BUCKET_MS, TaskStatus, encode_record
from taskq.scripts import workflow_key
from taskq.workflow.scripts import WorkflowScripts

if TYPE_CHECKING:
    from taskq.queue import TaskQueue

ENDED_STEP_STATES = frozenset({"succeeded", "dead", "cancelled", "skipped"})
"""Step states that are final (``standby``: a failure handler never needed)."""


@dataclass(frozen=True, slots=True)
class StepState:
    """One step of a workflow. ``state``: ``waiting`` (for the steps before it), ``standby``
    (a failure handler not needed so far), ``queued``, ``running``, ``failed`` (will retry),
    ``succeeded``, ``dead``, ``cancelled`` or ``skipped`` (the workflow failed or was cancelled
    before it could run)."""

    index: int
    task: str
    task_id: str
    queue: str
    state: str
    handler: bool = False
    result: Any = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class WorkflowStatus:
    """A workflow's state. ``status``: ``running``, ``succeeded``, ``failed`` (a step ended
    dead) or ``cancelled``; ``finished``: none of its steps will run any more (a failed or
    cancelled workflow may still have steps running that were running at the time)."""

    id: str
    kind: str
    status: str
    finished: bool
    created_ms: int
    steps: list[StepState] = field(default_factory=list)
    exits: list[int] = field(default_factory=list)
    grouped: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("exits", "grouped")}
        d["steps"] = [s.to_dict() for s in self.steps]
        return d


def split_id(workflow_id: str) -> tuple[str, str]:
    """(home queue, suffix); raises WorkflowNotFound for a string that is no workflow id."""
    home, sep, suffix = workflow_id.rpartition(":")
    ms, dash, rest = suffix.partition("-")
    if (not sep or not home or not dash or not ms.isdigit() or not rest.startswith("w")
            or not rest[1:] or any(c not in "0123456789abcdef" for c in rest[1:])):
        raise WorkflowNotFound(workflow_id)
    return home, suffix


class Workflow:
    """A handle on workflow ``id`` of ``tq`` (``taskq.workflow.start`` returns one; build one
    for an id from elsewhere with ``Workflow(id, tq)``)."""

    def __init__(self, id: str, tq: TaskQueue) -> None:
        split_id(id)
        self.id = id
        self.tq = tq

    def __repr__(self) -> str:
        return f"<Workflow {self.id}>"

    @property
    def key(self) -> str:
        return workflow_key(self.tq.prefix, self.id)

    async def _raw(self) -> dict[str, bytes]:
        raw: dict[bytes, bytes] = await self.tq.redis.hgetall(self.key)  # type: ignore[misc]
        if not raw:
            raise WorkflowNotFound(self.id)
        return {k.decode(): v for k, v in raw.items()}

    async def status(self) -> WorkflowStatus:
        """The workflow and each step's state (a step enqueued is read from the task's own
        state: queued, running, failed and retrying, ...). Raises WorkflowNotFound."""
        raw = await self._raw()
        meta = codec.unpack(raw["meta"])
        n = int(raw["n"])
        handlers = set(meta.get("h", []))
        steps: list[StepState] = []
        live: list[int] = []
        for i in range(n):
            d = raw[f"d:{i}"].decode().split("\t")
            task_id = d[6]
            st = raw.get(f"st:{i}", b"").decode()
            steps.append(StepState(i, meta["t"][i], task_id, ids.split(task_id)[0], st,
                                   i in handlers))
            if st in ("queued", "succeeded", "dead"):
                live.append(i)
        records = await asyncio.gather(*(self._record(steps[i]) for i in live))
        for i, rec in zip(live, records, strict=True):
            s = steps[i]
            if rec is None:
                continue
            now = s.state
            if s.state == "queued":
                now = str(rec.status)
            steps[i] = StepState(s.index, s.task, s.task_id, s.queue, now, s.handler,
                                 rec.result, rec.error)
        status = raw["status"].decode()
        finished = int(raw.get("left", b"0")) <= 0  # (the hash alone: read at one instant)
        return WorkflowStatus(self.id, str(meta.get("k", "")), status, finished,
                              int(meta.get("c", 0)), steps, list(meta.get("x", [])),
                              bool(meta.get("g")))

    async def _record(self, step: StepState) -> Any:
        try:
            return await self.tq.status(step.task_id)
        except TaskNotFound:
            return None

    async def wait(self, timeout: float | None = None) -> WorkflowStatus:
        """Wait until the workflow is finished (polling, from 20 ms up to 0.5 s apart)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.02
        while True:
            st = await self.status()
            if st.finished:
                return st
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeout(f"workflow {self.id} has not finished after {timeout} s")
            left = None if deadline is None else deadline - time.monotonic()
            await asyncio.sleep(pause if left is None else max(0.0, min(pause, left)))
            pause = min(pause * 1.5, 0.5)

    async def result(self, timeout: float | None = None) -> Any:
        """The workflow's result once it finished: its last step's result (a list for a group,
        in order). Raises WorkflowFailed when a step ended dead or it was cancelled."""
        st = await self.wait(timeout)
        if st.status != "succeeded":
            raise WorkflowFailed(self.id, st)
        results = [st.steps[i].result for i in st.exits]
        return results if st.grouped else results[0]

    async def cancel(self) -> str:
        """Cancel the workflow: steps still waiting never run, steps enqueued but not yet
        taken by a worker are removed; steps already running go on (their end starts
        nothing). Returns the status it had ('running' when this call cancelled it)."""
        raw = await self._raw()
        meta = codec.unpack(raw["meta"])
        record = encode_record(TaskStatus.CANCELLED, finished_ms=int(time.time() * 1000),
                               error="cancelled with its workflow before it ran")
        before, _ = await WorkflowScripts(self.tq.scripts).cancel(
            key=self.key, queues=[self.tq.keys(q) for q in meta["q"]],
            bucket=int(meta["c"]) // BUCKET_MS, record=record, ttl_ms=self.tq.result_ttl_ms)
        if not before:
            raise WorkflowNotFound(self.id)
        return before


class SyncWorkflow:
    """:class:`Workflow` for synchronous code (``start_sync`` returns one): the same reads,
    blocking, run on the TaskQueue's private event loop thread."""

    def __init__(self, id: str, tq: TaskQueue) -> None:
        split_id(id)
        self.id = id
        self.tq = tq

    def __repr__(self) -> str:
        return f"<SyncWorkflow {self.id}>"

    def status(self) -> WorkflowStatus:
        workflow_id = self.id
        return self.tq.sync_loop.run(lambda app: Workflow(workflow_id, app).status())

    def wait(self, timeout: float | None = None) -> WorkflowStatus:
        workflow_id = self.id
        return self.tq.sync_loop.run(lambda app: Workflow(workflow_id, app).wait(timeout))

    def result(self, timeout: float | None = None) -> Any:
        workflow_id = self.id
        return self.tq.sync_loop.run(lambda app: Workflow(workflow_id, app).result(timeout))

    def cancel(self) -> str:
        workflow_id = self.id
        return self.tq.sync_loop.run(lambda app: Workflow(workflow_id, app).cancel())
