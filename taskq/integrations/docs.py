"""The OpenAPI schema and the interactive docs behind the read key (a setting makes them public).

The schema lists every task with example arguments, which is what ``GET /registry`` guards with
a key; so ``/openapi.json``, ``/docs`` and ``/redoc`` need a read (or admin) key in ``X-API-Key``
too, unless ``ApiConfig.docs_public``. A browser does not send that header when it opens
``/docs``: make the docs public, or reach them through something that adds it.
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from taskq.integrations.auth import HEADER, ApiKeys
from taskq.integrations.config import ApiConfig

_HEADER = HEADER.lower().encode()


def protect_docs(app: FastAPI, config: ApiConfig) -> None:
    """Guard ``app``'s schema and docs routes with ``config.keys`` (nothing to do when
    ``config.docs_public``). Call it after the app is built (FastAPI adds them then)."""
    if config.docs_public:
        return
    paths = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    for route in app.router.routes:
        if isinstance(route, Route) and route.path in paths:
            route.app = KeyRequired(route.app, config.keys)


class KeyRequired:
    """ASGI: 401 unless the request's ``X-API-Key`` is a valid read or admin key."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == _HEADER),
                   None)
        if self.keys.role_of(key) is not None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"detail": "missing or invalid API key (the schema and docs need a "
                                     "read key)"}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b"ApiKey")]})
        await send({"type": "http.response.body", "body": body})
