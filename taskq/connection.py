"""Connecting to Redis, and the errors that mean "Redis did not answer"."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

REDIS_ERRORS: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
"""Connection-level failures: the command may or may not have run."""


def connect(url: str, *, socket_timeout_s: float = 5.0) -> Redis:
    """An asyncio client with the timeouts a queue needs (dead connections are noticed)."""
    client: Redis = Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=min(socket_timeout_s, 3.0),
        socket_keepalive=True,
        health_check_interval=10,
        retry_on_timeout=False,
    )
    return client
