"""Every error taskq raises derives from :class:`TaskqError`.

The tree::

    TaskqError
    ├── ConfigError              bad settings or a Redis server taskq refuses to run on
    │   └── WorkerStartupError   the app's worker lifespan failed to start (exit code 78)
    ├── InvalidQueueName         a queue name that cannot be one (also a ValueError)
    ├── InvalidOption            an enqueue option that cannot be one: a negative delay, a naive
    │                            ``at``/``expires``, an unknown priority, a malformed unique key
    │                            (also a ValueError)
    ├── NotAMessage              ``enqueue_many`` given something that is not ``task.message(...)``
    │                            (also a TypeError)
    ├── ContextMissing           a context task called directly without its TaskContext first
    │                            (also a TypeError)
    ├── TaskNotRegistered        a task name that is not registered (never imported from a payload),
    │                            or a short name that matches several
    ├── TaskValidationError      arguments that do not match the task's signature
    ├── PayloadTooLarge          an encoded message over the configured size limit
    │   └── DeadLetterTruncated  replaying a dead letter that kept only the first bytes of
    │                            its payload (refused as ``payload_too_large``)
    ├── DecodeError              bytes that are not a valid taskq message
    ├── BacklogFull              the queue's backlog limit is reached; enqueue refused
    ├── UniqueKeyReused          an HTTP Idempotency-Key held for a request with other
    │                            arguments or delay (a Python key dedupes by the key alone)
    ├── TaskNotFound             no record, entry or delayed task with that id
    ├── QueueNotFound            an operator call on a queue that was never used nor registered
    ├── DeadLetterNotFound       no dead letter with that id in the queue
    ├── ScheduleNotFound         no periodic schedule of that name in Redis
    ├── TaskFailed               awaiting a result of a task that ended dead or cancelled
    ├── ResultUnavailable        awaiting a result of a task that succeeded while Redis was out
    │                            of memory (its result was not kept)
    ├── ResultTimeout            awaiting a result took longer than asked
    ├── LeaseLost                a worker no longer owns the entry it tries to finish
    ├── WorkflowError            a chain, group or chord that cannot be built (also a ValueError)
    ├── WorkflowNotFound         no workflow with that id (never started, or expired)
    ├── WorkflowFailed           awaiting the result of a workflow that failed or was cancelled
    └── RedisFailure             Redis did not answer or refused a command (taskq.connection)
        ├── RedisUnavailable     cannot reach Redis, or the connection was lost
        │   └── RedisNotReady    Redis refused a command for now, without running it (a
        │                        failover, a moving Cluster slot, too few replicas, loading)
        ├── RedisTimeout         no reply within the socket timeout
        ├── RedisAuthError       Redis refused the credentials (NOAUTH, WRONGPASS)
        ├── RedisPermissionError the ACL user may not run a command or touch a key (NOPERM)
        ├── RedisOutOfMemory     Redis is at maxmemory and refuses writes (OOM)
        ├── NotReplicated        fewer replicas than ``min_replicas`` confirmed a write in time
        └── RedisCommandError    any other error reply, with Redis's own text

:class:`Retry` is not an error: a task raises it to ask for another attempt.

Redis failures are translated once, where taskq talks to Redis (:mod:`taskq.connection`). Each
``Redis*`` error also derives from the redis-py exception it stands for (``RedisUnavailable``
from ``redis.exceptions.ConnectionError``, ``RedisTimeout`` from its ``TimeoutError``, ...), so
code written against redis-py's exceptions keeps catching them, as before.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from redis import exceptions as redis_exceptions


class TaskqError(Exception):
    """Base of every error taskq raises."""


class ConfigError(TaskqError):
    """Settings that cannot work, or a Redis server configured to lose queue data."""


class WorkerStartupError(ConfigError):
    """The worker lifespan (``@tq.worker_lifespan``) raised before its ``yield``."""


class InvalidQueueName(TaskqError, ValueError):
    """A queue name that is empty, or holds spaces or control characters."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name!r} is not a valid queue name (non-empty, printable, no spaces)")
        self.name = name


class InvalidOption(TaskqError, ValueError):
    """An enqueue option that cannot be one (a negative delay, a naive ``at`` or ``expires``,
    an unknown priority level, a malformed unique key, ``delay`` and ``at`` together)."""


class NotAMessage(TaskqError, TypeError):
    """``enqueue_many`` given something other than ``task.message(...)``."""

    def __init__(self, given: object, where: str = "enqueue_many") -> None:
        name = getattr(given, "name", None) or getattr(given, "__qualname__", None)
        if hasattr(given, "message") and name:  # a task itself
            what = f"the task {name!r} itself (pass {name.rpartition('.')[2]}.message(...))"
        elif callable(given) and name:
            what = (f"the plain function {name!r} (register it with @tq.task, then pass "
                    f"{name}.message(...))")
        else:
            what = f"{repr(given)[:60]} (of type {type(given).__name__})"
        super().__init__(f"{where} takes messages built by task.message(...), not {what}")
        self.given = given


