"""Running one task attempt: async in the event loop, sync in a thread, cpu_bound in a process.

Each kind honours the task's timeout. A thread or a process cannot be killed safely: when a sync
or cpu_bound task times out or is cancelled, the attempt ends at once (failed or cancelled) and
the thread or process runs the function to its end with its result discarded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import importlib
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

from pydantic_core import to_jsonable_python

from taskq.codec import pack
from taskq.context import TaskContext, set_context
from taskq.task import Task


class Executors:
    """The thread pool (sync tasks) and process pool (cpu_bound tasks) of one worker, and how
    many calls run in them now (:attr:`busy`: a timed-out or cancelled call runs on)."""

    def __init__(self, threads: int, processes: int) -> None:
        self.threads = concurrent.futures.ThreadPoolExecutor(threads, "taskq-sync")
        self._processes = processes
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._busy = 0
        self._busy_lock = threading.Lock()

    @property
    def busy(self) -> int:
        """Calls submitted to the pools and not ended yet (queued or running)."""
        return self._busy

    def submit(self, pool: concurrent.futures.Executor,
               fn: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run ``fn`` in ``pool``, counted in :attr:`busy` until it ends (not until its
        awaiting stops: a cancelled call still runs)."""
        with self._busy_lock:
            self._busy += 1
        try:
            future = pool.submit(fn)
        except BaseException:
            self._ended(None)
            raise
        future.add_done_callback(self._ended)
        return asyncio.wrap_future(future)

    def _ended(self, _: object) -> None:
        with self._busy_lock:
            self._busy -= 1

    @property
    def pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self._processes, mp_context=multiprocessing.get_context("spawn")
            )
        return self._pool

    def reset_pool(self) -> None:
        """Drop a broken process pool (one of its processes died); the next use makes one."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def shutdown(self) -> None:
        self.threads.shutdown(wait=False, cancel_futures=True)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _call_in_process(module: str, qualname: str, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> Any:
    """Runs in a pool process: finds the registered function by its own module and name (taken
    from the worker's registry, never from a payload) and calls it."""
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    fn = getattr(target, "fn", target)  # the module attribute is the Task; call its function
    return fn(*args, **kwargs)


def _in_context(ctx: TaskContext, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    set_context(ctx)
    return fn(*args, **kwargs)


async def invoke(
    task: Task[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    ctx: TaskContext,
    executors: Executors,
) -> Any:
    """Run one attempt; raises what the task raised, or TimeoutError."""
    if task.signature.context_param is not None and not task.options.cpu_bound:
        kwargs = {**kwargs, task.signature.context_param: ctx}
    timeout = task.options.timeout_s
    fn = task.fn
    if task.is_async:
        set_context(ctx)
        if timeout is None:
            return await fn(*args, **kwargs)
        async with asyncio.timeout(timeout):
            return await fn(*args, **kwargs)
    if task.options.cpu_bound:
        call = functools.partial(_call_in_process, fn.__module__, fn.__qualname__, args, kwargs)
        future = executors.submit(executors.pool, call)
    else:
        run = functools.partial(_in_context, ctx, fn, args, kwargs)
        future = executors.submit(executors.threads,
                                  functools.partial(contextvars.copy_context().run, run))
    try:
        return await asyncio.wait_for(future, timeout)
    except (TimeoutError, asyncio.CancelledError):
        ctx.request_cancel()  # a sync task may poll ctx.cancelled and stop early
        raise


def is_plain_async(task: Task[Any, Any]) -> bool:
    """An async task without a timeout or a context parameter: the worker awaits it directly."""
    return (task.is_async and task.options.timeout_s is None
            and task.signature.context_param is None)


_PLAIN = (str, float, bool)


def encode_result(value: Any) -> Any:
    """A msgpack-safe form of a task's return value (pydantic models, dates, ... as JSON)."""
    if value is None or type(value) in _PLAIN:
        return value
    try:
        pack(value)
        return value
    except (TypeError, ValueError, OverflowError):
        return to_jsonable_python(value)
