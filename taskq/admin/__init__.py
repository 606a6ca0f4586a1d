"""The operator API: queues, tasks, consumers, workers; pause, purge, cancel; dead letters.

Every function takes a :class:`~taskq.TaskQueue` (only its connection and prefix are used, so
read-only calls need no registered task). Values are frozen dataclasses whose ``to_dict`` is the
stable JSON shape of both the ``taskq`` CLI and the HTTP API. Unknown queues raise
:class:`~taskq.errors.QueueNotFound`; unknown task ids :class:`~taskq.errors.TaskNotFound`.
This module is the facade; the work is done in ``queues``, ``tasks``, ``dead`` and ``workers``
(task states come from the read model, :mod:`taskq.state`).
"""

from __future__ import annotations

from taskq.admin.dead import (
    dead_letter,
    dead_letters,
    purge_dead,
    replay_dead,
    replay_dead_letters,
)
from taskq.admin.dead import resolve_task as resolve_dead_task
from taskq.admin.queues import (
    consumers,
    list_queues,
    next_delayed,
    pause,
    purge_lanes,
    purge_queue,
    queue_info,
    queue_page,
    recent_failures,
    resume,
    throughput,
)
from taskq.admin.schedules import (
    ScheduleInfo,
    list_schedules,
    pause_schedule,
    resume_schedule,
    schedule_info,
)
from taskq.admin.tasks import cancel, list_tasks, task_record
from taskq.admin.values import (
    ConsumerInfo,
    DeadLetter,
    DelayedTask,
    Failure,
    KeptLetter,
    QueueInfo,
    Replay,
    WorkerInfo,
)
from taskq.admin.workers import clean_dead_workers, held_tasks, list_workers, worker_info
from taskq.errors import DeadLetterNotFound, QueueNotFound, ScheduleNotFound

__all__ = [
    "ConsumerInfo",
    "DeadLetter",
    "DeadLetterNotFound",
    "DelayedTask",
    "Failure",
    "KeptLetter",
    "QueueInfo",
    "QueueNotFound",
    "Replay",
    "ScheduleInfo",
    "ScheduleNotFound",
    "WorkerInfo",
    "cancel",
    "clean_dead_workers",
    "consumers",
    "dead_letter",
    "dead_letters",
    "held_tasks",
    "list_queues",
    "list_schedules",
    "list_tasks",
    "list_workers",
    "next_delayed",
    "pause",
    "pause_schedule",
    "purge_dead",
    "purge_lanes",
    "purge_queue",
    "queue_info",
    "queue_page",
    "recent_failures",
    "replay_dead",
    "replay_dead_letters",
    "resolve_dead_task",
    "resume",
    "resume_schedule",
    "schedule_info",
    "task_record",
    "throughput",
    "worker_info",
]
