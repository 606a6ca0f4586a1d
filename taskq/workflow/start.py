"""Starting a workflow: a plan (see :mod:`taskq.workflow.canvas`) laid out in its Redis hash,
its first steps enqueued, in one script call.

Ids: a workflow is ``"<home queue>:<ms>-w<hex>"`` (its home is its first step's queue; its
hash lives under that queue's hash tag); each step gets a task id of its own queue up front,
``"<queue>:<ms>-d<hex>"`` (the form of a scheduled task's id), all with the same ``ms``, so all
of one queue's steps share one record bucket.
"""

from __future__ import annotations

import secrets
import time
import typing
from typing import TYPE_CHECKING, Any

from redis.crc import key_slot

from taskq import codec, durability
from taskq.cluster import is_cluster
from taskq.codec import WorkflowRef
from taskq.errors import BacklogFull, PayloadTooLarge, TaskValidationError, WorkflowError
from taskq.keys import QueueKeys, queues_key
from taskq.scripts import workflow_key
from taskq.workflow.canvas import Leaf, Node, Plan, compile_plan
from taskq.workflow.handle import SyncWorkflow, Workflow
from taskq.workflow.scripts import WorkflowScripts

if TYPE_CHECKING:
    from taskq.queue import TaskQueue

MAX_STEPS = 10_000


async def start(tq: TaskQueue, node: Node | Leaf) -> Workflow:
    """Start a workflow of ``node`` (a chain, group, chord or link): its first steps are
    enqueued now, the others by the scripts that finish the steps before them. One round trip
    (two the first time a queue is used). Raises WorkflowError for a shape that cannot run
    (or, on a Redis Cluster, steps in queues of different slots), TaskValidationError,
    PayloadTooLarge, BacklogFull (then nothing was stored). With ``min_replicas`` (see
    :mod:`taskq.durability`) the start is confirmed as an enqueue is: NotReplicated when too
    few replicas have it in time (the workflow *was* started on the master and runs)."""
    plan = compile_plan(node)
    if len(plan.steps) > MAX_STEPS:
        raise WorkflowError(f"{len(plan.steps)} steps: a workflow has at most {MAX_STEPS}")
    _check_inputs(tq, plan)
    queues = plan.queues
    if is_cluster(tq.redis):
        check_one_slot(tq.prefix, queues)
    ms = int(time.time() * 1000)
    workflow_id = f"{queues[0]}:{ms}-w{secrets.token_hex(8)}"
    fields, first = _layout(tq, plan, workflow_id, queues, ms)
    scripts = WorkflowScripts(tq.scripts)
    new = set(queues) - tq._known_queues  # (the registry of queues the admin view lists)
    if new:
        await tq.redis.sadd(queues_key(tq.prefix), *new)  # type: ignore[misc]
        tq._known_queues |= new
    key = workflow_key(tq.prefix, workflow_id)
    ok, rest = await scripts.start(key=key, queues=[tq.keys(q) for q in queues],
                                   fields=fields, first=first, limit=tq.max_backlog)
    if ok == 0:
        raise BacklogFull(queues[int(rest[0]) - 1], int(rest[1]), tq.max_backlog)
    if ok < 0:
        raise WorkflowError(f"workflow {workflow_id} exists already")
    if tq.min_replicas:  # (the script ran on the lane: WAIT there covers it)
        await durability.confirm(tq.lane, key, tq.min_replicas, tq.replicas_timeout_ms,
                                 f"workflow {workflow_id}")
    return Workflow(workflow_id, tq)


def check_one_slot(prefix: str, queues: list[str]) -> None:
    """On a Redis Cluster a workflow's scripts touch the keys of all its queues at once, which
    works only when they share one slot (one queue and its priority lanes always do): raise
    WorkflowError, before anything is stored, for queues in different slots (Redis would
    refuse the script with CROSSSLOT)."""
    slots: dict[int, str] = {}
    for q in queues:
        slots.setdefault(key_slot(QueueKeys(prefix, q).stream.encode()), q)
    if len(slots) > 1:
        names = ", ".join(repr(q) for q in slots.values())
        raise WorkflowError(
            f"on a Redis Cluster a workflow's steps must share one queue (a queue's priority "
            f"lanes are fine): queues {names} are in different slots, and the scripts that "
            f"move a workflow touch all its queues at once (give its steps one queue)")


