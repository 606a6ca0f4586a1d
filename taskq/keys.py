"""Redis key names of one queue.

Every key of a queue shares the hash tag ``{prefix:queue}`` so that a queue lives in one Redis
Cluster slot and every multi-key script on it works there. Keys that span queues (the queue and
worker registries) are only read by operators, never by a script together with queue keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from taskq import priority
from taskq.errors import InvalidQueueName

GROUP = "taskq"
"""The consumer group every worker of every queue joins."""


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The Redis keys of one queue, computed once (the script wrappers read them per call)."""

    prefix: str
    queue: str
    tag: str = field(init=False, repr=False, compare=False)
    stream: str = field(init=False, repr=False, compare=False)
    """The stream of ready tasks (consumed through the group ``taskq``)."""
    delayed: str = field(init=False, repr=False, compare=False)
    """Sorted set: task id -> due time in ms on the Redis clock."""
    payloads: str = field(init=False, repr=False, compare=False)
    """Hash: task id -> encoded message of a delayed task."""
    entries: str = field(init=False, repr=False, compare=False)
    """Hash: task id -> current entry id, for tasks whose entry id differs from their id."""
    cancels: str = field(init=False, repr=False, compare=False)
    """Hash: task id -> cancel request time (ms), for running tasks asked to stop."""
    dead: str = field(init=False, repr=False, compare=False)
    """The dead-letter stream."""
    paused: str = field(init=False, repr=False, compare=False)
    """Exists while the queue is paused."""
    stats: str = field(init=False, repr=False, compare=False)
    """Hash of counters: completed, retried, dead, reclaimed, lost."""
    task_metrics: str = field(init=False, repr=False, compare=False)
    """Hash of per-task histograms and outcome counts, added to by workers (see
    :mod:`taskq.taskmetrics`)."""
    events: str = field(init=False, repr=False, compare=False)
    """Pub/sub channel of task status changes (carries task ids, never payloads)."""
    _own: str = field(init=False, repr=False, compare=False)
    """The prefix of this queue's (or priority lane's) own keys."""

    def __post_init__(self) -> None:
        if not self.queue or any(c.isspace() or not c.isprintable() for c in self.queue):
            raise InvalidQueueName(self.queue)
        # A priority lane ("<queue>!high", see taskq.priority) lives under its queue's hash
        # tag, with keys of its own but the queue's pause flag.
        queue, level = priority.split(self.queue)
        tag = f"{{{self.prefix}:{queue}}}"
        own = tag if level == "normal" else f"{tag}:{level}"
        put = object.__setattr__
        put(self, "tag", tag)
        put(self, "_own", own)
        for name in ("stream", "delayed", "payloads", "entries", "cancels", "dead",
                     "stats", "task_metrics", "events"):
            put(self, name, f"{own}:{name}")
        put(self, "paused", f"{tag}:paused")

    def records(self, bucket: int) -> str:
        """Hash of task records (id -> encoded record) for ids of one time bucket."""
        return f"{self._own}:rec:{bucket}"

    def workflow(self, suffix: str) -> str:
        """Hash of one workflow's state (see :mod:`taskq.workflow`) homed in this queue."""
        return f"{self.tag}:wf:{suffix}"

    def done_minute(self, minute: int) -> str:
        """Completions in one wall-clock minute (Redis clock), for rates."""
        return f"{self._own}:done:{minute}"

    def limit(self, kind: str, name: str) -> str:
        """State of one rate limit (``kind`` "rate") or concurrency limit ("run") of the queue,
        shared by its priority lanes (see :mod:`taskq.limits`)."""
        return f"{self.tag}:limit:{kind}:{name}"

    def waiters(self, slots: str) -> str:
        """Sorted set of this lane's tasks waiting for a slot of the concurrency slot set
        ``slots`` (one of :meth:`limit`): task id -> the end of its wait (``lua/wake.lua``)."""
        return f"{slots}:waiting:{self.queue}"

    @property
    def reservations(self) -> str:
        """Sorted set: task id -> the time its rate-limit slot was reserved for."""
        return f"{self.tag}:limit:reserved"

    def unique(self, key: str) -> str:
        """The hold of one unique key (``"<task>:<key>"``, see :mod:`taskq.options`), shared
        by the queue's priority lanes: a key is unique per queue, whatever the level of its
        task (the value names the holding task, whose id names its lane)."""
        return f"{self.tag}:uniq:{key}"

    @property
    def cancel_channel(self) -> str:
        return f"{self.tag}:cancel"

    @property
    def periodic(self) -> str:
        """Hash of the queue's (or priority lane's) periodic schedules (see
        ``lua/periodic_fire.lua``); a lane's own, as its sync removes the schedules it lacks."""
        return f"{self._own}:periodic"

    @property
    def periodic_log(self) -> str:
        """Stream of the queue's periodic fires and skips (capped; for operators)."""
        return f"{self._own}:periodic-log"


def queues_key(prefix: str) -> str:
    """Set of every queue name that has been used."""
    return f"{prefix}:queues"


def periodic_queues_key(prefix: str) -> str:
    """Set of the queues whose periodic hash holds schedules (a sync that leaves one without
    takes it out: :meth:`taskq.worker.schedules.Scheduler.sync`)."""
    return f"{prefix}:periodic-queues"


def workers_key(prefix: str) -> str:
    """Hash: worker id -> encoded worker info (host, pid, queues, figures, heartbeat)."""
    return f"{prefix}:workers"


def worker_alive_key(prefix: str, worker_id: str) -> str:
    """Exists (with a TTL) while the worker heartbeats."""
    return f"{prefix}:worker:{worker_id}"