class ContextMissing(TaskqError, TypeError):
    """A task whose first parameter is a ``TaskContext`` called directly without one first."""

    def __init__(self, task: str, given: object) -> None:
        short = task.rpartition(".")[2]
        super().__init__(
            f"{short}() takes a TaskContext first when called directly, not "
            f"{repr(given)[:60]}: call {short}(ctx, ...) with a TaskContext (in a test: "
            f"TaskContext(task_id='t', task={task!r}, queue='default', attempt=1, "
            f"max_attempts=1, worker_id='test')), or enqueue it without the context "
            f"({short}.enqueue(...))")
        self.task = task


class TaskNotRegistered(TaskqError):
    """A task name that is not registered with this TaskQueue; with ``matches``, a short name
    that stands for more than one registered task (their full names)."""

    def __init__(self, name: str, matches: Sequence[str] = ()) -> None:
        if matches:
            super().__init__(f"task name {name!r} is ambiguous: it matches "
                             f"{', '.join(repr(m) for m in matches)}; give the full name")
        else:
            super().__init__(f"task {name!r} is not registered")
        self.name = name
        self.matches = tuple(matches)


class TaskValidationError(TaskqError):
    """Arguments that do not match the task's signature."""

    def __init__(self, task: str, errors: list[dict[str, Any]]) -> None:
        fields = "; ".join(_describe(e) for e in errors)
        super().__init__(f"invalid arguments for task {task!r}: {fields}")
        self.task = task
        self.errors = errors


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in error.get("loc", ()))
    msg = str(error.get("msg", ""))
    return f"{loc}: {msg}" if loc else msg


class PayloadTooLarge(TaskqError):
    """An encoded message larger than the configured limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"payload of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class DeadLetterTruncated(PayloadTooLarge):
    """A dead letter refused as ``payload_too_large`` keeps only the first bytes of its
    payload (and its size): it cannot be replayed."""

    def __init__(self, dead_id: str, size: int, kept: int) -> None:
        TaskqError.__init__(
            self, f"dead letter {dead_id} cannot be replayed: its payload of {size} bytes was "
                  f"refused as too large (payload_too_large) and only its first {kept} bytes "
                  "were kept")
        self.dead_id = dead_id
        self.size = size
        self.limit = kept


class DecodeError(TaskqError):
    """Bytes that are not a valid taskq message."""


class BacklogFull(TaskqError):
    """The queue holds as many waiting tasks as its backlog limit allows."""

    def __init__(self, queue: str, backlog: int, limit: int) -> None:
        super().__init__(
            f"queue {queue!r} is full: {backlog} waiting tasks, limit {limit}; retry later"
        )
        self.queue = queue
        self.backlog = backlog
        self.limit = limit


class UniqueKeyReused(TaskqError):
    """An enqueue carrying a request fingerprint (an HTTP ``Idempotency-Key``) found its unique
    key held for a request with other arguments (or delay); ``task_id`` is the holder ('' when
    the call itself gave the key twice). Nothing was enqueued. A Python
    ``with_options(key=...)`` never raises it: it dedupes by the key alone."""

    def __init__(self, key: str, task_id: str) -> None:
        held = (f"is held by task {task_id} sent with other arguments" if task_id else
                "is given twice in one call with different arguments")
        super().__init__(f"unique key {key!r} {held} (nothing was enqueued); the same key "
                         "must mean the same request: use a new key")
        self.key = key
        self.task_id = task_id


class TaskNotFound(TaskqError):
    """No task with that id (never enqueued, or its record expired)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task with id {task_id!r}")
        self.task_id = task_id


KNOWN_SHOWN = 12
"""Queue names a QueueNotFound message lists at most."""


class QueueNotFound(TaskqError):
    """No queue of that name has ever been used (nor is one registered)."""

    def __init__(self, name: str, known: Sequence[str] | None = None) -> None:
        """``known``: the queues there are, listed in the message with the closest to
        ``name`` (a typo's likely meaning)."""
        names = list(known or ())
        close = difflib.get_close_matches(name, names, n=1)
        text = f"no queue named {name!r}"
        if known is not None:
            shown = ", ".join(names[:KNOWN_SHOWN]) or "none"
            if len(names) > KNOWN_SHOWN:
                shown += f", … ({len(names) - KNOWN_SHOWN} more)"
            text += f" (known: {shown})"
        if close:
            text += f"; did you mean {close[0]!r}?"
        super().__init__(text)
        self.name = name
        self.known = tuple(names)
        self.suggestion = close[0] if close else None