def start_sync(tq: TaskQueue, node: Node | Leaf) -> SyncWorkflow:
    """:func:`start` for synchronous code: blocks until the workflow is stored; returns a
    blocking handle."""
    async def begin(app: TaskQueue) -> str:
        return (await start(app, node)).id

    return SyncWorkflow(tq.sync_loop.run(begin), tq)


def _check_inputs(tq: TaskQueue, plan: Plan) -> None:
    """Refuse a step whose input parameter is missing, or whose annotation plainly cannot take
    what the steps before it return (both plain classes, e.g. ``str`` for an ``int``; a plain
    class for a chord's list). Anything less plain is left to the check when the step runs."""
    for s in plan.steps:
        task = tq.registry.get(s.message.task)
        if task is None or not s.param:
            continue
        if s.param not in task.signature.fields:
            raise TaskValidationError(s.message.task, [
                {"loc": (s.param,), "msg": "no such parameter", "type": "workflow"}])
        if s.handler:  # its input is a StepFailure
            continue
        want = task.signature.fields[s.param]
        returns = []
        for d in s.deps:
            before = tq.registry.get(plan.steps[d].message.task)
            returns.append(before.signature.returns if before is not None else Any)
        given: Any = Any
        if s.input == "1" and returns:
            given = returns[0]
        elif s.input == "L":
            given = list
            items = typing.get_args(want)
            if typing.get_origin(want) is list and items and any(
                    _mismatch(r, items[0]) for r in returns):
                raise _input_error(s.message.task, s.param, want, returns)
        if _mismatch(given, want):
            raise _input_error(s.message.task, s.param, want, returns)


def _mismatch(given: Any, want: Any) -> bool:
    """True only when both are plain classes and a ``given`` value cannot be a ``want``."""
    if not (isinstance(given, type) and isinstance(want, type)) or want is object:
        return False
    if want is float and given is int:
        return False
    try:
        return not issubclass(given, want)
    except TypeError:  # a class issubclass refuses (a TypedDict, a protocol): run time decides
        return False


def _input_error(task: str, param: str, want: Any, returns: list[Any]) -> TaskValidationError:
    names = ", ".join(getattr(r, "__name__", str(r)) for r in returns)
    return TaskValidationError(task, [{
        "loc": (param,), "type": "workflow",
        "msg": f"takes {getattr(want, '__name__', want)}, but the step before returns {names}"}])


def _layout(tq: TaskQueue, plan: Plan, workflow_id: str, queues: list[str],
            ms: int) -> tuple[list[tuple[str, Any]], list[tuple[int, str, bytes]]]:
    """The workflow hash's fields (layout: ``lua/_workflow.lua``) and the first steps."""
    q_index = {q: i + 1 for i, q in enumerate(queues)}
    all_queues = tuple(queues)
    fields: list[tuple[str, Any]] = []
    first: list[tuple[int, str, bytes]] = []
    task_ids = [f"{s.queue}:{ms}-d{secrets.token_hex(8)}" for s in plan.steps]
    left = 0
    for s in plan.steps:
        msg = s.message
        envelope = codec.encode(codec.Message(
            msg.task, msg.args, msg.kwargs, 0, ms, task_ids[s.index],
            workflow=WorkflowRef(workflow_id, s.index, s.param, all_queues)))
        if len(envelope) > tq.max_payload_bytes:
            raise PayloadTooLarge(len(envelope), tq.max_payload_bytes)
        fail = "" if s.fail is None else str(s.fail)
        fields.append((f"d:{s.index}", "\t".join((
            s.input, "1" if s.keep else "0", fail, ",".join(map(str, s.next)),
            ",".join(map(str, s.deps)), str(q_index[s.queue]), task_ids[s.index]))))
        if s.handler:
            fields += ((f"st:{s.index}", "standby"), (f"e:{s.index}", envelope))
            continue
        left += 1
        if s.deps:
            fields += ((f"st:{s.index}", "waiting"), (f"w:{s.index}", len(s.deps)),
                       (f"e:{s.index}", envelope))
        else:
            fields.append((f"st:{s.index}", "queued"))
            first.append((q_index[s.queue], task_ids[s.index], envelope))
    meta = {"k": plan.kind, "c": ms, "t": [s.message.task for s in plan.steps],
            "x": plan.exits, "g": plan.grouped, "q": queues,
            "h": [s.index for s in plan.steps if s.handler]}
    fields += (("status", "running"), ("n", len(plan.steps)), ("left", left),
               ("onerr", "" if plan.on_error is None else str(plan.on_error)),
               ("meta", codec.pack(meta)))
    return fields, first
