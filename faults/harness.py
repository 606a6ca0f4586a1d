"""What every scenario shares: its folder, its private Redis, its producer app, its worker pool,
a respawning tender, bounded waits, and the final check."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from faults import checker, tasklog
from faults.app import QUEUE, make_app
from faults.ledger import FAILED, Ledger
from faults.redis_server import RedisServer
from faults.result import Result
from faults.workers import WorkerPool
from taskq import TaskQueue, codec
from taskq.keys import GROUP, QueueKeys


@dataclass(frozen=True)
class Profile:
    name: str
    scale: float  # multiplies job counts and durations
    rolling_restarts: int
    sustain_s: float
    overload_s: float

    def n(self, quick: int) -> int:
        return max(1, int(quick * self.scale))


QUICK = Profile("quick", 1.0, 20, 15.0, 8.0)
FULL = Profile("full", 3.0, 20, 60.0, 20.0)


class Env:
    def __init__(self, root: Path, name: str, profile: Profile) -> None:
        self.name = name
        self.profile = profile
        self.folder = root / name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.tasks = self.folder / "tasks"
        self.tasks.mkdir(exist_ok=True)
        self.prefix = f"f{uuid.uuid4().hex[:8]}"
        self.keys = QueueKeys(self.prefix, QUEUE)
        self.ledger = Ledger()
        self.result = Result(name)
        self.servers: list[RedisServer] = []
        self.pools: list[WorkerPool] = []
        self.apps: list[TaskQueue] = []
        self.tenders: list[asyncio.Task[None]] = []
        self.server: RedisServer | None = None
        # job -> at how many faults it was in flight (so could run once more): the bound of
        # duplicates, measured at each fault by :meth:`fault`
        self.rerunnable: Counter[int] = Counter()
        self.faults = 0

    # -- pieces ---------------------------------------------------------------------------

    def redis(self, persistence: str = "none", extra: list[str] | None = None,
              password: str | None = None,
              tls: tuple[Path, Path, Path] | None = None) -> RedisServer:
        server = RedisServer(self.folder / f"redis{len(self.servers)}", persistence, extra,
                             password, tls=tls)
        server.start()
        self.servers.append(server)
        self.server = server
        return server

    def admin(self) -> redis.Redis:
        assert self.server is not None
        return self.server.admin()

    def app(self, url: str | None = None, **kw: Any) -> TaskQueue:
        assert self.server is not None or url
        tq = make_app(url or self.server.url, self.prefix, **kw)  # type: ignore[union-attr]
        self.apps.append(tq)
        return tq

    def worker_env(self, url: str | None = None, **extra: str) -> dict[str, str]:
        assert self.server is not None or url
        return {"TASKQ_REDIS_URL": url or self.server.url,  # type: ignore[union-attr]
                "FAULTS_PREFIX": self.prefix, "FAULTS_LOG_DIR": str(self.tasks), **extra}

    def pool(self, size: int, env: dict[str, str] | None = None, **kw: Any) -> WorkerPool:
        kw.setdefault("name", f"pool{len(self.pools)}")
        pool = WorkerPool(self.folder, env or self.worker_env(), size, **kw)
        self.pools.append(pool)
        return pool

    def tend(self, pool: WorkerPool, every: float = 0.2) -> None:
        """Respawn the pool's dead processes in the background. Each death is a fault: what
        the dead process held (pending under its consumer, frozen until its lease runs out,
        longer than ``every``) is measured before it is respawned."""
        async def loop() -> None:
            while True:
                self.note_deaths(pool)
                pool.tend()
                await asyncio.sleep(every)
        self.tenders.append(asyncio.create_task(loop()))

    async def close(self) -> None:
        for t in self.tenders:
            t.cancel()
        for t in self.tenders:
            with contextlib.suppress(BaseException):
                await t
        for pool in self.pools:
            await asyncio.to_thread(pool.stop)
        for tq in self.apps:
            with contextlib.suppress(Exception):
                await tq.aclose()
        for s in self.servers:
            s.stop()

    # -- what a fault can make run twice -----------------------------------------------------

    def in_flight(self, admin: redis.Redis, *, pid: int | None = None) -> set[int]:
        """Jobs pending in the group now (of the consumer of process ``pid`` only, if given):
        read but not acknowledged, so a fault now can make them run again. Read from the
        entries' payloads, so an entry the producer added twice counts under its job."""
        try:
            if pid is None:
                names = [None]
            else:
                names = [c["name"] for c in admin.xinfo_consumers(self.keys.stream, GROUP)
                         if f":{pid}:" in checker.text(c["name"])]
            pending = [p["message_id"] for name in names
                       for p in admin.xpending_range(self.keys.stream, GROUP, "-", "+", 100_000,
                                                     consumername=name)]
        except redis.exceptions.ResponseError:  # no group (yet, or the stream was deleted)
            return set()
        pipe = admin.pipeline(transaction=False)
        for entry in pending:
            pipe.xrange(self.keys.stream, entry, entry)
        return {j for found in pipe.execute() for _, fields in found
                if (j := _job_of(fields.get(b"m", b""))) is not None}

    def note_deaths(self, pool: WorkerPool) -> None:
        """Measure, once each, what every dead process of ``pool`` held when it died."""
        dead = [p for p in pool.history if p.popen.poll() is not None and not p.measured]
        if not dead:
            return
        admin = self.admin()
        try:
            for p in dead:
                self.fault(self.in_flight(admin, pid=p.popen.pid))
                p.measured = True
        finally:
            admin.close()

    def enqueues_during(self, t0_ns: int, t1_ns: int) -> set[int]:
        """Jobs whose enqueue call overlapped ``[t0_ns, t1_ns]`` and was not refused: a reply
        lost to the fault makes the producer send it again, so it may have been added twice."""
        return {j for j, e in self.ledger.entries.items()
                if e.t0_ns <= t1_ns and e.t1_ns >= t0_ns and e.state != FAILED}

    def fault(self, *jobs: set[int]) -> int:
        """Count one fault and what it can make run again (the union of ``jobs``)."""
        hit = set().union(*jobs)
        self.rerunnable.update(hit)
        self.faults += 1
        return len(hit)

    # -- waiting and checking ----------------------------------------------------------------

    async def until(self, check: Callable[[], Any], timeout: float, what: str,
                    every: float = 0.1) -> float:
        """Poll ``check`` until truthy; returns seconds waited, or records a failure and
        returns -1 after ``timeout``."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            with contextlib.suppress(redis.exceptions.RedisError):
                if check():
                    return time.monotonic() - t0
            await asyncio.sleep(every)
        self.result.check(False, f"{what} not reached within {timeout:.0f} s")
        return -1.0

    async def settle(self, timeout: float = 60.0) -> float:
        """Wait until nothing is left to run, then a little for the last acks."""
        admin = self.admin()
        try:
            waited = await self.until(lambda: checker.quiet(admin, self.keys), timeout,
                                      "queue drained")
        finally:
            admin.close()
        return waited

    def verdict(self, *, extra_consumers: int = 0, expect_lost_counter: int = 0,
                check_records: bool = True) -> checker.Verdict:
        admin = self.admin()
        try:
            bound = sum(p.spawned for p in self.pools) + extra_consumers
            return checker.check(self.ledger, self.tasks, admin, self.keys,
                                 max_consumers=bound, expect_lost_counter=expect_lost_counter,
                                 check_records=check_records)
        finally:
            admin.close()

    def logs_of(self, pool: WorkerPool) -> str:
        return pool.logs()


def _job_of(payload: bytes) -> int | None:
    try:
        job = codec.decode(payload).kwargs.get("job")
    except Exception:  # poison the suite wrote on purpose
        return None
    return job if isinstance(job, int) else None


def completions_since(env: Env, t_ns: int) -> int:
    return sum(1 for t in tasklog.read(env.tasks).end_times() if t >= t_ns)


def first_completion_after(env: Env, t_ns: int) -> float | None:
    """Seconds from ``t_ns`` (monotonic) to the first task end after it."""
    after = [t for t in tasklog.read(env.tasks).end_times() if t >= t_ns]
    return (min(after) - t_ns) / 1e9 if after else None
