"""Running one task attempt: async in the event loop, sync in a thread, cpu_bound in a process.

Each kind honours the task's timeout. An async task is cancelled. The process pool starts with
the worker when any of its tasks is ``cpu_bound`` (:meth:`Executors.warm`: its processes
spawned, the tasks' modules imported, SIGINT and SIGTERM ignored so that a Ctrl-C in the terminal
or a service manager's SIGTERM to the process group stops the worker gracefully instead of
interrupting the calls), and a cpu_bound task's timeout starts
once the pool is warm: its start-up (about a second) never counts against a task. A
``cpu_bound`` task that times out has its pool's processes killed (a process pool cannot stop
one call): the pool is replaced on next use, and the other calls it was running end with
:class:`PoolRecycled` (handed back unrun, no attempt used); the calls still queued in it (the
kill cancels them) run on the next pool. Pool processes end with their worker, even a
SIGKILLed one (:func:`_exit_with_parent`). A thread cannot be killed in
Python: a sync task that times out (or is cancelled) ends its attempt at once, its thread runs
the function to its end with the result discarded, counted in :attr:`Executors.abandoned`
until it ends; ``--max-tasks`` recycling (the process exits, the supervisor starts a fresh one)
is what frees a thread stuck for good.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import importlib
import logging
import multiprocessing
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from pydantic_core import to_jsonable_python

from taskq.codec import pack
from taskq.context import TaskContext, set_context
from taskq.task import Task
from taskq.worker import orphan

log = logging.getLogger(__name__)


WARM_LIMIT_S = 30.0
"""The longest a process pool's warm-up waits for all its processes to answer."""


class PoolRecycled(Exception):
    """A cpu_bound call whose pool was killed because another call in it timed out."""


class Unstorable(Exception):
    """A task's return value cannot be stored in its record: the task is dead-lettered with
    :attr:`reason` (no retry: another attempt would return the same kind of value)."""

    reason = "result_unencodable"


class ResultUnencodable(Unstorable):
    """The value is not plain data msgpack can hold (nor convertible to JSON-like data)."""


class ResultTooLarge(Unstorable):
    """The encoded value is larger than the TaskQueue's ``max_result_bytes``."""

    reason = "result_too_large"


