"""Redis key names of one queue.

Every key of a queue shares the hash tag ``{prefix:queue}`` so that a queue lives in one Redis
Cluster slot and every multi-key script on it works there. Keys that span queues (the queue and
worker registries) are only read by operators, never by a script together with queue keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskq.errors import InvalidQueueName

GROUP = "taskq"
"""The consumer group every worker of every queue joins."""


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The Redis keys of one queue."""

    prefix: str
    queue: str

    def __post_init__(self) -> None:
        if not self.queue or any(c.isspace() or not c.isprintable() for c in self.queue):
            raise InvalidQueueName(self.queue)

    @property
    def tag(self) -> str:
        return f"{{{self.prefix}:{self.queue}}}"

    @property
    def stream(self) -> str:
        """The stream of ready tasks (consumed through the group ``taskq``)."""
        return f"{self.tag}:stream"

    @property
    def delayed(self) -> str:
        """Sorted set: task id -> due time in ms on the Redis clock."""
        return f"{self.tag}:delayed"

    @property
    def payloads(self) -> str:
        """Hash: task id -> encoded message of a delayed task."""
        return f"{self.tag}:payloads"

    @property
    def entries(self) -> str:
        """Hash: task id -> current entry id, for tasks whose entry id differs from their id."""
        return f"{self.tag}:entries"

    @property
    def cancels(self) -> str:
        """Hash: task id -> cancel request time (ms), for running tasks asked to stop."""
        return f"{self.tag}:cancels"

    @property
    def dead(self) -> str:
        """The dead-letter stream."""
        return f"{self.tag}:dead"

    @property
    def paused(self) -> str:
        """Exists while the queue is paused."""
        return f"{self.tag}:paused"

    @property
    def stats(self) -> str:
        """Hash of counters: completed, retried, dead, reclaimed, lost."""
        return f"{self.tag}:stats"

    def records(self, bucket: int) -> str:
        """Hash of task records (id -> encoded record) for ids of one time bucket."""
        return f"{self.tag}:rec:{bucket}"

    def done_minute(self, minute: int) -> str:
        """Completions in one wall-clock minute (Redis clock), for rates."""
        return f"{self.tag}:done:{minute}"

    @property
    def idempotency(self) -> str:
        return f"{self.tag}:idem"

    def idempotency_key(self, key: str) -> str:
        return f"{self.tag}:idem:{key}"

    @property
    def events(self) -> str:
        """Pub/sub channel of task status changes (carries task ids, never payloads)."""
        return f"{self.tag}:events"

    @property
    def cancel_channel(self) -> str:
        return f"{self.tag}:cancel"


def queues_key(prefix: str) -> str:
    """Set of every queue name that has been used."""
    return f"{prefix}:queues"


def workers_key(prefix: str) -> str:
    """Hash: worker id -> encoded worker info (host, pid, queues, figures, heartbeat)."""
    return f"{prefix}:workers"


def worker_alive_key(prefix: str, worker_id: str) -> str:
    """Exists (with a TTL) while the worker heartbeats."""
    return f"{prefix}:worker:{worker_id}"
