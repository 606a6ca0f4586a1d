"""The fault suite's tasks. Workers load ``faults.app:tq``; the harness calls :func:`make_app`.

Settings come from the environment of the worker process: TASKQ_REDIS_URL, FAULTS_PREFIX,
FAULTS_LOG_DIR (where the task logs go), FAULTS_SOCKET_TIMEOUT, FAULTS_MAX_PAYLOAD,
FAULTS_MAX_BACKLOG and FAULTS_RESULT_TTL; FAULTS_SCHEDULE_EVERY_S adds a periodic ``tick``.
Every task logs ``start`` when it begins and ``end`` when it is done (see
:mod:`faults.tasklog`); the harness trusts nothing else to say a task ran.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import time
from typing import Any

from faults import tasklog
from taskq import TaskContext, TaskQueue

QUEUE = "q"
# tasks made to fail (raise every time, hang past their timeout, kill their process): they end
# dead-lettered; every other task here is healthy and must end succeeded
UNHEALTHY_TASKS = frozenset({"doomed", "hang", "exit_now", "segfault"})


def make_app(url: str, prefix: str, *, socket_timeout: float = 2.0,
             max_payload: int = 65_536, max_backlog: int = 1_000_000,
             result_ttl: float = 3600) -> TaskQueue:
    tq = TaskQueue(url, prefix=prefix, default_queue=QUEUE, socket_timeout=socket_timeout,
                   max_payload_bytes=max_payload, max_backlog=max_backlog,
                   result_ttl=result_ttl)
    _register(tq)
    _register_workflow_steps(tq)
    return tq


def _register(tq: TaskQueue) -> None:
    @tq.task(name="work", max_attempts=25, backoff=0.05, max_backoff=0.2)
    async def work(job: int, ms: int, ctx: TaskContext) -> int:
        tasklog.start(job, ctx.attempt)
        if ms:
            await asyncio.sleep(ms / 1000)
        tasklog.end(job)
        return job

    @tq.task(name="padded", max_attempts=25, backoff=0.05, max_backoff=0.2)
    async def padded(job: int, pad: str, ctx: TaskContext) -> int:
        """A healthy task with a payload of any size (the memory-pressure scenario)."""
        tasklog.start(job, ctx.attempt)
        tasklog.end(job)
        return job

    @tq.task(name="work_sync", max_attempts=25, backoff=0.05, max_backoff=0.2)
    def work_sync(job: int, ms: int, ctx: TaskContext) -> int:
        tasklog.start(job, ctx.attempt)
        if ms:
            time.sleep(ms / 1000)
        tasklog.end(job)
        return job

    @tq.task(name="flaky", max_attempts=6, backoff=0.05, max_backoff=0.2)
    async def flaky(job: int, fails: int, ctx: TaskContext) -> int:
        tasklog.start(job, ctx.attempt)
        if ctx.attempt <= fails:
            raise RuntimeError(f"flaky failure on attempt {ctx.attempt}")
        tasklog.end(job)
        return job

    @tq.task(name="doomed", max_attempts=2, backoff=0.05, max_backoff=0.1)
    async def doomed(job: int, ctx: TaskContext) -> None:
        tasklog.start(job, ctx.attempt)
        raise RuntimeError("always fails")

    @tq.task(name="hang", max_attempts=2, timeout=0.5, backoff=0.05, max_backoff=0.1)
    async def hang(job: int, ctx: TaskContext) -> None:
        tasklog.start(job, ctx.attempt)
        await asyncio.sleep(3600)

    @tq.task(name="exit_now", max_attempts=2, backoff=0.05)
    def exit_now(job: int, ctx: TaskContext) -> None:
        tasklog.start(job, ctx.attempt)
        os._exit(3)

    @tq.task(name="segfault", max_attempts=2, backoff=0.05)
    def segfault(job: int, ctx: TaskContext) -> None:
        tasklog.start(job, ctx.attempt)
        ctypes.string_at(0)

    @tq.task(name="rated", max_attempts=25, rate_limit="50/s")
    async def rated(job: int, ctx: TaskContext) -> int:
        """Limited to 50 starts a second across every worker (scenario s16)."""
        tasklog.start(job, ctx.attempt)
        tasklog.end(job)
        return job

    @tq.task(name="capped", max_attempts=25, concurrency_limit=2)
    async def capped(job: int, ms: int, ctx: TaskContext) -> int:
        """At most 2 running at once across every worker (scenario s17)."""
        tasklog.start(job, ctx.attempt)
        await asyncio.sleep(ms / 1000)
        tasklog.end(job)
        return job

    @tq.task(name="keyed", max_attempts=25, backoff=0.05, max_backoff=0.2)
    async def keyed(job: int, key: int, ms: int, ctx: TaskContext) -> int:
        """Sent with a unique key (the unique-keys scenario; ``key`` is for reading logs)."""
        tasklog.start(job, ctx.attempt)
        if ms:
            await asyncio.sleep(ms / 1000)
        tasklog.end(job)
        return job

    @tq.task(name="typed", max_attempts=3)
    async def typed(job: int, count: int, ctx: TaskContext) -> Any:
        tasklog.start(job, ctx.attempt)
        tasklog.end(job)
        return count


def _register_workflow_steps(tq: TaskQueue) -> None:
    """Workflow steps (the workflows scenario): each checks the input it was given."""

    @tq.task(name="wf_member", max_attempts=25, backoff=0.05, max_backoff=0.2)
    async def wf_member(job: int, ms: int, ctx: TaskContext) -> int:
        tasklog.start(job, ctx.attempt)
        if ms:
            await asyncio.sleep(ms / 1000)
        tasklog.end(job)
        return job

    @tq.task(name="wf_gather", max_attempts=25, backoff=0.05, max_backoff=0.2)
    async def wf_gather(values: list[int], job: int, first: int, ms: int,
                        ctx: TaskContext) -> int:
        """A chord's callback: its members' results must arrive whole and in order."""
        tasklog.start(job, ctx.attempt)
        if values != list(range(first, first + len(values))):
            tasklog.write(f"bad {job} {values}")
        if ms:
            await asyncio.sleep(ms / 1000)
        tasklog.end(job)
        return sum(values)

    @tq.task(name="wf_next", max_attempts=25, backoff=0.05, max_backoff=0.2)
    async def wf_next(prev: int, job: int, ms: int, ctx: TaskContext) -> int:
        """A chain's later step: it must be given its predecessor's result."""
        tasklog.start(job, ctx.attempt)
        if prev != job - 1:
            tasklog.write(f"bad {job} {prev}")
        if ms:
            await asyncio.sleep(ms / 1000)
        tasklog.end(job)
        return job


def ticks_ran_key(prefix: str) -> str:
    """Set of the task ids of the periodic ``tick`` runs (the schedule-kills scenario)."""
    return f"{prefix}:ticks-ran"


def _schedule(tq: TaskQueue, every_s: float) -> None:
    """A periodic ``tick`` every ``every_s`` (catch-up: every tick), for the schedule-kills
    scenario; each run adds its task id to :func:`ticks_ran_key` and counts its runs."""

    @tq.task(name="tick", max_attempts=25, backoff=0.05, max_backoff=0.2)
    async def tick(ctx: TaskContext) -> None:
        pipe = tq.redis.pipeline(transaction=False)
        pipe.sadd(ticks_ran_key(tq.prefix), ctx.task_id)
        pipe.incr(f"{tq.prefix}:ticks-runs")
        await pipe.execute()

    tq.schedule(tick.message(), every=every_s, name="tick", catch_up="all")


def _from_env() -> TaskQueue:
    env = os.environ
    tq = _app_from_env()
    if env.get("FAULTS_SCHEDULE_EVERY_S"):
        _schedule(tq, float(env["FAULTS_SCHEDULE_EVERY_S"]))
    return tq


def _app_from_env() -> TaskQueue:
    env = os.environ
    return make_app(
        env.get("TASKQ_REDIS_URL", "redis://127.0.0.1:6379/0"),
        env.get("FAULTS_PREFIX", "faults"),
        socket_timeout=float(env.get("FAULTS_SOCKET_TIMEOUT", "2.0")),
        max_payload=int(env.get("FAULTS_MAX_PAYLOAD", "65536")),
        max_backlog=int(env.get("FAULTS_MAX_BACKLOG", "1000000")),
        result_ttl=float(env.get("FAULTS_RESULT_TTL", "3600")),
    )


tq = _from_env()
