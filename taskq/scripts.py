"""The Lua contract: one script file per atomic operation, called only through the wrappers here.

The wrappers own each script's KEYS/ARGV order: callers name what they mean (a queue's
:class:`~taskq.keys.QueueKeys`, a task id, a :class:`~taskq.records.TaskStatus`) and the
wrapper derives the rest itself: the record bucket from the task id, the events channel and the
completions-per-minute key from the queue's keys, the letters and strings Lua reads. Every key
a script touches is passed in KEYS; all of them belong to one queue's hash tag.

Scripts are registered with ``register_script``: each is called by SHA and reloads itself after
a ``NOSCRIPT`` (a restarted or flushed Redis). ``lua/_lib.lua`` is prepended to every script.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any, Protocol

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.commands.core import AsyncScript, Script
from redis.exceptions import ResponseError

from taskq import cluster, codec, ids, priority
from taskq.codec import WorkflowRef
from taskq.deadletter import DeadEntry
from taskq.errors import DecodeError
from taskq.keys import GROUP, QueueKeys
from taskq.lane import Commands
from taskq.records import BUCKET_MS, TaskStatus

log = logging.getLogger(__name__)

PERIODIC_LOG_CAP = 10_000
"""About how many fires and skips of a queue's periodic schedules its periodic log keeps."""

RATE_SLACK_MS = 100.0
"""How far starts may run ahead of a rate (the throttle script's slack): 100 ms, a promotion's
period, so that what one promotion moves starts together. In any window of W seconds at most
``rate * (W + 0.1) + 1`` attempts start."""

NAMES = (
    "cancel",
    "complete",
    "dead",
    "defer",
    "enqueue",
    "enqueue_with",
    "forget_consumer",
    "periodic_fire",
    "periodic_pause",
    "periodic_sync",
    "probe",
    "promote",
    "purge",
    "reclaim",
    "release",
    "renew",
    "replay",
    "retry",
    "renew_slots",
    "schedule",
    "task_metrics",
    "throttle",
    "unique_release",
    "wake",
    "workflow_cancel",
    "workflow_start",
)

WORKFLOW_PRELUDE = frozenset({"cancel", "complete", "dead", "workflow_cancel", "workflow_start"})
"""Scripts that also get ``lua/_workflow.lua`` (they end workflow steps, or start or cancel
workflows)."""


def events_arg(keys: QueueKeys, sharded: bool) -> str:
    """A queue's events channel as a script takes it: a leading ``!`` asks for SPUBLISH."""
    return "!" + keys.events if sharded else keys.events


@cache
def source(name: str) -> str:
    """The full text of script ``name`` (prelude included)."""
    lua = resources.files("taskq") / "lua"
    prelude = (lua / "_lib.lua").read_text() + "\n"
    if name in WORKFLOW_PRELUDE:
        prelude += (lua / "_workflow.lua").read_text() + "\n"
    return prelude + (lua / f"{name}.lua").read_text()


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bucket(task_id: str) -> int:
    """The record bucket of a task id (its time, see :mod:`taskq.ids`); 0 for a string that
    is no task id (a dead letter written by something else). Inline arithmetic: the complete
    wrapper calls it once per finished task."""
    try:
        start = task_id.rindex(":") + 1
        return int(task_id[start:task_id.index("-", start)]) // BUCKET_MS
    except ValueError:
        return 0


def _bucket_key(keys: QueueKeys, task_id: str) -> str:
    """The record bucket hash of ``task_id`` in ``keys``'s queue (see :mod:`taskq.records`)."""
    return keys.records(_bucket(task_id))


class Completable(Protocol):
    """What the complete script needs of one owned entry (the worker's deliveries have it)."""

    @property
    def entry_id(self) -> str: ...
    @property
    def deliveries(self) -> int: ...
    @property
    def task_id(self) -> str: ...
    @property
    def status(self) -> TaskStatus: ...
    @property
    def record(self) -> bytes: ...
    @property
    def flags(self) -> str: ...
    @property
    def step(self) -> StepEnd | None: ...
    @property
    def slot(self) -> str | None: ...
    @property
    def unique(self) -> tuple[str, int] | None:
        """The task's unique key (as in the envelope) and ms to keep it after success."""


@dataclass(frozen=True, slots=True)
class StepEnd:
    """How a workflow step ended, for the script that finishes it (see
    :mod:`taskq.workflow`): its place in the workflow, and its result (msgpack) when a
    successor may need it."""

    ref: WorkflowRef
    result: bytes = b"\xc0"


