"""Request bodies: JSON only (415), parsed without a 500 for any input, and no cross-site browser
requests while authentication is off (403).

A browser lets any page send a "simple" cross-site request (a form, or ``fetch`` in ``no-cors``
mode) with a ``text/plain``, form or multipart body, and without preflight. Answering 415 to
every body that is not ``application/json`` (or ``application/*+json``) takes that away. A request
with a body and no ``Content-Type`` is read as JSON (some scripts send it so); a browser sends
one without a type only from script, and then also sends ``Origin``: with authentication
disabled (where no API key protects the routes) a cross-site ``Origin`` or
``Sec-Fetch-Site: cross-site`` is refused with 403. A page that rebinds its own DNS name to this
address sends a matching ``Origin`` and ``Host``; :mod:`taskq.integrations.hosts` refuses its
``Host``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from taskq.integrations.auth import ApiKeys

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def parse_json(body: bytes) -> Any:
    """The JSON value of a body; 422 ``json_invalid`` for one that is not JSON, not UTF-8 or
    nested too deeply for the parser (a RecursionError, which must not become a 500)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise HTTPException(422, [{"loc": ["body"], "msg": "the body is not valid JSON",
                                   "type": "json_invalid"}]) from None


def is_json(content_type: str) -> bool:
    """``application/json`` or ``application/<something>+json``, any parameters."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json"))


def cross_site(request: Request) -> bool:
    """True for a browser request sent by a page of another site."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    if origin == "null":  # sandboxed frames, file: pages
        return True
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


def json_bodies_only(keys: ApiKeys) -> Callable[[Request], Awaitable[None]]:
    """A dependency for every route: 415 for a body that is not JSON; 403 for a cross-site
    browser request while ``keys.disabled``. Requests without a body method pass."""

    async def check(request: Request) -> None:
        if request.method not in BODY_METHODS:
            return
        if keys.disabled and cross_site(request):
            raise HTTPException(403, "cross-site requests are refused while authentication "
                                     "is disabled")
        content_type = request.headers.get("content-type")
        if content_type is not None and not is_json(content_type):
            raise HTTPException(415, "send request bodies as application/json "
                                     f"(got {content_type[:100]!r})")

    return check
