"""Connecting to Redis, and the errors that mean "Redis did not answer"."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from taskq.errors import ConfigError

log = logging.getLogger(__name__)

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


async def check_server(client: Redis) -> None:
    """Refuse a Redis that may evict queue keys or is too old for taskq.

    ``maxmemory-policy`` ``allkeys-*`` lets Redis delete streams of accepted tasks under memory
    pressure: a ConfigError. ``volatile-*`` can evict only keys with a TTL (task records): a
    loud warning. Reads ``INFO`` only (a least-privilege ACL user needs ``+info``, not CONFIG);
    a server that refuses INFO gets a warning.
    """
    try:
        info = await client.info()
    except ResponseError:  # a stand-in or a restricted managed service
        log.warning("cannot read INFO: make sure Redis is 6.2+ with maxmemory-policy noeviction, "
                    "or Redis may delete queued tasks under memory pressure")
        return
    version = tuple(int(p) for p in str(info.get("redis_version", "0")).split(".")[:2])
    if version < (6, 2):
        raise ConfigError(f"Redis {info.get('redis_version')} is too old: taskq needs 6.2+")
    policy = str(info.get("maxmemory_policy", ""))
    if policy.startswith("allkeys"):
        raise ConfigError(
            f"Redis maxmemory-policy is {policy}: it may delete queued tasks. "
            "Set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction)"
        )
    if policy.startswith("volatile"):
        log.warning("Redis maxmemory-policy is %s: task records (keys with a TTL) may be "
                    "evicted under memory pressure; noeviction is recommended", policy)
