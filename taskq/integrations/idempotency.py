"""``Idempotency-Key``: the same key gives the same task id, enqueued once.

It is the task's unique key (:mod:`taskq.options`), scoped by the task's name: the enqueue
script checks and takes it in the same atomic step as the add, so concurrent requests with one
key make one task, without a claim to wait for. The key is held while the task is queued,
delayed, running or retrying, and for the idempotency window after it succeeded; a task that
ended dead, cancelled or expired frees it (a retried request then enqueues anew). With the key
the request's fingerprint (its arguments and delay) is stored, and the enqueue script compares
it in the same atomic step: the same key with a different request is a client error (422, as
payment APIs answer: :class:`~taskq.errors.UniqueKeyReused` inside), never the first request's
task passed off as this one's, and nothing is added. Only a request is compared: a code enqueue
with ``with_options(key=...)`` sends no fingerprint and dedupes by the key alone, and a key it
took holds none, so any request with it answers that task (code and HTTP share the key).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import HTTPException

from taskq.options import KEY_MAX, SendOptions, unique_key

MAX_KEY_LENGTH = KEY_MAX


def check_key(key: str) -> str:
    try:
        unique_key("task", key)
    except ValueError:
        raise HTTPException(422, [{"loc": ["header", "Idempotency-Key"],
                                   "msg": f"1 to {MAX_KEY_LENGTH} printable ASCII characters",
                                   "type": "value_error"}]) from None
    return key


def fingerprint(args: Any, kwargs: dict[str, Any], delay_s: float | None) -> str:
    """A digest of what a request asks for (validated arguments and delay; no delay and 0 are
    the same), key order aside."""
    delay = float(delay_s) if delay_s else None
    text = json.dumps([args, kwargs, delay], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode(errors="surrogatepass")).hexdigest()


def options(task: str, key: str, window_ms: int, request_fingerprint: str,
            delay_s: float | None) -> SendOptions:
    """The send options of a request with an Idempotency-Key."""
    return SendOptions(key=unique_key(task, key), unique_for_ms=window_ms,
                       fingerprint=request_fingerprint,
                       delay_ms=int(delay_s * 1000) if delay_s else 0)


def reused() -> HTTPException:
    return HTTPException(422, [{"loc": ["header", "Idempotency-Key"],
                                "msg": "this Idempotency-Key was already used with a different "
                                       "request (arguments or delay); use a new key",
                                "type": "idempotency_key_reused"}])
