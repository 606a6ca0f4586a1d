"""TaskQueue: the task registry and every producer-side operation (enqueue, status, cancel)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Literal,
    ParamSpec,
    Protocol,
    TypeVar,
    overload,
)

from redis import Redis as SyncRedis
from redis.asyncio import Redis

from taskq import (
    batching,
    clients,
    cluster,
    codec,
    durability,
    ids,
    lifecycle,
    names,
    options,
    state,
)
from taskq.blocking import LoopThread
from taskq.codec import Message
from taskq.connection import (
    check_memory,
    check_permissions,
    check_url,
)
from taskq.context import TaskContext
from taskq.errors import (
    BacklogFull,
    DecodeError,
    NotAMessage,
    PayloadTooLarge,
    RedisCommandError,
    RedisTimeout,
    RedisUnavailable,
    ResultTimeout,
    TaskNotFound,
    TaskValidationError,
    UniqueKeyReused,
)
from taskq.handle import SyncTaskHandle, TaskHandle
from taskq.keys import GROUP, QueueKeys, queues_key
from taskq.lane import Commands
from taskq.limits import KeyOf, Limits
from taskq.periodic import CatchUp, Schedule, Spec
from taskq.priority import Priority
from taskq.records import (
    TaskRecord,
    TaskStatus,
    encode_record,
)
from taskq.results import EventHub
from taskq.retry import RetryPolicy
from taskq.scripts import Reused, Scripts, SendItem, Sent, SyncScripts
from taskq.task import ContextTask, Seconds, Task, TaskOptions, seconds, takes_context
from taskq.url_choice import UrlChoice, UrlSource, choose

if TYPE_CHECKING:
    from taskq.tracing import Tracing  # imported by taskq.tracing.instrument, when used

P = ParamSpec("P")
R = TypeVar("R")
L = TypeVar("L", bound=Callable[..., Any])

log = logging.getLogger(__name__)
_SYNC_LOOP_LOCK = threading.Lock()

RECHECK_S = 5.0
"""How often :meth:`TaskQueue.wait` re-reads a task's status while no event came: the safety
net for an event lost while its subscription reconnects or moves to another node."""


class TaskDecorator(Protocol):
    @overload
    def __call__(
        self, fn: Callable[Concatenate[TaskContext, P], Coroutine[Any, Any, R]]
    ) -> ContextTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[TaskContext, P], R]) -> ContextTask[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Task[P, R]: ...


class TaskQueue:
    """The registry of tasks and the producer's connection to Redis.

    Which Redis (one rule for the library, the worker, the API and the CLI; see
    :mod:`taskq.url_choice`): a ``url`` given here wins; else ``$TASKQ_REDIS_URL``; else
    ``redis://localhost:6379/0``. A ``TASKQ_REDIS_URL`` that disagrees with a ``url`` given here
    is ignored, with a warning on the first connection. Leave ``url`` out to configure Redis
    by the environment: every process that loads this TaskQueue then follows it.

    ``url`` and ``prefix`` (which namespaces every key) are fixed at construction: read-only;
    :meth:`configured` makes a copy with others. Limits: ``max_payload_bytes`` per encoded
    message (refused at enqueue), ``max_result_bytes`` per encoded return value (default: the
    payload limit; a task returning more is dead-lettered ``result_too_large``),
    ``max_backlog`` waiting entries per queue stream (and per delayed set), records kept
    ``result_ttl`` after a task's last change, dead letters capped at ``dead_letter_cap`` per
    queue (only dead letters are ever trimmed).

    ``min_replicas``: an enqueue succeeds only once that many replicas confirmed it within
    ``replicas_timeout`` (else :class:`~taskq.errors.NotReplicated`), and workers confirm
    completions the same way (see :mod:`taskq.durability`). 0 (the default): no waiting.
    ``wait_aof`` (with ``min_replicas``): on Redis 7.2+ confirm with ``WAITAOF`` instead, so
    that the write is on the disk (AOF) of the master, when it has AOF, and of the replicas.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "taskq",
        default_queue: str = "default",
        max_payload_bytes: int = 1_048_576,
        max_result_bytes: int | None = None,
        max_backlog: int = 1_000_000,
        result_ttl: Seconds = 3_600,
        dead_letter_cap: int = 100_000,
        socket_timeout: Seconds = 5.0,
        min_replicas: int = 0,
        replicas_timeout: Seconds = 1.0,
        wait_aof: bool = False,
    ) -> None:
        self._url = choose(url)
        check_url(self._url.url)  # a malformed URL: a ConfigError in one line, here
        self._url_checked = False
        self._prefix = prefix
        self.default_queue = default_queue
        self.max_payload_bytes = max_payload_bytes
        self.max_result_bytes = max_payload_bytes if max_result_bytes is None else max_result_bytes
        if self.max_result_bytes < 1:
            raise ValueError("max_result_bytes must be 1 or more")
        self.max_backlog = max_backlog
        self.result_ttl_ms = int((seconds(result_ttl) or 0) * 1000)
        self.dead_letter_cap = dead_letter_cap
        self.socket_timeout_s = seconds(socket_timeout) or 5.0
        if min_replicas < 0:
            raise ValueError("min_replicas must be 0 or more")
        if wait_aof and not min_replicas:
            raise ValueError("wait_aof needs min_replicas (1 or more): it changes how the "
                             "replicas confirm a write")
        self.min_replicas = min_replicas  # (see taskq.durability)
        self.wait_aof = wait_aof
        self.replicas_timeout_ms = int((seconds(replicas_timeout) or 1.0) * 1000)
        self.registry: dict[str, Task[Any, Any]] = {}
        self.lifespan: lifecycle.Lifespan | None = None
        self.task_hooks: tuple[lifecycle.TaskHooks, ...] = ()
        self.tracing: Tracing | None = None
        """Set by :func:`taskq.tracing.instrument`: enqueues and workers trace (OpenTelemetry)."""
        self.schedules: dict[str, Schedule] = {}
        """Periodic schedules by name (:meth:`schedule`); workers sync them to Redis."""
        self._fresh_connections()

    def _fresh_connections(self) -> None:
        """No connection or per-connection state yet (a new queue, or a twin of one)."""
        self._client: Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: Scripts | None = None
        self._events: EventHub | None = None
        self._lane: Commands | None = None
        self._sync: tuple[SyncRedis, SyncScripts] | None = None
        self._sync_loop: LoopThread | None = None
        self._known_queues: set[str] = set()
        self._keys: dict[str, QueueKeys] = {}
        self._gauge = batching.BacklogGauge()

    # -- registry -----------------------------------------------------------------------

    # A task taking the context first is enqueued with its other arguments only.
    @overload
    def task(
        self, fn: Callable[Concatenate[TaskContext, P], Coroutine[Any, Any, R]], /
    ) -> ContextTask[P, R]: ...
    @overload
    def task(self, fn: Callable[Concatenate[TaskContext, P], R], /) -> ContextTask[P, R]: ...
    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str | None = None,
        max_attempts: int = 3,
        timeout: Seconds | None = None,
        cpu_bound: bool = False,
        retry: RetryPolicy | None = None,
        retry_on: Sequence[type[BaseException]] | None = None,
        never_retry_on: Sequence[type[BaseException]] | None = None,
        backoff: Seconds | None = None,
        max_backoff: Seconds | None = None,
        result_ttl: Seconds | None = None,
        priority: Priority | None = None,
        rate_limit: str | None = None,
        rate_limit_key: KeyOf | None = None,
        concurrency_limit: int | None = None,
        concurrency_key: KeyOf | None = None,
    ) -> TaskDecorator: ...

    def task(  # type: ignore[misc]
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str | None = None,
        max_attempts: int = 3,
        timeout: Seconds | None = None,
        cpu_bound: bool = False,
        retry: RetryPolicy | None = None,
        retry_on: Sequence[type[BaseException]] | None = None,
        never_retry_on: Sequence[type[BaseException]] | None = None,
        backoff: Seconds | None = None,
        max_backoff: Seconds | None = None,
        result_ttl: Seconds | None = None,
        priority: Priority | None = None,
        rate_limit: str | None = None,
        rate_limit_key: KeyOf | None = None,
        concurrency_limit: int | None = None,
        concurrency_key: KeyOf | None = None,
    ) -> Any:
        """Register a task. ``max_attempts`` counts every run (first one included);
        ``timeout`` is per attempt; ``retry_on``/``never_retry_on`` pick the exceptions that
        retry; ``backoff``/``max_backoff`` set the exponential backoff's base and cap.
        ``priority``: the level of its enqueues ("high", "normal", "low"; see
        :mod:`taskq.priority`). ``rate_limit`` ("100/m"), ``concurrency_limit`` (N at once),
        ``concurrency_key`` (one at a time per key) and ``rate_limit_key``: limits that hold
        across every worker (see :mod:`taskq.limits`)."""
        policy = retry or RetryPolicy()
        changes: dict[str, Any] = {}
        if retry_on is not None:
            changes["retry_on"] = tuple(retry_on)
        if never_retry_on is not None:
            changes["never_on"] = tuple(never_retry_on)
        if backoff is not None:
            changes["base_s"] = seconds(backoff)
        if max_backoff is not None:
            changes["cap_s"] = seconds(max_backoff)
        policy = dataclasses.replace(policy, **changes)
        options = TaskOptions(
            queue=queue or self.default_queue,
            max_attempts=max_attempts,
            timeout_s=seconds(timeout),
            cpu_bound=cpu_bound,
            retry=policy,
            result_ttl_s=seconds(result_ttl),
            priority=priority,
            limits=Limits.of(rate_limit, rate_limit_key, concurrency_limit, concurrency_key),
        )

        def register(f: Callable[..., Any]) -> Task[Any, Any]:
            task_name = name or names.default_name(f)
            if task_name in self.registry:
                raise ValueError(f"a task named {task_name!r} is already registered")
            if cpu_bound and "<locals>" in f.__qualname__:
                raise ValueError("a cpu_bound task must be a module-level function")
            kind = ContextTask if takes_context(f) else Task
            t: Task[Any, Any] = kind(self, f, task_name, options)
            if options.limits is not None:
                options.limits.check_keys(t.signature.fields)
            self.registry[task_name] = t
            return t

        if fn is not None:
            return register(fn)
        return register

    def worker_lifespan(self, fn: L) -> L:
        """Decorate the worker lifespan: an async generator function that sets up what tasks
        share (a database pool, a client), yields it (tasks read it as ``ctx.state``), and
        tears it down after the worker drained. Runs once per worker process (see
        :mod:`taskq.lifecycle`); one per TaskQueue."""
        if self.lifespan is not None:
            raise ValueError("this TaskQueue has a worker lifespan already")
        self.lifespan = fn
        return fn

    def add_task_hooks(self, hooks: lifecycle.TaskHooks) -> None:
        """Call ``hooks.before(ctx)`` and ``hooks.after(ctx, outcome)`` around each attempt in
        every worker of this TaskQueue (tracing, metrics; see :mod:`taskq.lifecycle`)."""
        self.task_hooks = (*self.task_hooks, hooks)
    def schedule(
        self, message: Message, *, cron: str | None = None, every: Seconds | None = None,
        timezone: str = "UTC", name: str | None = None,
        catch_up: CatchUp | Literal["once", "skip", "all"] = CatchUp.ONCE,
    ) -> Schedule:
        """Enqueue ``message`` (from ``task.message(...)``, typed by the task's signature) at
        every tick of ``cron`` (in ``timezone``, by the IANA database) or ``every`` period.

        Workers that load this TaskQueue sync its schedules to Redis when they start (added,
        changed, removed, by ``name``: the task's name unless given) and fire them: each tick
        once, on Redis's clock, whichever workers run. ``catch_up`` says what happens to ticks
        missed while no worker ran: ``"once"`` (one task), ``"skip"`` or ``"all"`` (see
        :class:`taskq.periodic.CatchUp` and the docs' *Periodic tasks*)."""
        if message.task not in self.registry:
            raise ValueError(f"task {message.task!r} is not registered on this TaskQueue")
        every_s = seconds(every)
        sched = Schedule(name or message.task, message,
                         Spec.of(cron, every_s, timezone), CatchUp(catch_up))
        if sched.name in self.schedules:
            raise ValueError(f"a schedule named {sched.name!r} is already declared: give this "
                             "one another name=")
        self.schedules[sched.name] = sched
        return sched

    def get_task(self, name: str) -> Task[Any, Any] | None:
        return self.registry.get(name)

    def resolve_task(self, name: str) -> Task[Any, Any]:
        """The registered task ``name`` stands for: its full name, or an unambiguous short one
        (``send_email`` for ``myapp.tasks.send_email``; see :mod:`taskq.names`). Raises
        :class:`~taskq.errors.TaskNotRegistered`, listing the matches when several fit."""
        return names.resolve(self.registry, name)

    @property
    def queues(self) -> list[str]:
        """Queues that registered tasks use."""
        return sorted({t.options.queue for t in self.registry.values()})

    def keys(self, queue: str) -> QueueKeys:
        keys = self._keys.get(queue)
        if keys is None:
            keys = QueueKeys(self._prefix, queue)  # raises InvalidQueueName for a bad name
            if len(self._keys) >= 1_000:  # names may come from requests: keep the cache bounded
                self._keys.clear()
            self._keys[queue] = keys
        return keys

    # -- connections ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The Redis URL (see the class for the rule that chose it)."""
        return self._url.url

    @property
    def url_choice(self) -> UrlChoice:
        """The URL, where it came from, and ``TASKQ_REDIS_URL`` when this queue was made."""
        return self._url

    @property
    def prefix(self) -> str:
        """The prefix of every key of this TaskQueue."""
        return self._prefix

    def configured(self, *, url: str | None = None, prefix: str | None = None) -> TaskQueue:
        """A copy on another Redis ``url`` (a URL given in code) and/or key ``prefix``, with the
        same registry and limits and its own connections. The tasks stay bound to this
        TaskQueue (``task.enqueue()`` sends through it): send through the copy with
        ``copy.enqueue_many([task.message(...)])``."""
        copy = TaskQueue(url, prefix=self._prefix if prefix is None else prefix,
                         default_queue=self.default_queue,
                         max_payload_bytes=self.max_payload_bytes,
                         max_result_bytes=self.max_result_bytes, max_backlog=self.max_backlog,
                         dead_letter_cap=self.dead_letter_cap,
                         socket_timeout=self.socket_timeout_s, min_replicas=self.min_replicas,
                         replicas_timeout=self.replicas_timeout_ms / 1000,
                         wait_aof=self.wait_aof)
        if url is None:
            copy._url = self._url
        copy.result_ttl_ms = self.result_ttl_ms
        copy.registry = self.registry
        copy.lifespan = self.lifespan
        copy.task_hooks = self.task_hooks
        copy.tracing = self.tracing
        copy.schedules = self.schedules
        return copy

    def check_url(self) -> None:
        """Log once, as a warning, when ``TASKQ_REDIS_URL`` names another Redis than the one
        this TaskQueue uses (called on the first connection and by the entry points' start)."""
        if self._url_checked:
            return
        self._url_checked = True
        conflict = self._url.conflict()
        if conflict is not None:
            log.warning("%s", conflict)

    @property
    def redis(self) -> Redis:
        """The asyncio client of the running event loop (made on first use)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self.check_url()
            self._client = clients.connect(self.url, socket_timeout_s=self.socket_timeout_s)
            self._loop = loop
            self._scripts = None
            self._events = None
            self._lane = None
        return self._client

    @property
    def lane(self) -> Commands:
        """The auto-pipelined connection of single enqueues (see :mod:`taskq.lane`)."""
        client = self.redis
        if self._lane is None:
            self._lane = clients.lane(client)
        return self._lane

    @property
    def scripts(self) -> Scripts:
        client = self.redis
        if self._scripts is None:
            self._scripts = Scripts(client, self.lane)
        return self._scripts

    @property
    def events(self) -> EventHub:
        client = self.redis
        if self._events is None:
            self._events = EventHub(client)
        return self._events

    def _sync_client(self) -> tuple[SyncRedis, SyncScripts]:
        if self._sync is None:
            self.check_url()
            client = clients.connect_sync(self.url, socket_timeout_s=self.socket_timeout_s)
            self._sync = (client, SyncScripts(client))
        return self._sync

    @property
    def sync_loop(self) -> LoopThread:
        """The event loop thread that answers sync handles' reads (made on first use), with
        a twin of this queue (same settings and registry, its own connections)."""
        with _SYNC_LOOP_LOCK:  # two threads' first sync reads start one thread, not two
            if self._sync_loop is None:
                twin = copy.copy(self)
                twin._fresh_connections()
                self._sync_loop = LoopThread(twin)
            return self._sync_loop

    async def aclose(self) -> None:
        if self._events is not None:
            await self._events.close()
            self._events = None
        if self._lane is not None:
            with contextlib.suppress(Exception):
                await self._lane.aclose()
            self._lane = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None
            self._scripts = None
        self.close_sync()

    def close_sync(self) -> None:
        """Close what sync code opened: the blocking connection of ``enqueue_sync`` and the
        thread that answers sync handles. Safe to call more than once."""
        if self._sync is not None:
            self._sync[0].close()
            self._sync = None
        if self._sync_loop is not None:
            self._sync_loop.close()
            self._sync_loop = None

    def rebind(self, url: str | UrlChoice, *, prefix: str | None = None) -> None:
        """Point this queue at another Redis (and key prefix), or at the same one afresh: what
        tests do to an app's own queue (:mod:`taskq.testing`). Its connections are closed
        where their event loop still runs or waits (a test's loop after the test, a
        TestClient's loop in its thread), else forgotten; so is what it learnt about the old
        Redis (known queues, backlogs). A URL given here is deliberate, not the app's code
        disagreeing with ``TASKQ_REDIS_URL``: no warning about that variable; a
        :class:`UrlChoice` (the queue's own :attr:`url_choice`, saved) restores one as it was."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(Exception):  # best effort: the connections are dropped
                if not loop.is_running():
                    loop.run_until_complete(self.aclose())
                elif not _running_in(loop):
                    asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(
                        self.socket_timeout_s)
        self.close_sync()
        if isinstance(url, UrlChoice):
            self._url = url
        elif url != self._url.url:
            self._url = UrlChoice(url, UrlSource.CODE)  # no environment to disagree with
        self._url_checked = False
        if prefix is not None:
            self._prefix = prefix
        self._fresh_connections()

    async def __aenter__(self) -> TaskQueue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def ready(self, *, memory: bool = True) -> None:
        """Raise unless Redis answers, every script is loaded and the ACL user may run what
        producing to the queues needs (:class:`RedisPermissionError`); with ``memory``, also
        unless Redis has room for new tasks (:class:`RedisOutOfMemory`)."""
        await self.redis.ping()
        await self.scripts.load()
        await check_permissions(self.scripts,
                                [self.keys(q) for q in self.queues or [self.default_queue]])
        if memory:
            await check_memory(self.redis)

    # -- enqueue --------------------------------------------------------------------------

    def _encode(self, messages: Iterable[Message]) -> list[tuple[str, bytes, Message]]:
        encode, limit = codec.encode, self.max_payload_bytes
        msgs = messages if isinstance(messages, list | tuple) else list(messages)
        try:
            out = [(msg.queue or self._queue_of(msg.task), encode(msg), msg) for msg in msgs]
        except DecodeError:
            for msg in msgs:
                _check_arguments(msg)
            raise
        for _, payload, _ in out:
            if len(payload) > limit:
                raise PayloadTooLarge(len(payload), limit)
        return out

    def _queue_of(self, task: str) -> str:
        t = self.registry.get(task)
        return t.options.queue if t is not None else self.default_queue

    def _handle(self, task_id: str, msg: Message, run_at_ms: int | None = None) -> TaskHandle[Any]:
        return TaskHandle(task_id, self, self.registry.get(msg.task), run_at_ms)

    async def enqueue_one(self, msg: Message) -> TaskHandle[Any]:
        """Enqueue one message now: a plain XADD on the lane while its queue is known and far
        below its backlog limit (the common case), else :meth:`enqueue_many`."""
        if self.tracing is not None and msg.trace is None:
            return await self.tracing.enqueue_one(self, msg)
        if msg.options is not None and options.routed(msg.options):
            (handle,) = await self._send_with([msg], 0)
            return handle
        ((queue, payload, _),) = self._encode([msg])  # raises PayloadTooLarge
        if queue in self._known_queues and self._gauge.fast(queue, 1, time.monotonic(),
                                                             self.max_backlog):
            return await self._xadd(queue, payload, msg)
        (handle,) = await self.enqueue_many([msg])
        return handle

    async def enqueue_many(
        self, messages: Iterable[Message], *, delay: Seconds | None = None
    ) -> list[TaskHandle[Any]]:
        """Enqueue messages (from ``task.message(...)``), in one round trip for up to 500.

        Raises PayloadTooLarge before anything is sent, and BacklogFull when a queue would pass
        its limit; a refused batch adds nothing (see :mod:`taskq.batching`). Messages with a
        unique key or a run-at time (``task.with_options(...).message(...)``) are added by
        the enqueue-with-options script, checked per queue and call.
        """
        msgs = _messages(messages)
        if self.tracing is not None and self.tracing.untraced(msgs := list(msgs)):
            return await self.tracing.enqueue_many(self, msgs, delay=delay)
        if any(m.options is not None and options.routed(m.options) for m in msgs):
            return await self._mixed(msgs, _delay_ms(delay))
        plan = self._plan(msgs, delay)
        if plan is None:
            return []
        if plan.new_queues:
            await self.redis.sadd(queues_key(self.prefix), *plan.new_queues)  # type: ignore[misc]
            self._known_queues |= plan.new_queues
        calls = plan.calls
        if plan.single:
            call = calls[0]
            return [await self._xadd(call.queue, call.payloads[0], call.messages[0])]
        if plan.precheck:
            pipe = self.redis.pipeline(transaction=False)
            for q in plan.precheck:
                if plan.delay_ms > 0:
                    pipe.zcard(self.keys(q).delayed)
                else:
                    pipe.xlen(self.keys(q).stream)
            self._prechecked(plan, await pipe.execute())
        if len(calls) == 1:
            return await self._send(calls[0], plan)
        results = await asyncio.gather(*(self._send(c, plan) for c in calls))
        return _in_order(msgs, [m for c in calls for m in c.messages],
                         [h for handles in results for h in handles])

    def enqueue_many_sync(
        self, messages: Iterable[Message], *, delay: Seconds | None = None
    ) -> list[SyncTaskHandle[Any]]:
        """:meth:`enqueue_many` for synchronous code (its own blocking connection): the same
        plan, sent call after call. Returns blocking handles (:class:`SyncTaskHandle`)."""
        return [h.sync() for h in self._enqueue_many_sync(messages, delay)]

    def _enqueue_many_sync(
        self, messages: Iterable[Message], delay: Seconds | None
    ) -> list[TaskHandle[Any]]:
        msgs = _messages(messages)
        if self.tracing is not None and self.tracing.untraced(msgs := list(msgs)):
            return self.tracing.enqueue_many_sync(self, msgs, delay)
        if any(m.options is not None and options.routed(m.options) for m in msgs):
            return self._mixed_sync(msgs, _delay_ms(delay))
        plan = self._plan(msgs, delay)
        if plan is None:
            return []
        client, scripts = self._sync_client()
        if plan.new_queues:
            client.sadd(queues_key(self.prefix), *plan.new_queues)
            self._known_queues |= plan.new_queues
        calls = plan.calls
        if plan.precheck and not plan.single:
            self._prechecked(plan, [
                client.zcard(self.keys(q).delayed) if plan.delay_ms > 0
                else client.xlen(self.keys(q).stream)
                for q in plan.precheck
            ])
        handles = self._send_sync(plan, client, scripts)
        if len(calls) > 1:
            handles = _in_order(msgs, [m for c in calls for m in c.messages], handles)
        if self.min_replicas:  # (one thread's blocking client reuses one connection)
            durability.confirm_sync(client, [self.keys(c.queue).stream for c in calls],
                                    self.min_replicas, self.replicas_timeout_ms,
                                    f"{len(handles)} tasks", aof=self.wait_aof)
        return handles

    def _send_sync(self, plan: batching.Plan, client: SyncRedis,
                   scripts: SyncScripts) -> list[TaskHandle[Any]]:
        calls = plan.calls
        if plan.single:
            c = calls[0]
            entry = client.xadd(self.keys(c.queue).stream, {codec.FIELD: c.payloads[0]})
            self._gauge.added(c.queue, 1)
            return [self._handle(ids.task_id(c.queue, _text(entry)), c.messages[0])]  # type: ignore[arg-type]
        handles: list[TaskHandle[Any]] = []
        for c in calls:
            keys = self.keys(c.queue)
            if c.task_ids is not None:
                handles += self._scheduled(c, scripts.schedule(
                    keys=keys, task_ids=c.task_ids, payloads=c.payloads,
                    delay_ms=plan.delay_ms, limit=plan.limit))
            else:
                handles += self._enqueued(c, *scripts.enqueue(keys=keys, payloads=c.payloads,
                                                              limit=plan.limit))
        return handles

    def _plan(self, messages: Iterable[Message], delay: Seconds | None) -> batching.Plan | None:
        encoded = self._encode(messages)
        if not encoded:
            return None
        return batching.prepare(encoded, _delay_ms(delay), self._known_queues, self._gauge,
                                self.max_backlog, time.monotonic())

    def _prechecked(self, plan: batching.Plan, lengths: Sequence[Any]) -> None:
        """Raise BacklogFull if the batch would pass a queue's limit (nothing was sent)."""
        backlogs = {q: int(n) for q, n in zip(plan.precheck, lengths, strict=True)}
        batching.check_backlogs(plan.calls, backlogs, self.max_backlog)
        if plan.delay_ms == 0:
            now = time.monotonic()
            for q, n in backlogs.items():
                self._gauge.saw(q, n, now)

    async def _xadd(self, queue: str, payload: bytes, msg: Message) -> TaskHandle[Any]:
        """One message to a queue far below its limit: a plain XADD, one command."""
        stream = self.keys(queue).stream
        entry = await self.lane.execute("XADD", stream, "*", codec.FIELD, payload)
        if self.min_replicas:
            await durability.confirm(self.lane, stream, self.min_replicas,
                                     self.replicas_timeout_ms, f"task {queue}:{_text(entry)}",
                                     aof=self.wait_aof)
        self._gauge.added(queue, 1)
        return self._handle(ids.task_id(queue, _text(entry)), msg)

    async def _send(self, call: batching.Call, plan: batching.Plan) -> list[TaskHandle[Any]]:
        keys = self.keys(call.queue)
        if call.task_ids is not None:
            due = await self.scripts.schedule(
                keys=keys, task_ids=call.task_ids, payloads=call.payloads,
                delay_ms=plan.delay_ms, limit=plan.limit)
            if self.min_replicas:
                await self._replicated(keys, len(call.payloads))
            return self._scheduled(call, due)
        answer = await self.scripts.enqueue(keys=keys, payloads=call.payloads, limit=plan.limit)
        if self.min_replicas:
            await self._replicated(keys, len(call.payloads))
        return self._enqueued(call, *answer)

    async def _replicated(self, keys: QueueKeys, count: int) -> None:
        """Raise NotReplicated unless ``min_replicas`` replicas have what was sent."""
        await durability.confirm(self.lane, keys.stream, self.min_replicas,
                                 self.replicas_timeout_ms, f"{count} tasks of queue {keys.queue!r}",
                                 aof=self.wait_aof)

    def _scheduled(self, call: batching.Call, due: list[int] | int) -> list[TaskHandle[Any]]:
        """Handles of a schedule script's answer: due times, or the backlog that refused it."""
        if isinstance(due, int):
            raise BacklogFull(call.queue, due, self.max_backlog)
        return [self._handle(t, m, d)
                for t, m, d in zip(call.task_ids or (), call.messages, due, strict=True)]

    def _enqueued(self, call: batching.Call, entries: list[str] | None,
                  length: int) -> list[TaskHandle[Any]]:
        """Handles of an enqueue script's answer: entry ids, or None when the backlog refused
        it; ``length`` (the stream's, or -1 when unchecked) feeds the backlog gauge."""
        if entries is None:
            raise BacklogFull(call.queue, length, self.max_backlog)
        if length >= 0:
            self._gauge.saw(call.queue, length, time.monotonic())
        else:
            self._gauge.added(call.queue, len(entries))
        registry, prefix = self.registry, call.queue + ":"  # (ids.task_id, inlined)
        return [TaskHandle(prefix + e, self, registry.get(m.task))
                for e, m in zip(entries, call.messages, strict=True)]

    # -- enqueue with options (unique keys, run-at): taskq/lua/enqueue_with.lua --------------

    async def _mixed(self, msgs: Sequence[Message], delay_ms: int) -> list[TaskHandle[Any]]:
        """A batch with some routed messages: those through the options script, the others as
        usual; handles in the order of ``msgs``."""
        routed = [i for i, m in enumerate(msgs) if options.routed(m.options)]
        plain = [m for m in msgs if not options.routed(m.options)]
        sent = await self._send_with([msgs[i] for i in routed], delay_ms)
        rest = await self.enqueue_many(plain, delay=delay_ms / 1000) if plain else []
        return _merge(len(msgs), routed, sent, rest)

    def _mixed_sync(self, msgs: Sequence[Message], delay_ms: int) -> list[TaskHandle[Any]]:
        routed = [i for i, m in enumerate(msgs) if options.routed(m.options)]
        plain = [m for m in msgs if not options.routed(m.options)]
        client, scripts = self._sync_client()
        groups = self._with_items([msgs[i] for i in routed], delay_ms)
        new = {q for q, _, _ in groups} - self._known_queues
        if new:
            client.sadd(queues_key(self.prefix), *new)
            self._known_queues |= new
        sent: list[TaskHandle[Any]] = []
        for queue, items, batch in groups:
            r = scripts.enqueue_with(keys=self.keys(queue), items=items, limit=self.max_backlog)
            sent += self._with_handles(queue, batch, r)
        if self.min_replicas and groups:  # (one thread's blocking client: one connection)
            durability.confirm_sync(client, [self.keys(q).stream for q, _, _ in groups],
                                    self.min_replicas, self.replicas_timeout_ms,
                                    f"{len(sent)} tasks", aof=self.wait_aof)
        sent = _in_order([msgs[i] for i in routed], [m for _, _, b in groups for m in b], sent)
        rest = self._enqueue_many_sync(plain, delay_ms / 1000) if plain else []
        return _merge(len(msgs), routed, sent, rest)

    async def _send_with(self, msgs: Sequence[Message], delay_ms: int) -> list[TaskHandle[Any]]:
        groups = self._with_items(msgs, delay_ms)
        new = {q for q, _, _ in groups} - self._known_queues
        if new:
            await self.redis.sadd(queues_key(self.prefix), *new)  # type: ignore[misc]
            self._known_queues |= new
        handles: list[TaskHandle[Any]] = []
        for queue, items, batch in groups:
            r = await self.scripts.enqueue_with(keys=self.keys(queue), items=items,
                                                limit=self.max_backlog)
            if self.min_replicas:
                await self._replicated(self.keys(queue), len(batch))
            handles += self._with_handles(queue, batch, r)
        return _in_order(msgs, [m for _, _, batch in groups for m in batch], handles)

    def _with_items(self, msgs: Sequence[Message],
                    delay_ms: int) -> list[tuple[str, list[SendItem], list[Message]]]:
        """Per queue, in chunks: the script items of ``msgs`` (encoded, size-checked; a
        delayed one gets its task id now)."""
        by_queue: dict[str, list[tuple[SendItem, Message]]] = {}
        limit = self.max_payload_bytes
        for m in msgs:
            queue = m.queue or self._queue_of(m.task)
            opts = m.options
            due = options.due(opts, delay_ms)
            task_id = ids.new_scheduled_id(queue) if due else ""
            try:
                payload = codec.encode(m.with_attempts(m.attempts, task_id) if due else m)
            except DecodeError:
                _check_arguments(m)
                raise
            if len(payload) > limit:
                raise PayloadTooLarge(len(payload), limit)
            item = SendItem(payload, opts.key if opts else None, task_id, due,
                            opts.fingerprint if opts else "")
            by_queue.setdefault(queue, []).append((item, m))
        out = []
        for queue, pairs in by_queue.items():
            for i in range(0, len(pairs), batching.CHUNK):
                chunk = pairs[i : i + batching.CHUNK]
                out.append((queue, [p for p, _ in chunk], [m for _, m in chunk]))
        return out

    def _with_handles(self, queue: str, msgs: list[Message],
                      r: list[Sent] | tuple[int, str] | Reused) -> list[TaskHandle[Any]]:
        if isinstance(r, tuple):
            raise BacklogFull(queue, r[0], self.max_backlog)
        if isinstance(r, Reused):  # an HTTP request's key held for another: nothing added
            raise UniqueKeyReused(r.unique_key, r.task_id)
        handles = []
        for sent, m in zip(r, msgs, strict=True):
            handles.append(TaskHandle(sent.task_id, self, self.registry.get(m.task),
                                      sent.due_ms or None, sent.deduplicated > 0))
        return handles

    def handle(self, task_id: str) -> TaskHandle[Any]:
        """A handle on a task id from elsewhere (an HTTP client, a log line)."""
        ids.split(task_id)
        return TaskHandle(task_id, self)

    def sync_handle(self, task_id: str) -> SyncTaskHandle[Any]:
        """:meth:`handle` for synchronous code: status, result and cancel that block."""
        return self.handle(task_id).sync()

    # -- status, wait, cancel ---------------------------------------------------------------

    async def status(self, task_id: str) -> TaskRecord:
        """Where the task is now (see :mod:`taskq.state`). Raises TaskNotFound for unknown or
        expired ids."""
        try:
            queue, _ = ids.split(task_id)
        except ValueError:
            raise TaskNotFound(task_id) from None
        return await state.status(self.redis, self.keys(queue), task_id)

    async def wait(self, task_id: str, timeout: float | None = None) -> TaskRecord:
        """Wait until the task ends (succeeded, dead or cancelled) and return its record."""
        queue, _ = ids.split(task_id)
        channel = self.keys(queue).events
        ended = asyncio.Event()

        def listener(event_id: str, event: list[Any]) -> None:
            if event_id == task_id and len(event) > 1 and event[1] in TERMINAL_NAMES:
                ended.set()

        hub = self.events
        await hub.subscribe(channel, listener)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                record = await self._status_through_failover(task_id, deadline)
                if record.terminal:
                    return record
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise ResultTimeout(f"task {task_id} has not ended after {timeout} s")
                # The event wakes us at once; the bounded wait re-checks in case the
                # subscription dropped an event while reconnecting.
                step = RECHECK_S if remaining is None else min(RECHECK_S, remaining)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), step)
        finally:
            hub.unsubscribe(channel, listener)

    async def _status_through_failover(self, task_id: str,
                                       deadline: float | None) -> TaskRecord:
        """:meth:`status`; on a Cluster whose primary of the task's slot is down, asked again
        until its replica is promoted (until ``deadline``, or for ``FAILOVER_S`` without one)."""
        give_up = deadline if deadline is not None else time.monotonic() + cluster.FAILOVER_S
        delay = 0.1
        while True:
            try:
                return await self.status(task_id)
            except (RedisUnavailable, RedisTimeout):
                if not cluster.is_cluster(self.redis) or time.monotonic() + delay > give_up:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def cancel(self, task_id: str) -> str:
        """Cancel a task: 'delayed' or 'queued' (removed before it ran), 'running' (the worker
        cancels it; a sync task's result is discarded), or 'unknown' (ended or never was)."""
        queue, _ = ids.split(task_id)
        keys = self.keys(queue)
        now = int(time.time() * 1000)
        record = encode_record(TaskStatus.CANCELLED, finished_ms=now,
                               error="cancelled before it ran")
        filled: tuple[bytes, bytes] | None = None
        # The record keeps what the task was (name, arguments, ...): made from its message,
        # read first; the script stores it only if it removes that very message.
        body = await state.waiting_message(self.redis, keys, task_id)
        if body is not None:
            try:
                msg = codec.decode(body)
            except DecodeError:
                msg = None
            if msg is not None:
                filled = (encode_record(
                    TaskStatus.CANCELLED, task=msg.task, args=msg.args, kwargs=msg.kwargs,
                    attempts=msg.attempts, enqueued_ms=msg.enqueued_ms, finished_ms=now,
                    error="cancelled before it ran"), body)
        return await self.scripts.cancel(keys=keys, task_id=task_id, record=record,
                                         ttl_ms=self.result_ttl_ms, filled=filled)

    async def ensure_groups(self, queues: Iterable[str]) -> None:
        """Create the consumer group of each queue at id 0 (entries already there count)."""
        for q in queues:
            try:
                await self.redis.xgroup_create(self.keys(q).stream, GROUP, id="0", mkstream=True)
            except RedisCommandError as exc:  # BUSYGROUP: it exists (OOM, NOPERM: raised)
                if "BUSYGROUP" not in str(exc):
                    raise