def _step_of(answer: list[Any]) -> WorkflowRef | None:
    """The workflow step the cancel script found: its ``{'step', workflow id, index, queue,
    ...}``, or the ``{'payload', message}`` of a Lua without cmsgpack, decoded here."""
    if _s(answer[0]) == "step":
        return WorkflowRef(_s(answer[1]), int(answer[2]), "", tuple(_s(q) for q in answer[3:]))
    try:
        return codec.decode(answer[1]).workflow
    except DecodeError:
        return None


def step_keys(prefix: str, ref: WorkflowRef) -> list[str]:
    """The keys a script ending step ``ref`` needs: the workflow hash, then the stream and the
    entries hash of each workflow queue (all under ``prefix``)."""
    out = [workflow_key(prefix, ref.id)]
    for q in ref.queues:
        k = QueueKeys(prefix, q)
        out += (k.stream, k.entries)
    return out


def workflow_key(prefix: str, workflow_id: str) -> str:
    """The hash of workflow ``workflow_id`` ("<home queue>:<suffix>"), under its home queue's
    hash tag."""
    home, _, suffix = workflow_id.rpartition(":")
    return QueueKeys(prefix, home).workflow(suffix)


@dataclass(frozen=True, slots=True)
class Completion:
    """One owned entry to finish in a batch (a plain :class:`Completable`).

    ``flags``: ``"e"`` drop the task's entries mapping (it had moved), ``"c"`` drop its cancel
    request."""

    entry_id: str
    deliveries: int
    task_id: str
    status: TaskStatus
    record: bytes
    flags: str = ""
    slot: str | None = None  # the concurrency slot set it holds (freed with the ack)
    unique: tuple[str, int] | None = None
    step: StepEnd | None = None


@dataclass(frozen=True, slots=True)
class Throttled:
    """The throttle script's answer: start now, or wait until ``due_ms`` (``why``: "rate" or
    "concurrency"), or the lease was ``lost``."""

    start: bool
    lost: bool
    due_ms: int
    why: str


@dataclass(frozen=True, slots=True)
class KeyHeld:
    """A unique key held by another task: ``holder`` lives (queued, delayed, running or
    retrying), or succeeded and its key is kept (``kept``, unique_for)."""

    holder: str
    kept: bool


@dataclass(frozen=True, slots=True)
class Reclaimed:
    """An entry taken over from a consumer whose lease ran out."""

    entry_id: str
    payload: bytes
    deliveries: int


def _enqueued(r: list[Any]) -> tuple[list[str] | None, int]:
    if int(r[0]) == 0:
        return None, int(r[1])
    return [x.decode() if type(x) is bytes else x for x in r[2:]], int(r[1])


def _schedule_args(task_ids: Sequence[str], payloads: Sequence[bytes], delay_ms: int,
                   limit: int) -> list[Any]:
    args: list[Any] = [limit]
    for task_id, payload in zip(task_ids, payloads, strict=True):
        args += (task_id, payload, delay_ms)
    return args


@dataclass(frozen=True, slots=True)
class Sent:
    """One message's answer from the enqueue-with-options script."""

    task_id: str
    deduplicated: int  # 0 added, 1 its key's task lives, 2 its key is kept after success
    due_ms: int  # 0 when ready now
    fingerprint: str  # stored with the key (a deduplicated answer)


@dataclass(frozen=True, slots=True)
class Reused:
    """The enqueue-with-options script's refusal: ``unique_key`` is held by ``task_id`` (''
    when an earlier message of the same call has it) for other arguments; nothing was added."""

    unique_key: str
    task_id: str


@dataclass(frozen=True, slots=True)
class SendItem:
    """One message for the enqueue-with-options script (see :mod:`taskq.options`)."""

    payload: bytes
    unique_key: str | None  # the full key ("<task>:<key>")
    task_id: str  # '' for a ready message (its entry id names it)
    due: str  # '' ready now, 'd<ms>' in ms, 'a<ms>' at epoch ms (Redis clock)
    fingerprint: str = ""


LANE_KEYS_CACHED = 1024
"""How many queues' lane keys :func:`lane_keys` keeps (bounded: an API that takes queue names
from its callers must not grow it without end)."""


