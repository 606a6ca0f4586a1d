"""Connecting to Redis, and translating its failures into taskq errors: once, here.

The clients made here (:func:`connect`, :func:`connect_sync`) and the lanes
(:mod:`taskq.lane`) raise only :class:`~taskq.errors.RedisFailure` errors for a Redis that
does not answer or refuses a command: every layer above (the queue, the worker, the admin
reads, the CLI, the HTTP API) sees taskq errors and never parses Redis's error text. The
translation runs only when a command fails: a ``try`` around the call costs nothing otherwise.
``NOSCRIPT`` is left as it is: the script wrappers load the script and call it again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline, PubSub
from redis.asyncio.connection import SSLConnection
from redis.asyncio.sentinel import MasterNotFoundError
from redis.connection import SSLConnection as SyncSSLConnection
from redis.exceptions import (
    AskError,
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    ClusterDownError,
    DataError,
    InvalidResponse,
    LockError,
    MasterDownError,
    MovedError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
    WatchError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.sentinel import MasterNotFoundError as SyncMasterNotFoundError

from taskq import memory, urls
from taskq.errors import (
    ConfigError,
    RedisAuthError,
    RedisCommandError,
    RedisFailure,
    RedisNotReady,
    RedisOutOfMemory,
    RedisPermissionError,
    RedisTimeout,
    RedisUnavailable,
)

log = logging.getLogger(__name__)

REDIS_ERRORS: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
"""Connection-level failures: the command may or may not have run (``RedisUnavailable``,
``RedisAuthError`` and ``RedisTimeout`` among them, and the raw ones of a client not made here)."""

_RAISED = (RedisError, OSError, RedisClusterException)  # what a Redis call may raise that is
# translated (RedisClusterException: a Cluster that cannot be discovered, not a RedisError)
_KEYLESS = frozenset({"PING", "INFO", "SCRIPT", "CLIENT", "TIME", "CONFIG", "ACL", "HELLO",
                      "AUTH", "SELECT", "COMMAND", "FUNCTION", "PUBLISH", "SUBSCRIBE",
                      "SPUBLISH", "SSUBSCRIBE"})
_SCRIPT_CALLS = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})


def redact_url(url: str) -> str:
    """``url`` with its passwords replaced by ``***`` (never print secrets)."""
    return urls.redact(url)


def describe(kwargs: Mapping[str, Any], *, tls: bool = False) -> str:
    """Where a client's connections go, as a URL without its password (``connection_kwargs``
    of its pool)."""
    user = kwargs.get("username") or ""
    auth = f"{user}:***@" if kwargs.get("password") else (f"{user}@" if user else "")
    db = kwargs.get("db", 0)
    if kwargs.get("path"):
        return f"unix://{auth}{kwargs['path']}?db={db}"
    scheme = "rediss" if tls else "redis"
    return f"{scheme}://{auth}{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"


def _where(pool: Any) -> str:
    service = getattr(pool, "service_name", None)
    if service is not None:  # redis-py's Sentinel pool (its connections find the master)
        return f"the master of Sentinel service {service!r}"
    tls = issubclass(pool.connection_class, SSLConnection | SyncSSLConnection)
    return describe(pool.connection_kwargs, tls=tls)


def raise_translated(exc: BaseException, *, pool: Any, command: Sequence[Any] = ()) -> NoReturn:
    """Raise :func:`translate`'s error for ``exc`` (from ``exc``), or ``exc`` itself."""
    error = translate(exc, where=_where(pool), command=command)
    if error is exc:
        raise exc
    raise error from exc