class Executors:
    """The thread pool (sync tasks) and process pool (cpu_bound tasks) of one worker, and how
    many calls run in them now (:attr:`busy`: a timed-out or cancelled call runs on)."""

    def __init__(self, threads: int, processes: int, cpu_modules: tuple[str, ...] = ()) -> None:
        self.threads = concurrent.futures.ThreadPoolExecutor(threads, "taskq-sync")
        self._processes = processes
        self._cpu_modules = cpu_modules  # imported by each pool process as it starts
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._warm: weakref.WeakSet[concurrent.futures.ProcessPoolExecutor] = weakref.WeakSet()
        self._warming: asyncio.Future[None] | None = None
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._killed: weakref.WeakSet[concurrent.futures.ProcessPoolExecutor] = weakref.WeakSet()
        self.abandoned = 0
        """Sync calls that timed out and still run in their thread."""
        self.pools_killed = 0
        self.closed = False
        """Set by :meth:`shutdown`: no new pool is made for a call cancelled by it."""

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
                self._processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=_pool_started, initargs=(self._cpu_modules,),
            )
        return self._pool

    async def warm(self) -> concurrent.futures.ProcessPoolExecutor:
        """The process pool, once warm: every process started and the cpu_bound tasks' modules
        imported (a new pool, after one was killed or broke, warms up again)."""
        pool = self.pool
        while pool not in self._warm:
            if self._warming is None or self._warming.done():
                self._warming = asyncio.ensure_future(self._warm_up(pool))
            await asyncio.shield(self._warming)
            pool = self.pool
        return pool

    async def _warm_up(self, pool: concurrent.futures.ProcessPoolExecutor) -> None:
        """Start every process of ``pool``: a no-op call per process (each submit finds no
        idle process and spawns one), then more until each process has answered one (the
        first ready process may answer several while others still start), within
        WARM_LIMIT_S."""
        started = time.monotonic()
        pids: set[int] = set()
        failed: BaseException | None = None
        calls = self._processes
        while len(pids) < self._processes and time.monotonic() - started < WARM_LIMIT_S:
            with _stop_signals_ignored():
                futures = [asyncio.wrap_future(pool.submit(_warmed)) for _ in range(calls)]
            for r in await asyncio.gather(*futures, return_exceptions=True):
                if isinstance(r, BaseException):
                    failed = r
                else:
                    pids.add(r)
            if failed is not None:
                break
            calls = 1
        self._warm.add(pool)  # (a broken pool is warm too: its calls fail, and it is replaced)
        if failed is not None:
            log.warning("the process pool for cpu_bound tasks failed to start: %s: %s",
                        type(failed).__name__, failed)
        else:
            log.info("process pool for cpu_bound tasks started: %d processes in %.2f s",
                     len(pids), time.monotonic() - started)

    def kill_pool(self, pool: concurrent.futures.ProcessPoolExecutor) -> None:
        """Kill every process of ``pool`` (a cpu_bound call in it timed out); the next use
        makes a fresh pool. Uses the executor's process table (CPython's ``_processes``)."""
        if pool in self._killed:
            return
        self._killed.add(pool)
        self.pools_killed += 1
        if self._pool is pool:
            self._pool = None
        processes = _processes_of(pool)
        _kill(processes)
        pool.shutdown(wait=False, cancel_futures=True)
        log.warning("a cpu_bound task timed out: killed its pool's %d processes (replaced on "
                    "next use)", len(processes))

    def was_killed(self, pool: concurrent.futures.ProcessPoolExecutor) -> bool:
        return pool in self._killed

    def abandon(self, call: _SyncCall) -> None:
        """A sync call timed out: count its thread as abandoned until the call ends."""
        with self._busy_lock:
            if not call.done:
                call.abandoned = True
                self.abandoned += 1

    def sync_ended(self, call: _SyncCall) -> None:
        with self._busy_lock:
            call.done = True
            if call.abandoned:
                self.abandoned -= 1

    def reset_pool(self) -> None:
        """Drop a broken process pool (one of its processes died); the next use makes one."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def shutdown(self) -> None:
        """At the worker's end (after its grace period: a cpu_bound call still running was
        handed back): end the threads' queue and the pool's processes. These ignore SIGINT and
        SIGTERM (see :func:`_pool_started`), so they are killed here, not left running on."""
        self.closed = True
        self.threads.shutdown(wait=False, cancel_futures=True)
        pool, self._pool = self._pool, None
        if pool is not None:
            processes = _processes_of(pool)
            pool.shutdown(wait=False, cancel_futures=True)
            _kill(processes)

    def kill_processes(self) -> None:
        """Kill the pool's processes now (a worker exiting at once, on a second signal)."""
        if self._pool is not None:
            _kill(_processes_of(self._pool))


class _SyncCall:
    """One sync call's end, for :meth:`Executors.abandon`."""

    __slots__ = ("abandoned", "done")

    def __init__(self) -> None:
        self.done = False
        self.abandoned = False


def _processes_of(pool: concurrent.futures.ProcessPoolExecutor) -> list[Any]:
    """The processes of ``pool`` (CPython's ``_processes`` table)."""
    return list((getattr(pool, "_processes", None) or {}).values())


