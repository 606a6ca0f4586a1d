"""The web dashboard: plain HTML, CSS and JavaScript modules shipped in the package (no build
step, no CDN, no external fonts), served beside the HTTP API.

``taskq_router(...)`` serves it at ``<its prefix>/ui/`` (``ApiConfig(dashboard=False)`` turns it
off); the HTTP service at ``/ui/``. The pages are static: every figure comes from the API with
the key the operator entered, sent in the ``X-API-Key`` header (kept in the browser's
``sessionStorage``, never in a URL). See docs/dashboard.md.
"""

from __future__ import annotations

from taskq.dashboard.routes import ASSETS, dashboard_router

__all__ = ["ASSETS", "dashboard_router"]