@lru_cache(maxsize=LANE_KEYS_CACHED)
def lane_keys(prefix: str, queue: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The names of every priority lane of ``queue``'s queue (high, normal, low) and their
    stream, delayed set and entries hash each: where the holder of a unique key (held per
    queue, see :meth:`QueueKeys.unique`) is looked for. Cached for the last
    :data:`LANE_KEYS_CACHED` queues."""
    names = priority.lanes(queue)
    flat: list[str] = []
    for name in names:
        k = QueueKeys(prefix, name)
        flat += (k.stream, k.delayed, k.entries)
    return names, tuple(flat)


def _send_args(keys: QueueKeys, items: Sequence[SendItem],
               limit: int) -> tuple[list[str], list[Any]]:
    names, lanes = lane_keys(keys.prefix, keys.queue)
    key_list = [keys.stream, keys.delayed, keys.payloads, keys.entries, *lanes]
    index: dict[str, int] = {}
    args: list[Any] = [limit, keys.queue, *names]
    for item in items:
        k = 0
        if item.unique_key is not None:
            k = index.get(item.unique_key, 0)
            if not k:
                key_list.append(keys.unique(item.unique_key))
                k = index[item.unique_key] = len(key_list)
        args += (k, item.task_id, item.payload, item.due, item.fingerprint)
    return key_list, args


def _sent(r: list[Any], items: Sequence[SendItem],
          n_keys: int) -> list[Sent] | tuple[int, str] | Reused:
    if int(r[0]) == 0:
        return int(r[1]), _s(r[2])
    if int(r[0]) == 2:  # KEYS index: the unique keys come last in KEYS, in first use order
        distinct = list(dict.fromkeys(i.unique_key for i in items if i.unique_key is not None))
        return Reused(distinct[int(r[2]) - (n_keys - len(distinct) + 1)], _s(r[1]))
    return [Sent(_s(r[i]), int(r[i + 1]), int(r[i + 2]), _s(r[i + 3]))
            for i in range(1, len(r), 4)]


def _scheduled(r: list[Any]) -> list[int] | int:
    if int(r[0]) == 0:
        return int(r[1])
    return [int(x) for x in r[1:]]


def _renew_args(consumer: str, entry_ids: Sequence[str]) -> tuple[Any, ...]:
    return (GROUP, consumer, len(entry_ids) + 64, *entry_ids)


def _renew_slots_args(slots: Sequence[tuple[str, str]], lease_ms: int) -> tuple[Any, ...]:
    return (lease_ms, *(t for _, t in slots))


def _unique_lines(keys: QueueKeys, items: Sequence[Completable], key_list: list[str]) -> str:
    """The complete script's unique-key lines (adds the keys to ``key_list``)."""
    lines = []
    for i, c in enumerate(items, 1):
        if c.unique is not None:
            key_list.append(keys.unique(c.unique[0]))
            lines.append(f"{i}\t{len(key_list)}\t{c.unique[1]}")
    return "\n".join(lines)


class PeriodicDefinition(Protocol):
    """What the sync script stores of a periodic schedule (:class:`taskq.periodic.Schedule`)."""

    @property
    def name(self) -> str: ...
    @property
    def digest(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def catch_up(self) -> str: ...
    def info(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Fired:
    """What one firing pass did for one periodic schedule."""

    name: str
    state: str  # ok, paused, full, stale, gone
    last_tick_ms: int
    fired: int
    skipped: int
    last_task_id: str | None


class Scripts:
    """Typed wrappers over the scripts, bound to one asyncio client. With a ``lane`` (see
    :mod:`taskq.lane`) the calls go through it: packed by hiredis, auto-pipelined."""

    def __init__(self, client: Redis, lane: Commands | None = None) -> None:
        self.client = client
        self._lane = lane
        self._s: dict[str, AsyncScript] = {n: client.register_script(source(n)) for n in NAMES}
        # events published sharded (a Cluster of 7.0+ nodes): asked once, at the first use
        self._sharded: bool | None = None if cluster.is_cluster(client) else False

    async def events(self, *, keys: QueueKeys) -> str:
        """The events channel of ``keys``'s queue as a script takes it (see ``publish`` in
        ``lua/_lib.lua``)."""
        sharded = self._sharded
        if sharded is None:
            sharded = self._sharded = await cluster.sharded_events(self.client)
        return events_arg(keys, sharded)

    async def load(self) -> None:
        """Load every script now (readiness checks; later calls then never miss)."""
        for name, script in self._s.items():
            sha = await self.client.script_load(source(name))
            script.sha = sha

    async def call(self, *, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run script ``name`` (one of :data:`NAMES`): for the typed wrappers kept beside
        their concept (:mod:`taskq.workflow.scripts`); callers elsewhere use the wrappers."""
        return await self._call(name, keys, args)

    async def _call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        lane = self._lane
        if lane is None:
            return await self._s[name](keys=list(keys), args=list(args))
        sha = self._s[name].sha
        try:
            return await lane.execute("EVALSHA", sha, len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        # a restarted or flushed Redis: load the script, then call it again
        await lane.execute("SCRIPT", "LOAD", source(name))
        return await lane.execute("EVALSHA", sha, len(keys), *keys, *args)

    # -- producers ---------------------------------------------------------------------------

    async def enqueue(
        self, *, keys: QueueKeys, payloads: Sequence[bytes], limit: int
    ) -> tuple[list[str] | None, int]:
        """Add ready messages unless the stream's backlog would pass ``limit`` (0: none):
        (entry ids, stream length after; -1 when unchecked), or (None, stream length) when
        refused (then nothing was added)."""
        return _enqueued(await self._call("enqueue", (keys.stream,), (limit, *payloads)))

    async def schedule(
        self, *, keys: QueueKeys, task_ids: Sequence[str], payloads: Sequence[bytes],
        delay_ms: int, limit: int,
    ) -> list[int] | int:
        """Delay messages by ``delay_ms`` (Redis clock): their due times in ms, or the delayed
        count when ``limit`` refused them (then nothing was added)."""
        args = _schedule_args(task_ids, payloads, delay_ms, limit)
        return _scheduled(
            await self._call("schedule", (keys.delayed, keys.payloads, keys.stream), args))

    async def enqueue_with(
        self, *, keys: QueueKeys, items: Sequence[SendItem], limit: int
    ) -> list[Sent] | tuple[int, str] | Reused:
        """Enqueue messages with options (unique keys checked and held in the same step):
        one :class:`Sent` per item, or (backlog, 'stream' | 'delayed') when ``limit``
        refused the batch, or :class:`Reused` when a request's key is held for another
        request (then nothing was added)."""
        key_list, args = _send_args(keys, items, limit)
        return _sent(await self._call("enqueue_with", key_list, args), items, len(key_list))

    async def unique_release(self, *, keys: QueueKeys, key: str, task_id: str) -> None:
        """Release unique ``key`` while it holds ``task_id`` (a task cancelled unrun)."""
        await self._call("unique_release", (keys.unique(key),), (task_id,))

    async def probe(self, *, keys: QueueKeys) -> str | None:
        """The first command producing to ``keys``'s queue needs that this ACL user may not
        run (``"the 'xadd' command on '...'"``), or None; nothing is run."""
        r = await self._call("probe", (keys.stream, keys.delayed, keys.payloads), ())
        return _s(r) if r else None

    async def cancel(self, *, keys: QueueKeys, task_id: str, record: bytes, ttl_ms: int,
                     filled: tuple[bytes, bytes] | None = None) -> str:
        """Cancel a task wherever it is: 'delayed' or 'queued' (removed, ``record`` stored),
        'running' (a cancel request for its worker) or 'unknown'. A workflow step removed
        while delayed or queued also ends its workflow as cancelled, in the same script: the
        first call finds that the task is a step (its envelope says of which workflow) and
        does nothing; a second one passes the workflow's keys. The step's place in its
        workflow never changes, so the second call acts on the same workflow; it re-checks
        where the task is. ``filled``: a record made from the task's message (its name,
        arguments, ...) and that message, read just before: stored instead of ``record`` when
        the message the script removes is that one."""
        key_list = [keys.stream, keys.delayed, keys.payloads, keys.entries, keys.cancels,
                    _bucket_key(keys, task_id)]
        args: list[Any] = [GROUP, task_id, ids.implied_entry(task_id) or "", record, ttl_ms,
                           await self.events(keys=keys), *(filled or (b"", b""))]
        r = await self._call("cancel", key_list, args)
        if isinstance(r, list):  # a workflow step (or, in memory://, maybe): call again
            ref = _step_of(r)
            if ref is None:
                r = await self._call("cancel", key_list, [*args, ""])
            else:
                r = await self._call("cancel", [*key_list, *step_keys(keys.prefix, ref)],
                                     [*args, ref.step])
            if isinstance(r, list):  # (never: the second call says what it is)
                return "unknown"
        where, _, unique = _s(r).partition("\t")
        if unique:  # it held a unique key: free it (a key left behind is taken over anyway)
            await self.unique_release(keys=keys, key=unique, task_id=task_id)
        return where

    # -- a worker's owner-checked outcomes -------------------------------------------------

    async def complete(
        self, *, keys: QueueKeys, consumer: str, items: Sequence[Completable], ttl_ms: int,
        now_ms: int, scan: int,
    ) -> list[str]:
        """Finish owned entries (records stored, counted in the minute of ``now_ms``, Redis
        clock); returns the entry ids whose lease was lost (nothing done for those). ``scan``:
        how many of the consumer's pending entries the owner check reads."""
        buckets: dict[int, int] = {}  # bucket -> its index in KEYS[6..]
        add, width = buckets.setdefault, BUCKET_MS
        # The bucket of each task id, parsed inline (this runs once per finished task): the ids
        # of a queue's deliveries are "<queue>:<ms>-..." (the worker's admission checks it).
        at = len(keys.queue) + 1
        try:
            meta = "\n".join(
                f"{c.entry_id}\t{c.deliveries}\t"
                f"{add(int(c.task_id[at:c.task_id.index('-', at)]) // width, len(buckets) + 1)}"
                f"\t{c.task_id}\t{c.status._value_}\t{c.flags}"
                for c in items
            )
        except ValueError:  # an id of another form: the general rule, item by item
            buckets.clear()
            meta = "\n".join(
                f"{c.entry_id}\t{c.deliveries}\t{add(_bucket(c.task_id), len(buckets) + 1)}"
                f"\t{c.task_id}\t{c.status._value_}\t{c.flags}"
                for c in items
            )
        records = keys.records
        key_list = [keys.stream, keys.stats, keys.done_minute(now_ms // 60_000), keys.entries,
                    keys.cancels, *(records(b) for b in buckets)]
        events = keys.events if self._sharded is False else await self.events(keys=keys)
        args = [GROUP, consumer, ttl_ms, events, scan, meta, *(c.record for c in items)]
        if any(c.slot for c in items):  # only tasks with a concurrency limit
            where: dict[str, int] = {}
            for c in items:
                if c.slot and c.slot not in where:
                    key_list.append(c.slot)
                    where[c.slot] = len(key_list)
            args += [where.get(c.slot, 0) if c.slot else 0 for c in items]
        steps = [(i, c.step) for i, c in enumerate(items, 1) if c.flags and c.step is not None]
        unique = any(c.unique is not None for c in items)
        if steps or unique:  # the sections before theirs are there: slots (0: none), steps
            if not any(c.slot for c in items):
                args += [0] * len(items)
            lines = []
            for i, step in steps:
                lines.append(f"{i}\t{len(key_list) + 1}\t{step.ref.step}")
                key_list += step_keys(keys.prefix, step.ref)
            args += ("\n".join(lines), *(step.result for _, step in steps))
            if unique:
                args.append(_unique_lines(keys, items, key_list))
        r = [_s(x) for x in await self._call("complete", key_list, args)]
        if r and r[-1].startswith("lean:"):
            log.warning("Redis is out of memory: %s task records kept only their status "
                        "(no result, no error) so that finishing work frees memory",
                        r.pop()[5:])
        return r

    async def retry(
        self, *, keys: QueueKeys, consumer: str, entry_id: str, deliveries: int, task_id: str,
        payload: bytes, delay_ms: int, record: bytes, ttl_ms: int, slot: str | None = None,
    ) -> int:
        """Ack an owned entry and schedule its next attempt (``payload``) in ``delay_ms`` (<= 0:
        at once), storing ``record`` (status failed): the due time in ms, or 0 when the lease
        was lost. ``slot``: the concurrency slot set the attempt held (freed)."""
        r = await self._call(
            "retry",
            (keys.stream, keys.delayed, keys.payloads, keys.entries, _bucket_key(keys, task_id),
             keys.stats, *((slot,) if slot else ())),
            (GROUP, consumer, entry_id, deliveries, task_id, payload, delay_ms, record, ttl_ms,
             await self.events(keys=keys)),
        )
        return int(r)

    async def dead(
        self, *, keys: QueueKeys, consumer: str, entry_id: str, deliveries: int | None,
        task_id: str, record: bytes, ttl_ms: int, dead_cap: int, letter: DeadEntry,
        unique: str | None = None,
        slot: str | None = None,
        step: WorkflowRef | None = None, failure: bytes = b"",
    ) -> str | None:
        """Move an owned entry to the dead letters (``letter``, the stream capped at
        ``dead_cap``; 0: none), storing ``record``: the dead letter's id, or None when the lease
        was lost. ``deliveries`` None: check the owner only, not the delivery count. ``step``:
        the entry is that workflow step, which fails its workflow (``failure``: the input of
        the failure handler, msgpack), in the same script."""
        flat: list[Any] = []
        for k, v in letter.fields().items():
            flat += (k, v)
        key_list = [keys.stream, keys.dead, keys.entries, _bucket_key(keys, task_id),
                    keys.stats, keys.cancels, *((slot,) if slot else ())]
        if unique is not None:  # released in the same step (before a workflow step's keys)
            key_list.append(keys.unique(unique))
        if step is not None:  # three more ARGV: an odd count after the pairs says so
            flat += (len(key_list) + 1, step.step, failure)
            key_list += step_keys(keys.prefix, step)
        r = await self._call(
            "dead", key_list,
            (GROUP, consumer, entry_id, "" if deliveries is None else deliveries, task_id,
             record, ttl_ms, await self.events(keys=keys), dead_cap, *flat),
        )
        return None if r == 0 else _s(r)

    async def defer(
        self, *, keys: QueueKeys, consumer: str, entry_id: str, deliveries: int, task_id: str,
        payload: bytes, delay_ms: int,
    ) -> int:
        """Ack an owned entry and hold ``payload`` (its task id inside) ``delay_ms`` in the
        delayed set, no attempt used: the due time, or 0 when the lease was lost."""
        r = await self._call(
            "defer", (keys.stream, keys.delayed, keys.payloads, keys.entries, keys.stats),
            (GROUP, consumer, entry_id, deliveries, task_id, payload, delay_ms))
        return int(r)

    async def release(
        self, *, keys: QueueKeys, consumer: str, entry_id: str, deliveries: int, task_id: str,
        payload: bytes, slot: str | None = None,
    ) -> str | None:
        """Hand an owned entry back to the end of the stream (``payload`` carries its task id):
        the new entry id, or None when the lease was lost. ``slot``: as for :meth:`retry`."""
        r = await self._call(
            "release",
            (keys.stream, keys.entries, *((slot,) if slot else ())),
            (GROUP, consumer, entry_id, deliveries, task_id, payload),
        )
        return None if r == 0 else _s(r)

    async def renew(
        self, *, keys: QueueKeys, consumer: str, entry_ids: Sequence[str]
    ) -> list[str]:
        """Renew leases; returns the held entry ids no longer owned."""
        r = await self._call("renew", (keys.stream,), _renew_args(consumer, entry_ids))
        return [_s(x) for x in r]

    async def throttle(
        self, *, keys: QueueKeys, consumer: str, entry_id: str, deliveries: int, task_id: str,
        payload: bytes, rate_key: str | None, interval_ms: float, slots_key: str | None,
        limit: int, lease_ms: int, wait_ms: int,
    ) -> Throttled:
        """Let an owned entry start under its limits (taking a concurrency slot in
        ``slots_key``), or make it wait in the delayed set (``payload``, attempts unchanged);
        see ``lua/throttle.lua``."""
        key_list = [keys.stream, keys.delayed, keys.payloads, keys.entries, keys.stats,
                    keys.reservations]
        if rate_key is not None:
            key_list += (rate_key, rate_key + ":starts")
        if slots_key is not None:
            key_list += (slots_key, keys.waiters(slots_key))
        r = await self._call("throttle", key_list, (
            GROUP, consumer, entry_id, deliveries, task_id, payload,
            repr(interval_ms) if rate_key is not None else 0,
            limit if slots_key is not None else 0, lease_ms, wait_ms,
            repr(RATE_SLACK_MS)))
        code = int(r[0])
        if code == 1:
            return Throttled(True, False, 0, "")
        if code == 0:
            return Throttled(False, False, int(r[1]), _s(r[2]))
        return Throttled(False, True, 0, "")

    async def wake(self, *, keys: QueueKeys, slots_key: str, count: int) -> int:
        """Move up to ``count`` of the lane's tasks waiting for a slot of ``slots_key`` (freed
        just now) from the delayed set to the stream; how many moved (see ``lua/wake.lua``)."""
        return int(await self._call(
            "wake", (keys.waiters(slots_key), keys.delayed, keys.payloads, keys.entries,
                     keys.stream), (count,)))

    async def renew_slots(self, *, slots: Sequence[tuple[str, str]], lease_ms: int) -> int:
        """Push the deadline of each (slot set, task id) a lease from now, while still held
        (all sets of one queue's hash tag)."""
        if not slots:
            return 0
        return int(await self._call("renew_slots", [k for k, _ in slots],
                                    _renew_slots_args(slots, lease_ms)))

    # -- a worker's maintenance --------------------------------------------------------------

    async def reclaim(
        self, *, keys: QueueKeys, consumer: str, min_idle_ms: int, cursor: str, count: int,
        rounds: int, dead_cap: int,
    ) -> tuple[str, list[Reclaimed], int]:
        """Take over up to ``count`` entries idle ``min_idle_ms`` (at most ``rounds`` XAUTOCLAIM
        calls from ``cursor``): (next cursor, entries taken, entries found deleted, which were
        dead-lettered as ``payload_missing``)."""
        r = await self._call(
            "reclaim",
            (keys.stream, keys.dead, keys.stats),
            (GROUP, consumer, min_idle_ms, cursor, count, rounds, keys.queue, dead_cap),
        )
        flat = r[1]
        got = [
            Reclaimed(_s(flat[i]), bytes(flat[i + 1]) if flat[i + 1] else b"", int(flat[i + 2]))
            for i in range(0, len(flat), 3)
        ]
        return _s(r[0]), got, int(r[2])

    async def promote(self, *, keys: QueueKeys, count: int) -> tuple[int, int]:
        """Move up to ``count`` due delayed tasks to the stream: (moved, payloads missing)."""
        r = await self._call(
            "promote",
            (keys.delayed, keys.payloads, keys.entries, keys.stream, keys.stats),
            (count,),
        )
        return int(r[0]), int(r[1])

    async def forget_consumer(self, *, keys: QueueKeys, consumer: str) -> bool:
        """Remove a consumer from the group, only when it holds no pending entry."""
        return bool(await self._call("forget_consumer", (keys.stream,), (GROUP, consumer)))

    async def periodic_sync(
        self, *, keys: QueueKeys, schedules: Sequence[PeriodicDefinition]
    ) -> list[tuple[str, str, int]]:
        """Store ``schedules`` as the queue's periodic schedules (added, changed, the others
        removed): (name, 'added' | 'changed' | 'same' | 'removed', last tick ms) each."""
        args: list[Any] = []
        for s in schedules:
            args += (s.name, s.digest, s.payload, s.info(), str(s.catch_up))
        r = await self._call("periodic_sync", (keys.periodic,), args)
        return [(_s(n), _s(state), int(last)) for n, state, last in r]

    async def periodic_fire(
        self, *, keys: QueueKeys, missed_after_ms: int, limit: int,
        ticks: Sequence[tuple[str, str, bytes, Sequence[int], Sequence[int]]],
    ) -> tuple[int, bool, list[Fired]]:
        """Fire the due ``ticks`` of the queue's schedules, each (name, digest, message to
        enqueue (b"": the stored one), head ticks, tail ticks) (see ``lua/periodic_fire.lua``):
        (Redis time ms, whether this pass found ticks missed, what each schedule did)."""
        args: list[Any] = [missed_after_ms, limit, keys.queue, PERIODIC_LOG_CAP]
        for name, digest, message, head, tail in ticks:
            args += (name, digest, message, len(head), *head, len(tail), *tail)
        r = await self._call("periodic_fire", (keys.periodic, keys.stream, keys.periodic_log),
                             args)
        fired = [Fired(_s(x[0]), _s(x[1]), int(x[2]), int(x[3]), int(x[4]), _s(x[5]) or None)
                 for x in r[2:]]
        return int(r[0]), bool(int(r[1])), fired

    async def task_metrics(self, *, keys: QueueKeys, increments: Sequence[tuple[str, int]],
                           max_fields: int) -> int:
        """Add ``increments`` to the queue's task metrics hash (new fields only while it has
        fewer than ``max_fields``); returns how many were refused."""
        args: list[Any] = [max_fields]
        for field, n in increments:
            args += (field, n)
        return int(await self._call("task_metrics", (keys.task_metrics,), args))

    # -- operators ---------------------------------------------------------------------------

    async def periodic_pause(self, *, keys: QueueKeys, name: str, paused: bool) -> bool:
        """Pause or resume a periodic schedule; False when none of that name is stored."""
        return bool(await self._call("periodic_pause", (keys.periodic,),
                                     (name, "1" if paused else "0")))

    async def replay(
        self, *, keys: QueueKeys, dead_id: str, payload: bytes, task_id: str,
        unique: str | None = None,
    ) -> str | KeyHeld | None:
        """Move a dead letter back to the stream (its dead record dropped), taking its task's
        unique key ``unique`` (the full key, as in the envelope) again in the same step: the
        new entry id; :class:`KeyHeld` when another task holds the key (nothing done); None
        when the dead letter is gone."""
        key_list = [keys.dead, keys.stream, keys.entries, _bucket_key(keys, task_id)]
        args: list[Any] = [dead_id, payload, task_id]
        if unique is not None:
            names, lanes = lane_keys(keys.prefix, keys.queue)
            key_list += (keys.unique(unique), *lanes)
            args += names
        r = await self._call("replay", key_list, args)
        if isinstance(r, list):
            return KeyHeld(_s(r[0]), _s(r[1]) == "s")
        return _s(r) if r else None

    async def purge(
        self, *, keys: QueueKeys, entries: Sequence[tuple[str, str, str | None]],
        delayed: Sequence[tuple[str, str | None]],
    ) -> tuple[int, int, int]:
        """Remove the waiting tasks chosen: ``entries`` (entry id, task id, unique key or None)
        still undelivered, ``delayed`` (task id, unique key or None) still delayed, releasing
        their unique keys in the same step: (removed from the stream, from the delayed set,
        unique keys released)."""
        key_list = [keys.stream, keys.delayed, keys.payloads, keys.entries, keys.stats]
        index: dict[str, int] = {}

        def at(unique: str | None) -> int:
            if unique is None:
                return 0
            if unique not in index:
                key_list.append(keys.unique(unique))
                index[unique] = len(key_list)
            return index[unique]

        args: list[Any] = [GROUP, keys.queue, len(entries)]
        for entry_id, task_id, unique in entries:
            args += (entry_id, task_id, at(unique))
        for task_id, unique in delayed:
            args += (task_id, at(unique))
        r = await self._call("purge", key_list, args)
        return int(r[0]), int(r[1]), int(r[2])


class SyncScripts:
    """The producer-side scripts for synchronous code (``enqueue_sync``), and the lease
    renewals of a worker's lease keeper (:mod:`taskq.worker.loopwatch`, a thread of its own);
    the same contract as :class:`Scripts`."""

    def __init__(self, client: SyncRedis) -> None:
        self._enqueue: Script = client.register_script(source("enqueue"))
        self._schedule: Script = client.register_script(source("schedule"))
        self._enqueue_with: Script = client.register_script(source("enqueue_with"))
        self._renew: Script = client.register_script(source("renew"))
        self._renew_slots: Script = client.register_script(source("renew_slots"))

    def renew(self, *, keys: QueueKeys, consumer: str, entry_ids: Sequence[str]) -> list[str]:
        """See :meth:`Scripts.renew`."""
        r = self._renew(keys=[keys.stream], args=_renew_args(consumer, entry_ids))
        return [_s(x) for x in r]

    def renew_slots(self, *, slots: Sequence[tuple[str, str]], lease_ms: int) -> int:
        """See :meth:`Scripts.renew_slots`."""
        if not slots:
            return 0
        return int(self._renew_slots(keys=[k for k, _ in slots],
                                     args=_renew_slots_args(slots, lease_ms)))

    def enqueue_with(
        self, *, keys: QueueKeys, items: Sequence[SendItem], limit: int
    ) -> list[Sent] | tuple[int, str] | Reused:
        """See :meth:`Scripts.enqueue_with`."""
        key_list, args = _send_args(keys, items, limit)
        return _sent(self._enqueue_with(keys=key_list, args=args), items, len(key_list))

    def enqueue(
        self, *, keys: QueueKeys, payloads: Sequence[bytes], limit: int
    ) -> tuple[list[str] | None, int]:
        """See :meth:`Scripts.enqueue`."""
        return _enqueued(self._enqueue(keys=[keys.stream], args=[limit, *payloads]))

    def schedule(
        self, *, keys: QueueKeys, task_ids: Sequence[str], payloads: Sequence[bytes],
        delay_ms: int, limit: int,
    ) -> list[int] | int:
        """See :meth:`Scripts.schedule`."""
        args = _schedule_args(task_ids, payloads, delay_ms, limit)
        return _scheduled(
            self._schedule(keys=[keys.delayed, keys.payloads, keys.stream], args=args))
