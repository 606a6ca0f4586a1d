"""Typed wrappers of the workflow scripts (``lua/workflow_start.lua``,
``lua/workflow_cancel.lua``); the scripts that end steps are the worker's own (``complete``,
``dead``, see :mod:`taskq.scripts`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from taskq import cluster
from taskq.keys import GROUP, QueueKeys
from taskq.scripts import events_arg, source


class WorkflowScripts:
    """The workflow scripts, bound to one asyncio client."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._start: AsyncScript = client.register_script(source("workflow_start"))
        self._cancel: AsyncScript = client.register_script(source("workflow_cancel"))

    async def start(
        self, *, key: str, queues: Sequence[QueueKeys], fields: Sequence[tuple[str, Any]],
        first: Sequence[tuple[int, str, bytes]], limit: int,
    ) -> tuple[int, list[Any]]:
        """Store a workflow's hash (``fields``) and XADD its ``first`` steps (queue index into
        ``queues`` from 1, task id, envelope) unless a stream would pass ``limit``: (1, entry
        ids), (0, [queue index, stream length]) when refused, (-1, []) when ``key`` exists."""
        keys = [key]
        for q in queues:
            keys += (q.stream, q.entries)
        args: list[Any] = [limit, len(fields)]
        for f, v in fields:
            args += (f, v)
        for q_index, task_id, payload in first:
            args += (q_index, task_id, payload)
        r = await self._start(keys=keys, args=args)
        return int(r[0]), list(r[1:])

    async def cancel(
        self, *, key: str, queues: Sequence[QueueKeys], bucket: int, record: bytes,
        ttl_ms: int,
    ) -> tuple[str, int]:
        """Cancel a running workflow (see the script): (its status before, steps cancelled);
        status "" when there is no such workflow."""
        keys = [key]
        for q in queues:
            keys += (q.stream, q.entries, q.records(bucket))
        sharded = await cluster.sharded_events(self._client)
        r = await self._cancel(keys=keys, args=[GROUP, record, ttl_ms,
                                                *(events_arg(q, sharded) for q in queues)])
        status = r[0].decode() if isinstance(r[0], bytes) else str(r[0])
        return status, int(r[1])


def workflow_scripts(client: Redis) -> WorkflowScripts:
    """The workflow scripts of ``client`` (registered once per client)."""
    scripts: WorkflowScripts | None = getattr(client, "_taskq_workflow_scripts", None)
    if scripts is None:
        scripts = WorkflowScripts(client)
        client._taskq_workflow_scripts = scripts  # type: ignore[attr-defined]
    return scripts
