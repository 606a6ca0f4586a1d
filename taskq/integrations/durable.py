"""A durable stand-in for FastAPI's ``BackgroundTasks``.

``BackgroundTasks`` runs functions inside the web process after the response: a crash or a
restart loses them. :data:`DurableTasks` keeps the same shape, but each ``add_task`` validates
the arguments at once and the tasks are written to Redis (one round trip per queue) after the
route returns and *before* the response is sent; a worker process runs them. If the route
raises, nothing is enqueued (as with ``BackgroundTasks``). If Redis refuses or does not answer,
the request fails instead of answering success for work that was never stored.

    @app.post("/users")
    def register(user: User, tasks: DurableTasks) -> User:
        tasks.add_task(send_welcome_email, user.email)
        return user

It works in ``async def`` and plain ``def`` routes. Enqueue options go through
``with_options``: ``tasks.add_task(charge.with_options(key=f"order-{order.id}"), order.id)``
(a unique key: a retried request adds no second task; see :mod:`taskq.options`); ``key=`` is
also taken from the arguments when the task has no parameter of that name.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Annotated, Any, ParamSpec

from fastapi import Depends, Request

from taskq.codec import Message
from taskq.errors import TaskqError
from taskq.handle import TaskHandle
from taskq.integrations.errors import to_http
from taskq.options import check_delay
from taskq.queue import TaskQueue
from taskq.task import BoundTask, Seconds, Task, seconds

P = ParamSpec("P")


class DurableTaskList:
    """Tasks a route asked for; enqueued when the route returns."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[TaskQueue, Message, float | None]] = []
        self.handles: list[TaskHandle[Any]] = []
        """Handles of the tasks enqueued so far (filled by :meth:`flush`)."""

    def add_task(self, task: Task[P, Any] | BoundTask[P, Any], *args: P.args,
                 **kwargs: P.kwargs) -> None:
        """Validate now, enqueue before the response is sent. Raises TaskValidationError.
        ``task`` may carry options (``task.with_options(key=..., expires=...)``); ``key=``
        among the arguments is the unique key when the task has no parameter of that name."""
        kw: dict[str, Any] = dict(kwargs)
        if isinstance(task, Task) and "key" in kw and "key" not in task.signature.fields:
            task = task.with_options(key=kw.pop("key"))
        if isinstance(task, BoundTask):
            msg = task.message(*args, **kw)
            with self._lock:
                self._pending.append((task.task.app, msg, None))
            return
        self._add(task, None, args, kw)

    def add_delayed(
        self, delay: Seconds, task: Task[P, Any], *args: P.args, **kwargs: P.kwargs
    ) -> None:
        """Like :meth:`add_task`, run ``delay`` (seconds or timedelta) later."""
        self._add(task, check_delay(seconds(delay)), args, dict(kwargs))

    def _add(self, task: Task[Any, Any], delay_s: float | None, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> None:
        msg = task.build(args, kwargs)
        with self._lock:
            self._pending.append((task.app, msg, delay_s))

    def __len__(self) -> int:
        return len(self._pending)

    async def flush(self) -> list[TaskHandle[Any]]:
        """Enqueue what is pending now (called for you when the route returns)."""
        with self._lock:
            pending, self._pending = self._pending, []
        groups: dict[tuple[int, float | None], tuple[TaskQueue, list[Message]]] = {}
        for app, msg, delay_s in pending:
            groups.setdefault((id(app), delay_s), (app, []))[1].append(msg)
        out: list[TaskHandle[Any]] = []
        for (_, delay_s), (app, messages) in groups.items():
            out += await app.enqueue_many(messages, delay=delay_s)
        self.handles += out
        return out


async def durable_tasks(request: Request) -> AsyncIterator[DurableTaskList]:
    """The dependency behind :data:`DurableTasks`. A taskq error raised by the route (an
    ``add_task`` with bad arguments) or by the enqueue answers its HTTP status (422, 413, 429,
    503; :func:`~taskq.fastapi.add_exception_handlers`'s mapping) rather than a 500, unless the
    app has a handler of its own for it."""
    tasks = DurableTaskList()
    try:
        yield tasks
    except TaskqError as exc:
        _raise_mapped(request, exc)
        raise
    try:
        await tasks.flush()
    except TaskqError as exc:
        _raise_mapped(request, exc)
        raise


def _raise_mapped(request: Request, exc: TaskqError) -> None:
    """Raise ``exc``'s HTTPException, unless the app handles that error itself."""
    handlers = getattr(request.app, "exception_handlers", {})
    if any(kind in handlers for kind in type(exc).__mro__ if kind is not Exception):
        return
    mapped = to_http(exc)
    if mapped is not None:
        raise mapped from exc


DurableTasks = Annotated[DurableTaskList, Depends(durable_tasks, scope="function")]
"""Declare a route parameter ``tasks: DurableTasks`` to get a :class:`DurableTaskList`."""
