"""``Idempotency-Key``: the same key within the window gives the same task id, enqueued once.

The first request claims ``{prefix:queue}:idem:<task>:<key>`` with ``SET NX PX`` and a pending
token, enqueues, then stores the task id there (keeping the TTL), prefixed with a fingerprint of
the request (its arguments and delay). The same key with a different request is a client error
(422, as payment APIs answer), never the first request's task passed off as this one's. A
concurrent request with the same key finds the claim and waits (briefly) for the id. If the
first request fails to enqueue, it deletes its claim (only if still its own), so a retry can
enqueue.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException

from taskq.handle import TaskHandle
from taskq.scripts import Scripts

PENDING = "pending:"
_STORED = re.compile(r"^fp:([0-9a-f]{64}):(.+)$")
MAX_KEY_LENGTH = 200
WAIT_FOR_PEER_S = 10.0
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise HTTPException(422, [{"loc": ["header", "Idempotency-Key"],
                                   "msg": f"1 to {MAX_KEY_LENGTH} printable ASCII characters",
                                   "type": "value_error"}])
    return key


def fingerprint(args: Any, kwargs: dict[str, Any], delay_s: float | None) -> str:
    """A digest of what a request asks for (validated arguments and delay), key order aside."""
    text = json.dumps([args, kwargs, delay_s], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode(errors="surrogatepass")).hexdigest()


def reused() -> HTTPException:
    return HTTPException(422, [{"loc": ["header", "Idempotency-Key"],
                                "msg": "this Idempotency-Key was already used with a different "
                                       "request (arguments or delay); use a new key",
                                "type": "idempotency_key_reused"}])


async def once(
    scripts: Scripts, redis_key: str, ttl_ms: int, request_fingerprint: str,
    enqueue: Callable[[], Awaitable[TaskHandle[Any]]],
) -> tuple[str, bool]:
    """(task id, replayed): enqueue at most once per key within ``ttl_ms``. A key first used
    for a request with another fingerprint raises 422."""
    redis = scripts.client
    deadline = time.monotonic() + WAIT_FOR_PEER_S
    while True:
        token = PENDING + secrets.token_hex(8)
        if await redis.set(redis_key, token, nx=True, px=ttl_ms):
            try:
                handle = await enqueue()
            except BaseException:
                await scripts.idempotency_release(key=redis_key, token=token)
                raise
            await redis.set(redis_key, f"fp:{request_fingerprint}:{handle.id}", px=ttl_ms)
            return handle.id, False
        raw = await redis.get(redis_key)
        value = raw.decode() if isinstance(raw, bytes) else raw
        if value is not None and not value.startswith(PENDING):
            stored = _STORED.match(value)
            if stored is None:  # written before fingerprints were kept: the id alone
                return value, True
            if stored.group(1) != request_fingerprint:
                raise reused()
            return stored.group(2), True
        if time.monotonic() > deadline:
            raise HTTPException(409, "a request with this Idempotency-Key is still in progress",
                                headers={"Retry-After": "1"})
        await asyncio.sleep(0.02)