class DeadLetterNotFound(TaskqError):
    """No dead letter with that id in the queue."""

    def __init__(self, queue: str, dead_id: str) -> None:
        super().__init__(f"no dead letter {dead_id!r} in queue {queue!r}")
        self.queue = queue
        self.dead_id = dead_id


class ScheduleNotFound(TaskqError):
    """No periodic schedule of that name is stored in Redis (none synced by a worker)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule named {name!r}")
        self.name = name


class TaskFailed(TaskqError):
    """The task ended without a result (dead-lettered or cancelled)."""

    def __init__(self, task_id: str, status: str, error: str | None) -> None:
        super().__init__(f"task {task_id} ended {status}: {error or 'no error recorded'}")
        self.task_id = task_id
        self.status = status
        self.error = error


class ResultUnavailable(TaskqError):
    """The task succeeded, but its result was not kept: it ended while Redis was out of memory
    (maxmemory), when a finished task's record keeps only its status."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} succeeded but its result was not kept: Redis was out "
                         "of memory when it finished")
        self.task_id = task_id


class ResultTimeout(TaskqError):
    """Waiting for a result took longer than the timeout."""


class LeaseLost(TaskqError):
    """The worker no longer owns the entry (another consumer reclaimed it)."""


class RedisFailure(TaskqError):
    """Redis did not answer, or refused a command. Raised by :mod:`taskq.connection` only."""


class RedisUnavailable(RedisFailure, redis_exceptions.ConnectionError):
    """Redis cannot be reached or the connection was lost: the command may or may not have run."""


class RedisNotReady(RedisUnavailable):
    """Redis refused a command without running it, for a state that passes: a replica that a
    failover demoted (READONLY; UNBLOCKED for a blocked read it woke), a Cluster slot that
    moved or is failing over (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, MASTERDOWN), too few replicas
    for a write (NOREPLICAS), a dataset still loading (LOADING). ``code`` is Redis's error
    code. Retrying later is right; it never means that consumer groups or leases are gone."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class RedisTimeout(RedisFailure, redis_exceptions.TimeoutError):
    """No reply within the socket timeout: the command may or may not have run."""


class RedisAuthError(RedisFailure, redis_exceptions.AuthenticationError):
    """Redis refused the credentials: none given (NOAUTH) or a wrong user or password
    (WRONGPASS)."""


class RedisPermissionError(RedisFailure, redis_exceptions.NoPermissionError):
    """The Redis (ACL) user may not run a command or touch a key (NOPERM). ``denied`` names
    what was refused (the command and its keys), without where Redis is."""

    def __init__(self, message: str, denied: str = "") -> None:
        super().__init__(message)
        self.denied = denied or message


class RedisOutOfMemory(RedisFailure, redis_exceptions.OutOfMemoryError):
    """Redis is at its maxmemory and refuses writes (OOM); with noeviction nothing is lost."""


class NotReplicated(RedisFailure):
    """A write the master accepted was confirmed by fewer replicas than ``min_replicas``
    within the timeout (WAIT): it is there, but a failover may lose it. Retrying may run the
    task twice (see :mod:`taskq.durability`)."""

    def __init__(self, what: str, replicas: int, wanted: int, timeout_ms: int) -> None:
        super().__init__(f"{what}: only {replicas} of the {wanted} replicas asked for "
                         f"(min_replicas) confirmed it within {timeout_ms} ms; the master has "
                         "it, but a failover may lose it")
        self.replicas = replicas
        self.wanted = wanted


class RedisCommandError(RedisFailure, redis_exceptions.ResponseError):
    """Any other error reply (WRONGTYPE, NOGROUP, BUSYGROUP, ...), with Redis's own text."""


class Retry(Exception):
    """Raised by a task to ask for another attempt, optionally after ``delay`` seconds."""

    def __init__(self, delay: float | None = None, reason: str = "") -> None:
        super().__init__(reason or "retry requested")
        self.delay = delay


class WorkflowError(TaskqError, ValueError):
    """A chain, group or chord that cannot be built (an empty group, a step that needs an input
    no previous step gives, a callback that is not a single task, ...)."""


class WorkflowNotFound(TaskqError):
    """No workflow with that id (never started, or expired after it ended)."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"no workflow with id {workflow_id!r}")
        self.workflow_id = workflow_id


class WorkflowFailed(TaskqError):
    """Awaiting the result of a workflow that failed (a step ended dead) or was cancelled;
    ``status`` is its :class:`~taskq.workflow.WorkflowStatus`."""

    def __init__(self, workflow_id: str, status: Any) -> None:
        state = getattr(status, "status", "?")
        super().__init__(f"workflow {workflow_id} {state}")
        self.workflow_id = workflow_id
        self.status = status
