"""Typed wrappers of the workflow scripts (``lua/workflow_start.lua``,
``lua/workflow_cancel.lua``); the scripts that end steps are the worker's own (``complete``,
``dead``, see :mod:`taskq.scripts`), and so is ``cancel`` (a step cancelled on its own)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskq.keys import GROUP, QueueKeys
from taskq.scripts import Scripts


class WorkflowScripts:
    """The workflow scripts, called through a TaskQueue's :class:`~taskq.scripts.Scripts`
    (so through its lane: the connection a ``WAIT`` after a start must use, see
    :mod:`taskq.durability`)."""

    def __init__(self, scripts: Scripts) -> None:
        self._scripts = scripts

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
        r = await self._scripts.call(name="workflow_start", keys=keys, args=args)
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
        channels = [await self._scripts.events(keys=q) for q in queues]
        r = await self._scripts.call(name="workflow_cancel", keys=keys,
                                     args=[GROUP, record, ttl_ms, *channels])
        status = r[0].decode() if isinstance(r[0], bytes) else str(r[0])
        return status, int(r[1])
