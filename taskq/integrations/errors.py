"""taskq errors as HTTP answers: one mapping for every route."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from taskq.connection import translate
from taskq.errors import (
    BacklogFull,
    ConfigError,
    InvalidOption,
    InvalidQueueName,
    PayloadTooLarge,
    RedisAuthError,
    RedisCommandError,
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
    if isinstance(exc, RedisCommandError):
        return command_refused(exc)
    return None


BAD_ARGUMENT = re.compile(r"invalid|syntax error|not an integer|out of range|not a valid",
                          re.IGNORECASE)


def command_refused(exc: BaseException) -> HTTPException:
    """A Redis error reply to a route's command: 400 when Redis says an argument was invalid
    (input that slipped past the route's checks, e.g. a stream id Redis cannot use in a
    range), else 503 with Retry-After. The client is told the error code; the text is
    logged."""
    text = str(exc)
    code = text.partition(" ")[0] if text[:1].isupper() else "ERR"
    log.warning("Redis refused a command: %s: %s", type(exc).__name__, text)
    if code == "ERR" and BAD_ARGUMENT.search(text):
        return HTTPException(400, f"Redis refused an argument of this request: "
                                  f"{text[:200]}")
    return HTTPException(503, f"Redis refused a command ({code[:40]}); retry later, or ask "
                              "the operator (the service's log has the details)",
                         headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)})


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
    """Answer taskq errors and Redis errors raised anywhere in ``app`` (e.g. by
    :data:`DurableTasks`, or a route that let one through) with their HTTP status instead of
    a 500: 422, 404, 413, 429, 400 or 503 with Retry-After; one with no status of its own is a
    500 with a JSON body. Either way the answer is sent by the handler, so the connection is
    kept (an exception left to the server closes it)."""

    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        # a raw error from a Redis client not made by taskq: as taskq would have raised it
        error = translate(exc, where="Redis") if isinstance(exc, RedisError) else exc
        mapped = to_http(error)
        if mapped is None:
            log.error("unexpected error", exc_info=exc)
            mapped = HTTPException(500, f"internal error ({type(exc).__name__}); the "
                                        "service's log has the details")
        return JSONResponse({"detail": mapped.detail}, mapped.status_code,
                            headers=mapped.headers)

    app.add_exception_handler(TaskqError, handle)
    app.add_exception_handler(RedisError, handle)
