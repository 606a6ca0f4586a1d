"""Workflows: chains, groups, chords and per-task callbacks, crash-safe (see docs/workflows.md).

::

    wf = await start(tq, chain(fetch.message(url), parse.step(), store.step()))
    await wf.status(); await wf.result(); await wf.cancel()

The script that finishes a step (``lua/complete.lua``, or ``lua/dead.lua`` when it dies) also
counts it in its workflow and enqueues what it releases, so a worker killed at any point
neither loses a step nor enqueues one twice.
"""

from __future__ import annotations

from taskq.workflow.canvas import Chain, Group, Linked, Node, chain, chord, group, link
from taskq.workflow.failure import StepFailure
from taskq.workflow.handle import StepState, SyncWorkflow, Workflow, WorkflowStatus
from taskq.workflow.start import start, start_sync
from taskq.workflow.step import Step

start_workflow = start
"""``taskq.start_workflow``: :func:`start` under a name that says what it starts."""
start_workflow_sync = start_sync

__all__ = [
    "Chain",
    "Group",
    "Linked",
    "Node",
    "Step",
    "StepFailure",
    "StepState",
    "SyncWorkflow",
    "Workflow",
    "WorkflowStatus",
    "chain",
    "chord",
    "group",
    "link",
    "start",
    "start_sync",
    "start_workflow",
    "start_workflow_sync",
]
