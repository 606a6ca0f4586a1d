"""taskq errors as HTTP answers: one mapping for every route."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from taskq.errors import (
    BacklogFull,
    ConfigError,
    InvalidOption,
    InvalidQueueName,
    PayloadTooLarge,
    RedisAuthError,
    RedisOutOfMemory,
    RedisPermissionError,
    RedisTimeout,
    RedisUnavailable,
    TaskNotFound,
    TaskNotRegistered,
    TaskqError,
    TaskValidationError,
    WorkflowNotFound,
)

log = logging.getLogger(__name__)

BACKLOG_RETRY_AFTER_S = 5
UNAVAILABLE_RETRY_AFTER_S = 2
UNAVAILABLE = (RedisUnavailable, RedisTimeout, RedisAuthError, RedisPermissionError,
               RedisOutOfMemory, ConfigError)
"""Answered 503 with Retry-After (the details are logged, never sent)."""


def validation_detail(exc: TaskValidationError) -> list[dict[str, Any]]:
    """pydantic's error shape, located in the request body."""
    return [
        {"loc": ["body", *e.get("loc", ())], "msg": e.get("msg", ""),
         "type": e.get("type", "arguments")}
        for e in exc.errors
    ]


def to_http(exc: BaseException) -> HTTPException | None:
    """The HTTP answer for a taskq error; None for anything else."""
    if isinstance(exc, TaskValidationError):
        return HTTPException(422, validation_detail(exc))
    if isinstance(exc, TaskNotFound | TaskNotRegistered | InvalidQueueName | WorkflowNotFound):
        return HTTPException(404, str(exc))
    if isinstance(exc, InvalidOption):
        return HTTPException(422, str(exc))
    if isinstance(exc, PayloadTooLarge):
        return HTTPException(413, str(exc))
    if isinstance(exc, BacklogFull):
        return HTTPException(429, str(exc),
                             headers={"Retry-After": str(BACKLOG_RETRY_AFTER_S)})
    if isinstance(exc, UNAVAILABLE):
        log.warning("Redis unavailable: %s: %s", type(exc).__name__, exc)
        return HTTPException(503, unavailable_reason(exc),
                             headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)})
    return None


def unavailable_reason(exc: BaseException) -> str:
    """What a client is told when Redis cannot serve it: the kind of fault, never where Redis
    is nor its credentials (those are logged)."""
    if isinstance(exc, RedisOutOfMemory):
        return ("Redis is out of memory: new tasks are refused until "
                "workers drain the queues; retry later")
    if isinstance(exc, RedisPermissionError):
        return (f"Redis refused a command to the service's ACL user (NOPERM): {exc.denied}; "
                "the operator must grant it")
    if isinstance(exc, RedisAuthError):
        return "Redis refused the service's credentials (authentication failed)"
    return "the queue is unavailable; retry later"


@contextlib.contextmanager
def http_errors() -> Iterator[None]:
    """Turn taskq errors raised inside into HTTPExceptions."""
    try:
        yield
    except HTTPException:
        raise
    except Exception as exc:
        mapped = to_http(exc)
        if mapped is None:
            raise
        raise mapped from None


def add_exception_handlers(app: FastAPI) -> None:
    """Answer taskq errors raised anywhere in ``app`` (e.g. by :data:`DurableTasks`) with
    their HTTP status instead of a 500: 422, 404, 413, 429 or 503 with Retry-After."""

    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        mapped = to_http(exc)
        if mapped is None:
            raise exc
        return JSONResponse({"detail": mapped.detail}, mapped.status_code,
                            headers=mapped.headers)

    app.add_exception_handler(TaskqError, handle)
