"""Offline ``/docs``: Swagger UI comes from the package, so the page renders with no internet
(checked in a real headless chromium where one is installed)."""

from __future__ import annotations

import asyncio
import re
import shutil

import pytest

from taskq import TaskQueue
from tests.api_fixtures import make_app, serve

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(b)), None)


async def test_docs_page_loads_its_assets_from_the_service(app_tq: TaskQueue) -> None:
    async with serve(make_app(app_tq, docs_public=True)) as client:
        root = f"http://127.0.0.1:{client.base_url.port}"
        page = (await client.get(root + "/docs")).text
        assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page)
        assert assets, page
        assert not [a for a in assets if "//" in a], assets  # nothing from another host
        for asset in assets:
            r = await client.get(root + asset)
            assert r.status_code == 200 and len(r.content) > 500, asset
        assert "swagger-ui-bundle.js" in page and "swagger-ui.css" in page


@pytest.mark.skipif(BROWSER is None, reason="no headless browser installed "
                    "(apt-get install chromium; .ci/run installs it)")
async def test_docs_render_in_a_headless_browser_without_internet(app_tq: TaskQueue) -> None:
    assert BROWSER is not None
    async with serve(make_app(app_tq, docs_public=True)) as client:
        url = f"http://127.0.0.1:{client.base_url.port}/docs"
        # Every host but this one fails to resolve: a page that needs a CDN stays blank.
        proc = await asyncio.create_subprocess_exec(
            BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000", "--dump-dom", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    dom = out.decode(errors="replace")
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    # Swagger UI ran: it drew the title and an operation of the schema it fetched.
    assert 'class="swagger-ui"' in dom, dom[-2000:]
    assert "opblock" in dom, dom[-3000:]
    assert 'data-path="/v1/queues/{name}/dead/replay"' in dom, dom[-3000:]
