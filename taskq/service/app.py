"""The HTTP service's app factory: ``uvicorn taskq.service.app:app`` (or ``taskq api``).

It loads the TaskQueue named by ``TASKQ_APP`` (``module:attribute``), so it knows the
registered tasks and their argument schemas, and serves :func:`taskq.fastapi.taskq_router`
under ``/v1`` and the web dashboard under ``/ui/``. ``app`` is built on first access, from
the environment.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI

from taskq.dashboard import dashboard_router
from taskq.errors import ConfigError
from taskq.fastapi import (
    ApiConfig,
    ApiKeys,
    BodyLimitMiddleware,
    add_exception_handlers,
    install_access_log_redaction,
    lifespan,
    protect_docs,
    taskq_router,
)
from taskq.integrations.hosts import KnownHostsOnly
from taskq.queue import TaskQueue
from taskq.service.docs import offline_docs
from taskq.service.loader import load_app
from taskq.service.metrics import metrics_router
from taskq.service.settings import ApiSettings
from taskq.url_choice import ENV, UrlSource

log = logging.getLogger(__name__)

PREFIX = "/v1"


def api_keys(settings: ApiSettings) -> ApiKeys:
    if settings.auth_disabled:
        log.warning("=" * 72)
        log.warning("AUTHENTICATION IS DISABLED (TASKQ_AUTH_DISABLED=true): anyone who can "
                    "reach this port can enqueue, cancel, replay and purge tasks")
        log.warning("only requests to localhost, an IP address or TASKQ_ALLOWED_HOSTS are "
                    "answered (421 otherwise: a protection against DNS rebinding)")
        log.warning("=" * 72)
        return ApiKeys.off()
    admin, read = settings.admin_keys(), settings.read_keys()
    if not admin and not read:
        raise ConfigError("no API keys: set TASKQ_API_KEYS (admin) and/or TASKQ_API_READ_KEYS "
                          "(read-only), comma-separated, 16+ characters each; or set "
                          "TASKQ_AUTH_DISABLED=true for local development")
    try:
        return ApiKeys.from_keys(admin=admin, read=read)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def create_app(settings: ApiSettings | None = None, tq: TaskQueue | None = None) -> FastAPI:
    """The service for ``settings`` (default: from the environment)."""
    settings = settings or ApiSettings()
    if tq is None:
        if not settings.app:
            raise ConfigError("set TASKQ_APP to the TaskQueue to serve, as module:attribute")
        tq = load_app(settings.app)
    if settings.redis_url:
        problem = tq.url_choice.option_error(settings.redis_url, ENV)
        if problem is not None and tq.url_choice.source is not UrlSource.CODE:
            raise ConfigError(problem)
    tq.check_url()  # TASKQ_REDIS_URL ignored for a URL given in code: say so now, at start
    keys = api_keys(settings)
    config = ApiConfig(keys=keys, max_body_bytes=settings.max_body_bytes,
                       idempotency_ttl_s=settings.idempotency_ttl_s,
                       wait_max_s=settings.wait_max_s,
                       sse_max_per_key=settings.sse_max_per_key,
                       docs_public=settings.docs_public, dashboard=False,
                       allowed_hosts=settings.allowed_host_names())
    app = FastAPI(
        title="taskq", version="1", lifespan=lifespan(tq), root_path=settings.root_path,
        description="Enqueue and inspect the tasks of a taskq TaskQueue. Send an API key in "
                    "the `X-API-Key` header; read-only keys cannot cancel, replay or purge.",
    )
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    if keys.disabled:  # no DNS rebinding onto /metrics, the dashboard and the docs either
        app.add_middleware(KnownHostsOnly, allowed=config.allowed_hosts)
    add_exception_handlers(app)
    app.include_router(taskq_router(tq, config), prefix=PREFIX)
    app.include_router(metrics_router(tq, keys, public=settings.metrics_public))
    if settings.dashboard:  # at /ui/ rather than /v1/ui/: the API's version is not the page's
        app.include_router(dashboard_router(auth_disabled=keys.disabled, api=f"..{PREFIX}/"))
    offline_docs(app)  # Swagger UI from the package: /docs renders without internet
    protect_docs(app, config)
    install_access_log_redaction()
    log.info("serving %d tasks of %s on queues %s, Redis %s", len(tq.registry),
             settings.app or "the app", ", ".join(tq.queues) or "-", tq.url_choice.describe())
    return app


_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    """``app``: built from the environment on first access (so importing this module needs no
    settings)."""
    global _app  # noqa: PLW0603
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(name)
