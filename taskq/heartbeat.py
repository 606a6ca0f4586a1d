"""The worker heartbeat: the JSON a worker writes to the workers hash, and its reading.

A worker writes :meth:`Heartbeat.encode` under its id in ``workers_key(prefix)`` every beat
(:mod:`taskq.worker.maintenance`); operators read it back with :func:`decode` (:mod:`taskq.admin`).
The JSON keys are a stored format: rename a field only together with both sides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from taskq.fieldvalues import to_int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A worker as its last heartbeat described it (figures counted since it started)."""

    id: str
    host: str = ""
    pid: int | None = None
    queues: list[str] = field(default_factory=list)
    concurrency: int = 0
    in_flight: int = 0
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead: int = 0
    reclaimed: int = 0
    lost_leases: int = 0
    started_ms: int | None = None
    heartbeat_ms: int | None = None
    stopping: bool = False

    def encode(self) -> str:
        return json.dumps({
            "id": self.id, "host": self.host, "pid": self.pid, "queues": list(self.queues),
            "concurrency": self.concurrency, "in_flight": self.in_flight,
            "processed": self.processed, "succeeded": self.succeeded, "failed": self.failed,
            "retried": self.retried, "dead": self.dead, "reclaimed": self.reclaimed,
            "lost_leases": self.lost_leases, "started": self.started_ms,
            "heartbeat": self.heartbeat_ms, "stopping": self.stopping,
        })


def decode(worker_id: str, raw: bytes | str | None) -> Heartbeat:
    """The heartbeat stored for ``worker_id``; missing or malformed fields read as unknown
    (None) or zero, so a damaged entry still lists its worker."""
    try:
        d: Any = json.loads(raw) if raw else {}
    except ValueError:
        d = {}
    if not isinstance(d, dict):
        d = {}

    def num(key: str) -> int:
        return to_int(d.get(key), None) or 0

    return Heartbeat(
        id=worker_id, host=str(d.get("host", "")), pid=to_int(d.get("pid"), None),
        queues=[str(q) for q in d.get("queues") or []], concurrency=num("concurrency"),
        in_flight=num("in_flight"), processed=num("processed"), succeeded=num("succeeded"),
        failed=num("failed"), retried=num("retried"), dead=num("dead"),
        reclaimed=num("reclaimed"), lost_leases=num("lost_leases"),
        started_ms=to_int(d.get("started"), None), heartbeat_ms=to_int(d.get("heartbeat"), None),
        stopping=bool(d.get("stopping")),
    )

