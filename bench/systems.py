"""The queues under test: where each adapter runs and how it is driven."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = ROOT / "bench" / ".peers-venv"

# Each peer venv: its pip requirements. arq pins redis<6 while kombu (celery) needs redis>=6.1,
# so arq gets a venv of its own.
VENVS: dict[str, list[str]] = {
    "main": ["rq", "dramatiq", "celery", "saq", "taskiq", "taskiq-redis", "huey", "streaq",
             "redis>=6.1", "hiredis", "uvloop"],
    "arq": ["arq", "hiredis", "uvloop"],
}

ASYNC_CONCURRENCY = 50  # tasks in flight per worker process for asyncio queues
THREADS = 8  # threads per worker process for thread-pool queues


@dataclass(frozen=True, slots=True)
class System:
    name: str  # shown in tables
    module: str  # bench.peers.<module>
    venv: str  # "project" (taskq's .venv) or a key of VENVS
    packages: tuple[str, ...]  # whose versions are reported
    concurrency: int  # per worker process (rq runs one job at a time whatever this says)
    model: str  # how the worker runs jobs
    redelivers: str  # what happens to a job whose worker is killed mid-run (default config)

    @property
    def python(self) -> str:
        if self.venv == "project":
            return sys.executable
        return str(PEERS_VENV / self.venv / "bin" / "python")


SYSTEMS: tuple[System, ...] = (
    System("taskq", "taskq", "project", ("taskq", "redis", "hiredis"), ASYNC_CONCURRENCY,
           f"asyncio, {ASYNC_CONCURRENCY} in flight", "yes: lease expires, entry reclaimed"),
    System("plain-streams", "plain", "project", ("hiredis",), ASYNC_CONCURRENCY,
           f"asyncio, {ASYNC_CONCURRENCY} in flight, reads ahead, acks in the background",
           "stays pending (no reclaim): floor only"),
    System("plain-naive", "plain_naive", "project", ("redis",), ASYNC_CONCURRENCY,
           f"asyncio, batches of {ASYNC_CONCURRENCY}: read, run, ack, read again",
           "stays pending (no reclaim): the old floor"),
    System("taskiq-redis", "taskiq", "main", ("taskiq", "taskiq-redis"), ASYNC_CONCURRENCY,
           f"asyncio, {ASYNC_CONCURRENCY} in flight (stream broker)",
           "yes: pending entries redelivered after a timeout"),
    System("streaq", "streaq", "main", ("streaq", "coredis"), ASYNC_CONCURRENCY,
           f"asyncio, {ASYNC_CONCURRENCY} in flight", "yes: idle entries reclaimed"),
    System("arq", "arq", "arq", ("arq", "redis"), ASYNC_CONCURRENCY,
           f"asyncio, max_jobs={ASYNC_CONCURRENCY}",
           "yes: job re-run after its in-progress key expires"),
    System("saq", "saq", "main", ("saq",), ASYNC_CONCURRENCY,
           f"asyncio, concurrency={ASYNC_CONCURRENCY}", "yes: swept and retried after its timeout"),
    System("dramatiq", "dramatiq", "main", ("dramatiq",), THREADS,
           f"1 process x {THREADS} threads", "yes: requeued from a dead worker's ack set"),
    System("celery", "celery", "main", ("celery", "kombu"), THREADS,
           f"thread pool x {THREADS}", "no (acks_late off by default): lost"),
    System("huey", "huey", "main", ("huey",), THREADS,
           f"{THREADS} worker threads", "no: lost"),
    System("rq-simple", "rq_simple", "main", ("rq",), 1,
           "SimpleWorker: one job at a time, in process", "no: moved to the failed registry"),
    System("rq", "rq", "main", ("rq",), 1,
           "Worker: forks a work horse per job", "no: moved to the failed registry"),
)


def by_name(names: list[str]) -> list[System]:
    known = {s.name: s for s in SYSTEMS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown queues {unknown}; choose from {sorted(known)}")
    return [known[n] for n in names]
