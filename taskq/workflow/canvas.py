"""The shapes of a workflow (chain, group, chord, per-task callbacks) and how one compiles into
a plan: numbered steps, each waiting for the steps before it (pure: no I/O).

Leaves are messages (``task.message(...)``: all arguments given; the step ignores what came
before) and steps (``task.step(...)``: the first parameter, or the one named by
``task.step_into``, takes the input). A step's input is the result of the step before it in a
chain, or the list of the results of a group before it (a chord's callback), in the group's
order; a failure handler's input is a :class:`~taskq.workflow.StepFailure`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from taskq.codec import Message
from taskq.errors import WorkflowError
from taskq.workflow.step import Step

Leaf = Message | Step[Any, Any]


class Node:
    """A part of a workflow (``taskq.workflow.start(tq, node)`` starts one)."""

    on_error: Leaf | None = None


@dataclass(eq=False)
class Chain(Node):
    """Each part runs after the one before it succeeded (see :func:`chain`)."""

    parts: list[Node | Leaf]
    on_error: Leaf | None = None


@dataclass(eq=False)
class Group(Node):
    """Parts that run in parallel; its result is the list of theirs, in order."""

    parts: list[Node | Leaf]
    on_error: Leaf | None = None


@dataclass(eq=False)
class Linked(Node):
    """A task with its own callbacks: ``on_success`` takes its result, ``on_failure`` a
    :class:`StepFailure` when it ends dead."""

    task: Leaf
    on_success: Node | Leaf | None = None
    on_failure: Leaf | None = None


def chain(*parts: Node | Leaf, on_error: Leaf | None = None) -> Chain:
    """Run ``parts`` one after the other, each once the previous succeeded; a
    :class:`~taskq.workflow.Step` part takes the previous part's result. ``on_error`` runs
    (once) if any step ends dead, with a :class:`StepFailure`."""
    return Chain(list(parts), on_error)


def group(parts: Iterable[Node | Leaf], *, on_error: Leaf | None = None) -> Group:
    """Run ``parts`` in parallel."""
    return Group(list(parts), on_error)


def chord(header: Group | Iterable[Node | Leaf], callback: Node | Leaf, *,
          on_error: Leaf | None = None) -> Chain:
    """Run the group ``header``, then ``callback`` once every member succeeded, with the list
    of their results in order. A member that ends dead fails the chord: the callback never
    runs, and ``on_error`` (if given) runs with a :class:`StepFailure`."""
    members = header if isinstance(header, Group) else group(header)
    return Chain([members, callback], on_error)


def link(task: Leaf, *, on_success: Node | Leaf | None = None,
         on_failure: Leaf | None = None) -> Linked:
    """``task`` with callbacks: ``on_success`` runs after it succeeded (a step takes its
    result), ``on_failure`` if it ends dead (a step takes a :class:`StepFailure`)."""
    return Linked(task, on_success, on_failure)


# -- the plan ----------------------------------------------------------------------------------

@dataclass(slots=True)
class Planned:
    """One step of a plan. ``input``: "" none, "1" the single predecessor's result, "L" the
    list of the results of ``deps`` (in order)."""

    index: int
    message: Message
    queue: str
    param: str
    deps: list[int] = field(default_factory=list)
    input: str = ""
    handler: bool = False
    fail: int | None = None
    next: list[int] = field(default_factory=list)
    keep: bool = False


@dataclass(slots=True)
class Plan:
    """A compiled workflow: its steps, its on_error step, and its final steps (whose results
    are the workflow's result: one, or a list when ``grouped``)."""

    steps: list[Planned]
    on_error: int | None
    exits: list[int]
    grouped: bool
    kind: str

    @property
    def queues(self) -> list[str]:
        """The workflow's queues, the first step's queue first (its home)."""
        seen: dict[str, None] = {}
        for s in self.steps:
            seen.setdefault(s.queue, None)
        return list(seen)


def compile_plan(node: Node | Leaf) -> Plan:
    """The plan of ``node``; raises :class:`WorkflowError` for a shape that cannot run."""
    b = _Builder()
    entries, exits, grouped = b.node(node, [], False)
    for e in entries:
        if b.steps[e].param and not b.steps[e].deps:
            raise WorkflowError(f"step {e} ({b.steps[e].message.task}) takes the result of a "
                                "previous step, but nothing comes before it")
    on_error = None
    handler = node_on_error(node)
    if handler is not None:
        on_error = b.handler(handler)
    kind = type(node).__name__.lower() if isinstance(node, Node) else "task"
    if isinstance(node, Chain) and len(node.parts) == 2 and isinstance(node.parts[0], Group):
        kind = "chord"
    for s in b.steps:
        for d in s.deps:
            b.steps[d].next.append(s.index)
            if s.input:
                b.steps[d].keep = True
    return Plan(b.steps, on_error, exits, grouped, kind)


def node_on_error(node: Node | Leaf) -> Leaf | None:
    return node.on_error if isinstance(node, Node) else None


class _Builder:
    def __init__(self) -> None:
        self.steps: list[Planned] = []

    def leaf(self, leaf: Leaf, deps: list[int], grouped: bool) -> int:
        i = len(self.steps)
        if isinstance(leaf, Message):
            if leaf.queue is None:
                raise WorkflowError(f"message of {leaf.task!r} has no queue: build it with "
                                    "task.message(...)")
            msg, queue, param = leaf, leaf.queue, ""
        elif isinstance(leaf, Step):
            msg = Message(leaf.task, (), dict(leaf.kwargs))
            queue, param = leaf.queue, leaf.param
        else:
            raise WorkflowError(f"{leaf!r} is not a workflow part (task.message(...), "
                                "task.step(...), chain, group, chord or link)")
        mode = ""
        if param and deps:
            mode = "L" if grouped else "1"
        self.steps.append(Planned(i, msg, queue, param, list(deps), mode))
        return i

    def handler(self, leaf: Leaf) -> int:
        if not isinstance(leaf, Message | Step):
            raise WorkflowError("a failure handler is a single task (task.message(...) or "
                                "task.step(...)), not a chain or group")
        i = self.leaf(leaf, [], False)
        self.steps[i].handler = True
        if leaf_param(leaf):
            self.steps[i].input = "1"  # the StepFailure
        return i

    def node(self, node: Node | Leaf, deps: list[int],
             grouped: bool) -> tuple[list[int], list[int], bool]:
        """Add ``node`` after ``deps`` (a group's exits when ``grouped``): (its entry steps,
        its exit steps, whether its result is a group's list)."""
        if isinstance(node, Message | Step):
            i = self.leaf(node, deps, grouped)
            return [i], [i], False
        if isinstance(node, Chain):
            if not node.parts:
                raise WorkflowError("a chain needs at least one part")
            if node.on_error is not None and deps:
                raise WorkflowError("on_error is given to the whole workflow only")
            entries: list[int] = []
            for n, part in enumerate(node.parts):
                e, deps, grouped = self.node(part, deps, grouped)
                if n == 0:
                    entries = e
            return entries, deps, grouped
        if isinstance(node, Group):
            if not node.parts:
                raise WorkflowError("a group needs at least one part")
            entries, exits = [], []
            for part in node.parts:
                e, x, _ = self.node(part, deps, grouped)
                entries += e
                if len(x) != 1:
                    raise WorkflowError("a group member ends in one task (a group in a group: "
                                        "follow the inner group with a step)")
                exits += x
            return entries, exits, True
        if isinstance(node, Linked):
            if not isinstance(node.task, Message | Step):
                raise WorkflowError("link() takes a single task")
            i = self.leaf(node.task, deps, grouped)
            if node.on_success is not None:
                self.node(node.on_success, [i], False)
            if node.on_failure is not None:
                self.steps[i].fail = self.handler(node.on_failure)
            return [i], [i], False
        raise WorkflowError(f"{node!r} is not a workflow part")


def leaf_param(leaf: Leaf) -> str:
    return leaf.param if isinstance(leaf, Step) else ""
