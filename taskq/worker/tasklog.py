"""The per-task log line: one INFO record per ended attempt on the ``taskq.tasks`` logger."""

from __future__ import annotations

import logging
import time

from taskq.codec import Message
from taskq.worker.texts import for_log

log = logging.getLogger("taskq.tasks")


def task_log() -> TaskLog | None:
    """A writer when ``taskq.tasks`` logs INFO, else None: asked once, when a worker starts,
    so that a disabled line costs one ``is None`` test per task."""
    return TaskLog() if log.isEnabledFor(logging.INFO) else None


class TaskLog:
    """Writes ``task <id> <outcome>`` with task, queue, attempt and duration as %-style
    arguments and as ``extra`` fields (a JSON formatter shows them as keys)."""

    __slots__ = ()

    def ended(self, task_id: str, msg: Message | None, queue: str, outcome: str, reason: str,
              attempt: int, started_ms: int | None, error_type: str, error: str) -> None:
        """An observer (:mod:`taskq.worker.observe`)."""
        task = msg.task if msg is not None else ""
        if outcome == "dead":  # (the name may be one no task has, as read from Redis)
            task = for_log(task)
        duration_ms = -1 if started_ms is None else max(0, int(time.time() * 1000) - started_ms)
        log.info("task %s %s task=%s queue=%s attempt=%d duration_ms=%d", task_id, outcome,
                 task, queue, attempt, duration_ms,
                 extra={"task_id": task_id, "task": task, "queue": queue, "outcome": outcome,
                        "attempt": attempt, "duration_ms": duration_ms})