def translate(exc: BaseException, *, where: str, command: Sequence[Any] = ()) -> BaseException:
    """The taskq error for ``exc``, raised by ``command`` on the Redis at ``where``; ``exc``
    itself when it is a taskq error already, a ``NOSCRIPT`` or not a Redis failure."""
    if isinstance(exc, RedisFailure | NoScriptError) or not isinstance(exc, _RAISED):
        return exc
    if isinstance(exc, MasterNotFoundError | SyncMasterNotFoundError):  # a ConnectionError
        return RedisUnavailable(f"cannot reach Redis at {where}: {sentinel_detail(exc)}")
    if isinstance(exc, RedisClusterException):  # no node of the Cluster could be used
        return RedisUnavailable(f"cannot reach Redis Cluster at {where}: {_detail(exc)}")
    if isinstance(exc, AuthenticationError | AuthorizationError):
        return RedisAuthError(f"Redis at {where} refused the credentials: {_detail(exc)}")
    if isinstance(exc, RedisTimeoutError | TimeoutError):  # (TimeoutError is an OSError)
        return RedisTimeout(f"no reply from Redis at {where} in time: {_detail(exc)}")
    if isinstance(exc, RedisConnectionError | OSError):
        return RedisUnavailable(f"cannot reach Redis at {where}: {_detail(exc)}")
    if isinstance(exc, InvalidResponse):  # something answers there, but not in Redis's protocol
        return RedisUnavailable(f"cannot reach Redis at {where}: the server there does not "
                                f"answer as Redis does (is it a Redis server?): {_detail(exc)}")
    if isinstance(exc, DataError | WatchError | LockError):
        return exc  # a wrong call, or a signal for the caller: not a Redis failure
    if not isinstance(exc, ResponseError):  # any other redis-py error
        return RedisCommandError(f"{type(exc).__name__} from Redis at {where}: {_detail(exc)}")
    text = str(exc)
    code = _NOT_READY_CLASSES.get(type(exc)) or text.partition(" ")[0]
    if code == "NOSCRIPT":
        return exc
    if code in NOT_READY:
        return RedisNotReady(f"Redis at {where} refused {_command(command)} for now: "
                             f"{NOT_READY[code]} ({code} {text.removeprefix(code).strip()})",
                             code=code)
    if code in ("NOAUTH", "WRONGPASS"):
        return RedisAuthError(f"Redis at {where} refused the credentials: {text}")
    if isinstance(exc, NoPermissionError) or code == "NOPERM" or _script_acl(text):
        return RedisPermissionError(
            f"Redis at {where} refused {_command(command)} to its ACL user (NOPERM; grant the "
            f"command and keys in the user's ACL): {text}",
            denied=f"{_command(command)}: {text}")
    if isinstance(exc, OutOfMemoryError) or code == "OOM":
        return RedisOutOfMemory(
            f"Redis at {where} is out of memory (maxmemory reached) and refuses writes: {text}")
    return RedisCommandError(text)


NOT_READY = {
    "READONLY": "it is a replica now (a failover demoted it); the master is looked up again",
    "UNBLOCKED": "a blocked read was woken because the node became a replica (a failover); "
                 "the master is looked up again",
    "NOREPLICAS": "fewer replicas are connected than its min-replicas-to-write",
    "MOVED": "the slot is served by another Cluster node now",
    "ASK": "the slot is moving to another Cluster node",
    "TRYAGAIN": "the slot is moving to another Cluster node",
    "CLUSTERDOWN": "the Cluster is down or failing over",
    "MASTERDOWN": "the replica lost its master",
    "LOADING": "it is loading its dataset",
}
"""Error codes of a command refused for now, not run (:class:`RedisNotReady`)."""

_NOT_READY_CLASSES: dict[type[Exception], str] = {  # redis-py's classes (the code stripped)
    ReadOnlyError: "READONLY", MovedError: "MOVED", AskError: "ASK",
    TryAgainError: "TRYAGAIN", ClusterDownError: "CLUSTERDOWN",
    MasterDownError: "MASTERDOWN", BusyLoadingError: "LOADING",
}

FATAL = (RedisAuthError, RedisPermissionError)
"""Refusals that retrying cannot fix: the credentials or the ACL user must change."""


def fatal_config_error(exc: BaseException) -> ConfigError | None:
    """A :class:`ConfigError` in one line for a refusal that retrying cannot fix (a wrong
    password, an ACL user lacking a command or the keys); None for anything else."""
    if isinstance(exc, RedisAuthError):
        return ConfigError(f"Redis authentication failed: {exc}")
    if isinstance(exc, RedisPermissionError):
        return ConfigError(f"Redis permission denied (NOPERM): {exc}")
    return None


_ANGLED = re.compile(r"<[^<>]*>")
_SECRET = re.compile(r"(password|passwd|pass|auth)=[^,)\s>]*", re.IGNORECASE)