def _kill(processes: list[Any]) -> None:
    for p in processes:
        with contextlib.suppress(Exception):
            p.kill()


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _stop_signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored while pool processes are spawned: they inherit that through
    ``exec``, so a Ctrl-C or a service manager's SIGTERM to the process group during their
    start-up, before :func:`_pool_started` runs, cannot kill them (such a signal in these few
    milliseconds is lost for the worker too). Only the main thread may change signal
    handlers; elsewhere this does nothing."""
    old = [signal.getsignal(s) for s in _STOP_SIGNALS]
    if threading.current_thread() is not threading.main_thread() or None in old:
        yield
        return
    for s in _STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    try:
        yield
    finally:
        for s, handler in zip(_STOP_SIGNALS, old, strict=True):
            signal.signal(s, handler)


def _pool_started(modules: tuple[str, ...]) -> None:
    """Runs in each pool process as it starts: ignore SIGINT and SIGTERM (a Ctrl-C in the
    terminal, or a service manager stopping the service, signals the whole process group; the
    worker stops gracefully, lets running calls finish within its grace period, then kills
    its pool processes itself: :meth:`Executors.shutdown`), and import the cpu_bound tasks'
    modules (an import error surfaces at the call)."""
    for s in _STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    _exit_with_parent()
    for module in modules:
        with contextlib.suppress(Exception):
            importlib.import_module(module)


def _exit_with_parent() -> None:
    """Make this pool process end when its worker dies, even by SIGKILL: it ignores SIGTERM,
    and nothing else would stop it (see :mod:`taskq.worker.orphan`)."""
    spawner = multiprocessing.parent_process()  # (the worker, even if it died already)
    parent = spawner.pid if spawner is not None and spawner.pid else os.getppid()
    orphan.signal_on_parent_death(signal.SIGKILL, parent)


def _warmed() -> int:
    """A call that starts a pool process (see :meth:`Executors._warm_up`): its pid, after a
    moment (so that one ready process does not answer every call at once)."""
    time.sleep(0.02)
    return os.getpid()


def _call_in_process(module: str, qualname: str, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> Any:
    """Runs in a pool process: finds the registered function by its own module and name (taken
    from the worker's registry, never from a payload) and calls it."""
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    fn = getattr(target, "fn", target)  # the module attribute is the Task; call its function
    return fn(*args, **kwargs)


def _in_context(ctx: TaskContext, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                call: _SyncCall, executors: Executors) -> Any:
    set_context(ctx)
    try:
        return fn(*args, **kwargs)
    finally:
        executors.sync_ended(call)


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
        return await _in_pool(task, args, kwargs, ctx, executors, timeout)
    call = _SyncCall()
    run = functools.partial(_in_context, ctx, fn, args, kwargs, call, executors)
    future = executors.submit(executors.threads,
                              functools.partial(contextvars.copy_context().run, run))
    try:
        return await asyncio.wait_for(future, timeout)
    except TimeoutError:
        ctx.request_cancel()  # a sync task may poll ctx.cancelled and stop early
        executors.abandon(call)
        log.warning("sync task %s timed out after %g s: its thread runs on until the function "
                    "returns (%d such threads now)", ctx.task_id, timeout, executors.abandoned)
        raise
    except asyncio.CancelledError:
        ctx.request_cancel()
        raise


async def _in_pool(task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                   ctx: TaskContext, executors: Executors, timeout: float | None) -> Any:
    fn = task.fn
    call = functools.partial(_call_in_process, fn.__module__, fn.__qualname__, args, kwargs)
    for _ in range(_RERUNS + 1):
        pool = await executors.warm()  # (the pool's start-up is not the task's time)
        future = executors.submit(pool, call)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            ctx.request_cancel()
            executors.kill_pool(pool)
            raise
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is None or current.cancelling() or not future.cancelled():
                ctx.request_cancel()
                raise  # a cancel of this attempt (taskq's cancel, a stop, a lost lease)
            # Nobody cancelled this attempt: its call was still queued in a pool that was
            # killed (another call's timeout) or dropped as broken, which cancels the calls
            # queued in it. It never ran: run it on the new pool (unless the worker stops).
            if executors.closed:
                raise PoolRecycled("its process pool was shut down before it ran") from None
        except BrokenProcessPool as exc:
            if executors.was_killed(pool):
                raise PoolRecycled("its process pool was killed for another task's timeout") \
                    from exc
            raise
    raise PoolRecycled("its process pool was killed for other tasks' timeouts "
                       f"{_RERUNS + 1} times before it ran")


_RERUNS = 3
"""How many times a cpu_bound call queued in a pool that was killed under it is re-submitted to
the next pool before it is handed back (:class:`PoolRecycled`)."""


def is_plain_async(task: Task[Any, Any]) -> bool:
    """An async task without a timeout or a context parameter: the worker awaits it directly."""
    return (task.is_async and task.options.timeout_s is None
            and task.signature.context_param is None)


_PLAIN = (str, float, bool)


def encode_result(value: Any) -> Any:
    """A msgpack-safe form of a task's return value (pydantic models, dates, ... as JSON);
    raises :class:`ResultUnencodable` when there is none. (A plain ``str`` is returned as it
    is: packing the record finds a lone surrogate in it.)"""
    if value is None or type(value) in _PLAIN:
        return value
    try:
        pack(value)
        return value
    except (TypeError, ValueError, OverflowError, RecursionError):
        pass
    try:
        return to_jsonable_python(value)
    except BaseException as exc:  # pydantic's serialization errors, recursion, ... and what
        # task code called by the serializer raises (an Enum's ``value`` raising SystemExit):
        # the attempt's outcome, never the worker's end (as in the runner)
        raise ResultUnencodable(unencodable(value, exc)) from exc


def unencodable(value: Any, exc: BaseException) -> str:
    """Why the return value ``value`` cannot be stored (``exc``: what the encoder said)."""
    try:
        said = str(exc)
    except BaseException:  # (its __str__ is task code)
        said = type(exc).__name__
    if not isinstance(exc, Exception):  # SystemExit(78), not a bare "78"
        said = f"{type(exc).__name__}({said})" if said else type(exc).__name__
    return (f"the task returned a {type(value).__name__} that cannot be stored: "
            f"{said[:200] or type(exc).__name__}")
