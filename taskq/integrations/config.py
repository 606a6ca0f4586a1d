"""Options of the HTTP API router, grouped in one value."""

from __future__ import annotations

from dataclasses import dataclass, field

from taskq.integrations.auth import ApiKeys


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """``keys``: who may call (``ApiKeys.off()`` to disable authentication, explicitly);
    ``max_body_bytes``: largest enqueue body; ``idempotency_ttl_s``: how long an
    ``Idempotency-Key`` maps to its task; ``wait_max_s``: longest long-poll;
    ``sse_poll_s``: how often the event stream re-reads a task's status;
    ``sse_max_s``: longest event stream (the client reconnects after it);
    ``sse_max_per_key``: event streams open at once per API key (429 past it; per client
    address when authentication is off); ``docs_public``: serve ``/openapi.json`` and
    ``/docs`` without a key (see :func:`taskq.integrations.docs.protect_docs`);
    ``dashboard``: serve the web dashboard at ``ui/`` beside the routes (see
    :mod:`taskq.dashboard`); ``allowed_hosts``: while authentication is off, the ``Host``
    names answered besides localhost and IP addresses (``api.internal``, ``.internal`` for a
    domain and its subdomains, ``*`` for any; see :mod:`taskq.integrations.hosts`)."""

    keys: ApiKeys = field(default_factory=ApiKeys)
    max_body_bytes: int = 1_048_576
    idempotency_ttl_s: float = 86_400.0
    wait_max_s: float = 60.0
    sse_poll_s: float = 0.2
    sse_max_s: float = 3600.0
    sse_heartbeat_s: float = 15.0
    sse_max_per_key: int = 16
    docs_public: bool = False
    dashboard: bool = True
    allowed_hosts: tuple[str, ...] = ()
