"""The dashboard's routes: ``ui`` (a redirect to ``ui/``), the page at ``ui/`` and its files at
``ui/assets/...``, with headers that forbid inline scripts, framing and MIME sniffing."""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

ASSETS = Path(__file__).parent / "static"

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
# No inline script or style may run, nothing loads from another host, no page may frame this
# one: an error text that slipped into markup still could not execute.
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'")
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


def _load() -> dict[str, _Asset]:
    out = {}
    for path in sorted(ASSETS.rglob("*")):
        if path.is_file() and path.suffix in _TYPES:
            body = path.read_bytes()
            out[path.relative_to(ASSETS).as_posix()] = _Asset(
                body, _TYPES[path.suffix], '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
    return out


def _page(api: str, auth_disabled: bool) -> bytes:
    template = (ASSETS / "index.html").read_text(encoding="utf-8")
    banner = ('<p class="banner warn" role="alert">Authentication is disabled: anyone who can '
              'reach this address can view, cancel, replay and purge tasks.</p>'
              if auth_disabled else "")
    return (template.replace("{{api}}", html.escape(api, quote=True))
            .replace("{{auth}}", "off" if auth_disabled else "on")
            .replace("{{banner}}", banner)).encode()


def dashboard_router(*, auth_disabled: bool, api: str = "../", path: str = "/ui") -> APIRouter:
    """The dashboard at ``path + "/"``. ``api`` is where the HTTP API is, relative to the
    page (``../`` when the page is mounted beside the API's routes, as ``taskq_router`` does);
    ``auth_disabled`` puts a warning on every page."""
    assets = _load()
    page = _page(api, auth_disabled)
    page_etag = '"' + hashlib.sha256(page).hexdigest()[:20] + '"'
    router = APIRouter(include_in_schema=False)
    base = path.rstrip("/")
    last = base.rsplit("/", 1)[-1]

    def answer(request: Request, body: bytes, media_type: str, etag: str) -> Response:
        headers = {**_HEADERS, "ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=media_type, headers=headers)

    @router.get(base)
    async def to_page() -> RedirectResponse:
        # Relative, so it holds behind any prefix or proxy: ".../ui" -> ".../ui/".
        return RedirectResponse(last + "/", status_code=308)

    @router.get(base + "/")
    async def index(request: Request) -> Response:
        return answer(request, page, "text/html; charset=utf-8", page_etag)

    @router.get(base + "/assets/{name:path}")
    async def asset(request: Request, name: str) -> Response:
        found = assets.get(name)
        if found is None:
            return Response("not found", 404, media_type="text/plain", headers=_HEADERS)
        return answer(request, found.body, found.media_type, found.etag)

    return router
