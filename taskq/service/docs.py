"""Offline ``/docs``: Swagger UI served from the package's own files, never from a CDN."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route

SWAGGER_UI = Path(__file__).parent / "static" / "swagger-ui"  # swagger-ui-dist (see VERSION)


def offline_docs(app: FastAPI) -> None:
    """Replace FastAPI's ``/docs`` page (scripts from a CDN: blank on an air-gapped network)
    by one that loads the packaged Swagger UI from ``/docs/static``. Call it before
    :func:`taskq.integrations.protect_docs`, which then guards the page as before."""
    docs_url, openapi_url = app.docs_url, app.openapi_url
    if docs_url is None or openapi_url is None:
        return
    app.router.routes[:] = [r for r in app.router.routes
                            if not (isinstance(r, Route) and r.path == docs_url)]
    assets = docs_url.rstrip("/") + "/static"
    app.mount(assets, StaticFiles(directory=SWAGGER_UI), name="swagger-ui")
    oauth2_url = app.swagger_ui_oauth2_redirect_url

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url, title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{assets}/swagger-ui.css",
            swagger_favicon_url=f"{root}{assets}/favicon-32x32.png",
            oauth2_redirect_url=root + oauth2_url if oauth2_url else None,
            init_oauth=app.swagger_ui_init_oauth, swagger_ui_parameters=app.swagger_ui_parameters,
        )

    app.add_route(docs_url, swagger_ui, include_in_schema=False)