def sentinel_detail(exc: BaseException) -> str:
    """MasterNotFoundError's text in one line, without the reprs of the Sentinel clients that
    redis-py puts in it (they show the Sentinels' password): the service, then why each
    Sentinel failed (``AuthenticationError(...)``, a TLS verify failure, ...), if it did."""
    text = str(exc)
    while True:  # the reprs nest: <Redis(<ConnectionPool(<Connection(...)>)>)>
        shorter = _ANGLED.sub("", text)
        if shorter == text:
            break
        text = shorter
    text = _SECRET.sub(r"\1=***", text).replace("  ", " ")
    head, _, causes = text.partition(" : ")
    reasons = sorted({c.strip(" -,") for c in causes.split(", ") if c.strip(" -,")})
    hint = ("the Sentinels refused the credentials (check sentinel_password)"
            if "Authentication" in causes or "WRONGPASS" in causes or "NOAUTH" in causes
            else "no Sentinel answered for it" if reasons else
            "the Sentinels do not know it, or see it down")
    return f"{head}: {hint}" + (f" ({'; '.join(reasons)})" if reasons else "")


def _detail(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _script_acl(text: str) -> bool:
    """An ACL refusal inside a script (Redis 7.0 words it without NOPERM)."""
    return ("user executing the script can't" in text or "ACL failure in script" in text
            or "no permissions to" in text)


def _command(command: Sequence[Any]) -> str:
    """``XADD on 'key'``: the command and the keys it names, for a permission error."""
    if not command:
        return "a command"
    name = _text(command[0]).upper()
    if name in _KEYLESS:
        return " ".join(_text(c).upper() for c in command[:2])
    if name in _SCRIPT_CALLS and len(command) > 2:
        keys = command[3:3 + int(command[2])]
        name = "a script"
    elif name in ("XREADGROUP", "XREAD"):
        words = [_text(c).upper() for c in command]
        rest = command[words.index("STREAMS") + 1:] if "STREAMS" in words else ()
        keys = rest[:len(rest) // 2]
    else:
        keys = command[1:2]
    shown = ", ".join(repr(_text(k)) for k in keys[:4]) + (", ..." if len(keys) > 4 else "")
    return f"{name} on {shown}" if shown else name


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class _Pipeline(Pipeline):
    """A pipeline whose ``execute`` raises taskq errors."""

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error)
        except _RAISED as exc:
            raise_translated(exc, pool=self.connection_pool)


class _PubSub(PubSub):
    """A subscription whose commands (subscribe, unsubscribe, ...) raise taskq errors."""

    async def execute_command(self, *args: Any) -> None:
        try:
            await super().execute_command(*args)
        except _RAISED as exc:
            raise_translated(exc, pool=self.connection_pool, command=args)


class Client(Redis):
    """redis-py's asyncio client, raising taskq errors (see the module's docstring).

    Its pipelines and subscriptions are redis-py's, made by redis-py (their constructors differ
    between versions), with the class swapped for one that only adds the translation.
    """

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except _RAISED as exc:
            raise_translated(exc, pool=self.connection_pool, command=args)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = super().pipeline(transaction, shard_hint)
        pipe.__class__ = _Pipeline
        return pipe

    def pubsub(self, **kwargs: Any) -> PubSub:
        pubsub = super().pubsub(**kwargs)
        pubsub.__class__ = _PubSub
        return pubsub


class SyncClient(SyncRedis):
    """redis-py's blocking client, raising taskq errors (``enqueue_sync``)."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except _RAISED as exc:
            raise_translated(exc, pool=self.connection_pool, command=args)


def server_url(url: str) -> str:
    """The Redis URL to connect to for ``url``: itself, or for a ``memory://`` URL the one of
    its in-process stand-in (:mod:`taskq.memory`, started on first use)."""
    return memory.redis_url(url) if memory.is_memory_url(url) else url


def check_url(url: str) -> str:
    """``url`` when it names Redis unambiguously (every form of :mod:`taskq.urls`); a
    :class:`ConfigError` in one line otherwise (``redis://:6546/0`` has no host,
    ``redis://host/abc`` no database number, ``redis+sentinel://h:26379`` no service)."""
    urls.parse(url)
    return url


def socket_options(url: str, socket_timeout_s: float) -> dict[str, Any]:
    """The connection options of a client: TCP keepalive only where there is TCP."""
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": min(socket_timeout_s, 3.0),
        "health_check_interval": 10,
    }
    if urlsplit(url).scheme != "unix":  # a Unix socket connection takes no keepalive
        options["socket_keepalive"] = True
    return options


def connect(url: str, *, socket_timeout_s: float = 5.0) -> Redis:
    """An asyncio client of one Redis (``redis://``, ``rediss://``, ``unix://``,
    ``memory://``) with the timeouts a queue needs (dead connections are noticed). Raises
    :class:`ConfigError` for a malformed URL (:func:`check_url`). Every URL, Cluster and
    Sentinel ones too: :func:`taskq.clients.connect`."""
    urls.check_files(urls.parse(check_url(url)))
    client: Redis = Client.from_url(
        server_url(url), retry_on_timeout=False,
        **socket_options(url, socket_timeout_s))
    return client


def connect_sync(url: str, *, socket_timeout_s: float = 5.0) -> SyncRedis:
    """A blocking client with the same timeouts (the producer's ``enqueue_sync``)."""
    urls.check_files(urls.parse(check_url(url)))
    client: SyncRedis = SyncClient.from_url(
        server_url(url), **socket_options(url, socket_timeout_s))
    return client


async def check_memory(client: Redis) -> None:
    """Raise :class:`RedisOutOfMemory` when Redis is at its ``maxmemory`` (it then refuses new
    tasks); a Redis that refuses ``INFO`` (a restricted ACL user) is not checked."""
    try:
        info = await client.info("memory")
    except (RedisPermissionError, RedisCommandError):
        return
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    if limit and used >= limit:
        raise RedisOutOfMemory(
            f"Redis is out of memory: {used} bytes used of maxmemory {limit}; new tasks are "
            "refused until workers drain the queues")


async def check_permissions(client_scripts: Any, keys: Sequence[Any]) -> None:
    """Raise :class:`RedisPermissionError` naming the first command the ACL user may not run
    on a queue's keys (``client_scripts``: :class:`taskq.scripts.Scripts`; ``keys``: the
    queues' :class:`taskq.keys.QueueKeys`)."""
    for k in keys:
        denied = await client_scripts.probe(keys=k)
        if denied:
            raise RedisPermissionError(
                f"the Redis ACL user may not run {denied} (NOPERM; grant it in the user's "
                "ACL)", denied=denied)


async def check_server(client: Redis) -> None:
    """Refuse a Redis that may evict queue keys or is too old for taskq.

    ``maxmemory-policy`` ``allkeys-*`` lets Redis delete streams of accepted tasks under memory
    pressure: a ConfigError. ``volatile-*`` can evict only keys with a TTL (task records): a
    loud warning. Reads ``INFO`` only (a least-privilege ACL user needs ``+info``, not CONFIG);
    a server that refuses INFO gets a warning.
    """
    primaries = getattr(client, "get_primaries", None)  # a Cluster: every primary is checked
    if primaries is not None:
        try:
            await client.initialize()
        except _RAISED as exc:  # (a dead seed, a wrong CA, a node not in a Cluster)
            error = translate(exc, where=redact_url(getattr(client, "taskq_url", "") or "?"))
            raise error from exc
        for node in primaries():
            _check_info(await client.info(target_nodes=node), f"Redis node {node.name}")
        return
    try:
        info = await client.info()
    except ResponseError:  # a stand-in or a restricted managed service
        log.warning("cannot read INFO: make sure Redis is 6.2+ with maxmemory-policy noeviction, "
                    "or Redis may delete queued tasks under memory pressure")
        return
    _check_info(info, "Redis")


def _check_info(info: Mapping[str, Any], name: str) -> None:
    """:func:`check_server`'s checks on one server's ``INFO`` (``name``: how to call it)."""
    version = tuple(int(p) for p in str(info.get("redis_version", "0")).split(".")[:2])
    if version < (6, 2):
        raise ConfigError(f"{name} {info.get('redis_version')} is too old: taskq needs 6.2+")
    policy = str(info.get("maxmemory_policy", ""))
    if policy.startswith("allkeys"):
        raise ConfigError(
            f"{name} maxmemory-policy is {policy}: it may delete queued tasks. "
            "Set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction)"
        )
    if policy.startswith("volatile"):
        log.warning("%s maxmemory-policy is %s: task records (keys with a TTL) may be "
                    "evicted under memory pressure; noeviction is recommended", name, policy)