TERMINAL_NAMES = frozenset(str(s) for s in (TaskStatus.SUCCEEDED, TaskStatus.DEAD,
                                            TaskStatus.CANCELLED, TaskStatus.EXPIRED))


def _running_in(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` is the event loop running in this thread."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _check_arguments(msg: Message) -> None:
    """Raise TaskValidationError naming the arguments of ``msg`` that msgpack cannot hold (a
    lone surrogate, an int beyond 64 bits, too deep a nesting), if any; after encode failed."""
    try:
        codec.encode(msg)
    except DecodeError:
        errors = codec.argument_errors(msg)
        if errors:
            raise TaskValidationError(msg.task, errors) from None


def _in_order(msgs: Sequence[Message], sent: Sequence[Message],
              handles: Sequence[TaskHandle[Any]]) -> list[TaskHandle[Any]]:
    """``handles`` (one per message of ``sent``: ``msgs`` grouped by queue) in the order of
    ``msgs``, as the caller gave them. A message object given twice keeps its two places."""
    places: dict[int, deque[int]] = {}
    for i, m in enumerate(msgs):
        places.setdefault(id(m), deque()).append(i)
    out: list[TaskHandle[Any] | None] = [None] * len(msgs)
    for m, h in zip(sent, handles, strict=True):
        out[places[id(m)].popleft()] = h
    return [h for h in out if h is not None]


def _merge(n: int, routed: list[int], sent: list[TaskHandle[Any]],
           rest: list[TaskHandle[Any]]) -> list[TaskHandle[Any]]:
    """Handles in input order: ``sent`` at the ``routed`` indices, ``rest`` elsewhere."""
    out: list[TaskHandle[Any] | None] = [None] * n
    for i, h in zip(routed, sent, strict=True):
        out[i] = h
    it = iter(rest)
    return [h if h is not None else next(it) for h in out]


def _messages(messages: Iterable[Message]) -> Sequence[Message]:
    """``messages`` as a sequence, each checked to be a Message (NotAMessage, a TypeError,
    names what was given instead: a plain function, a task itself...)."""
    msgs = messages if isinstance(messages, list | tuple) else list(messages)
    for m in msgs:
        if type(m) is not Message and not isinstance(m, Message):
            raise NotAMessage(m)
    return msgs


def _delay_ms(delay: Seconds | None) -> int:
    delay_s = options.check_delay(seconds(delay))
    return int(delay_s * 1000) if delay_s is not None and delay_s > 0 else 0
