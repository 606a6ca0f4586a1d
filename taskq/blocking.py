"""A private event loop on a daemon thread that runs the producer's reads for sync callers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from taskq.queue import TaskQueue

T = TypeVar("T")


class LoopThread:
    """Runs coroutines of ``app`` (a twin of the caller's queue, with its own connections) on
    an event loop of its own thread, so that plain ``def`` code can wait on them. Started on
    first use, stopped by :meth:`close`."""

    def __init__(self, app: TaskQueue) -> None:
        self.app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="taskq-sync",
                                        daemon=True)
        self._thread.start()

    def run(self, call: Callable[[TaskQueue], Coroutine[Any, Any, T]]) -> T:
        """Run ``call(app)`` on the thread's loop and block until it returns or raises."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("a sync taskq call cannot run inside its own event loop")
        return asyncio.run_coroutine_threadsafe(call(self.app), self._loop).result()

    def close(self) -> None:
        """Close the twin's connections, stop the loop and join the thread."""
        if self._loop.is_closed():
            return
        try:
            self.run(lambda app: app.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
