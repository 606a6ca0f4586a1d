"""Open and close a TaskQueue together with a FastAPI (or any Starlette) app."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from taskq.queue import TaskQueue

log = logging.getLogger(__name__)

Lifespan = Callable[[Any], AbstractAsyncContextManager[None]]


def lifespan(tq: TaskQueue, *, check_ready: bool = True) -> Lifespan:
    """A lifespan for ``FastAPI(lifespan=lifespan(tq))``.

    At start it checks that Redis answers, loads the scripts and checks the ACL user's
    permissions (``check_ready``), so a wrong URL, password or ACL fails the start instead of
    the first request; at shutdown it closes the connections.
    Compose with your own lifespan by entering it inside yours.
    """

    @contextlib.asynccontextmanager
    async def _lifespan(_app: Any) -> AsyncIterator[None]:
        if check_ready:  # (a full Redis is no reason not to start: /ready reports it)
            await tq.ready(memory=False)
        try:
            yield
        finally:
            await tq.aclose()

    return _lifespan
