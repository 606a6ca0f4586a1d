"""Periodic schedules fired by real worker processes: several at once, the only one killed for
a while (the catch-up policy), and two whose clocks differ by minutes (libfaketime)."""

from __future__ import annotations

import itertools
import signal
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aredis

from faults.scenarios.skew import libfaketime
from tests.helpers import WorkerProcess, eventually

APP = "tests.apps.periodic:tq"
NAME = "every-second"


async def journal(r: aredis.Redis, prefix: str) -> list[dict[str, str]]:
    """The periodic log of queue default: every fire and skip, in order."""
    entries = await r.xrange(f"{{{prefix}:default}}:periodic-log")
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in entries]


def fired(log: list[dict[str, str]]) -> list[tuple[int, str]]:
    return [(int(e["k"]), e["t"]) for e in log if e["w"] == "fired"]


async def redis_ms(r: aredis.Redis) -> int:
    sec, usec = await r.time()
    return int(sec) * 1000 + int(usec) // 1000


def fires_by(p: WorkerProcess) -> int:
    return p.output().count(f"schedule {NAME}: enqueued")


def assert_each_tick_once(ticks: list[tuple[int, str]]) -> None:
    times = [t for t, _ in ticks]
    assert all(b - a == 1000 for a, b in itertools.pairwise(times)), times
    assert len({task for _, task in ticks}) == len(ticks)


async def ran_all(r: aredis.Redis, prefix: str, tasks: set[str]) -> Any:
    ran = {x.decode() for x in await r.smembers(f"{prefix}:t:ran")}  # type: ignore[misc]
    return tasks <= ran


@pytest.fixture
async def r(redis_url: str) -> Any:
    client = aredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def run_window(r: aredis.Redis, prefix: str, ticks: int) -> list[tuple[int, str]]:
    """Wait for a first fire, then for ``ticks`` more: the fires of that window."""
    first = await eventually(lambda: _fires(r, prefix, 1), timeout=60, what="a first fire")
    start = len(first)
    log: list[tuple[int, str]] = await eventually(
        lambda: _fires(r, prefix, start + ticks), timeout=ticks * 4 + 30,
        what=f"{ticks} more fires")
    return log


async def _fires(r: aredis.Redis, prefix: str, n: int) -> list[tuple[int, str]] | None:
    f = fired(await journal(r, prefix))
    return f if len(f) >= n else None


async def test_three_workers_enqueue_each_tick_once_for_ten_seconds(
        r: aredis.Redis, prefix: str, worker_process: Callable[..., WorkerProcess]) -> None:
    procs = [worker_process(APP, "--concurrency", "4") for _ in range(3)]
    ticks = await run_window(r, prefix, 10)
    log = await journal(r, prefix)
    assert [e for e in log if e["w"] != "fired"] == []  # none skipped
    assert all(p.proc.poll() is None for p in procs)  # the premise: all three ran throughout
    assert_each_tick_once(ticks)
    assert len(ticks) >= 11
    assert sum(1 for p in procs if fires_by(p) > 0) >= 2  # the premise: they contended
    tasks = {t for _, t in ticks}
    await eventually(lambda: ran_all(r, prefix, tasks), timeout=30, what="every fire ran")
    runs = int(await r.get(f"{prefix}:t:runs") or 0)
    ran = await r.scard(f"{prefix}:t:ran")  # type: ignore[misc]
    assert runs == ran  # and none twice


@pytest.mark.parametrize("policy", ["once", "skip"])
async def test_the_only_worker_killed_for_five_seconds_applies_the_catch_up_policy(
        r: aredis.Redis, prefix: str, worker_process: Callable[..., WorkerProcess],
        policy: str) -> None:
    env = {"TEST_CATCH_UP": policy}
    # a pass more than a lease (3 s) after the previous one finds the ticks between missed
    args = ("--lease-ms", "3000", "--concurrency", "4")
    w = worker_process(APP, *args, env=env)
    await run_window(r, prefix, 2)
    w.signal(signal.SIGKILL)
    w.proc.wait(10)
    killed_at = await redis_ms(r)
    await eventually(lambda: _after(r, killed_at + 5000), timeout=30, what="5 s without worker")
    worker_process(APP, *args, env=env)
    missed = await eventually(lambda: _missed(r, prefix, killed_at), timeout=60,
                              what="the catch-up")
    last_before = max(t for t, _ in fired(await journal(r, prefix)) if t <= killed_at)
    # the pass after the gap: its ticks (at least 4 of them, 5 s without a worker) as one
    # fire ("once") or none ("skip"); then every tick again
    after = await eventually(lambda: _fires_after(r, prefix, int(missed["k"]), 2), timeout=30,
                             what="two fires after the catch-up")
    assert int(missed["k"]) - last_before >= 4000
    caught = [t for t, _ in fired(await journal(r, prefix)) if last_before < t <= int(missed["k"])]
    if policy == "once":
        assert caught == [int(missed["k"])]
        assert int(missed["s"]) == (int(missed["k"]) - last_before) // 1000 - 1
    else:
        assert caught == []
        assert int(missed["s"]) == (int(missed["k"]) - last_before) // 1000
    assert_each_tick_once([(int(missed["k"]), "x"), *after])


async def _after(r: aredis.Redis, ms: int) -> bool:
    return await redis_ms(r) >= ms


async def _missed(r: aredis.Redis, prefix: str, after: int) -> dict[str, str] | None:
    return next((e for e in await journal(r, prefix)
                 if e["w"] == "missed" and int(e["k"]) > after), None)


async def _fires_after(r: aredis.Redis, prefix: str, tick: int,
                       n: int) -> list[tuple[int, str]] | None:
    f = [x for x in fired(await journal(r, prefix)) if x[0] > tick]
    return f if len(f) >= n else None


async def test_workers_with_clocks_minutes_apart_enqueue_each_tick_once(
        r: aredis.Redis, prefix: str, worker_process: Callable[..., WorkerProcess]) -> None:
    lib = libfaketime()
    if lib is None:
        pytest.skip("libfaketime not found or not working (apt-get install faketime)")
    procs = [worker_process(APP, "--concurrency", "4",
                            env={"LD_PRELOAD": lib, "FAKETIME": skew,
                                 "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
             for skew in ("-5m", "+7m")]
    ticks = await run_window(r, prefix, 12)
    assert [e for e in await journal(r, prefix) if e["w"] != "fired"] == []
    assert_each_tick_once(ticks)
    assert all(fires_by(p) > 0 for p in procs)  # the premise: both skewed clocks fired
    now = await redis_ms(r)
    assert all(abs(now - t) < 60_000 for t, _ in ticks)  # ticks on Redis's clock, not theirs


@pytest.mark.parametrize("command", ["python -m worker", "taskq worker"])
async def test_no_schedules_worker_neither_syncs_nor_fires(
        r: aredis.Redis, prefix: str, redis_url: str, tmp_path: Any, command: str,
        worker_process: Callable[..., WorkerProcess]) -> None:
    """``--no-schedules`` (both entry points): the worker runs tasks but leaves the schedules
    to other workers; without the flag the same app syncs and fires them."""
    import asyncio  # noqa: PLC0415
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from tests.helpers import ROOT  # noqa: PLC0415

    env = {"TEST_PREFIX": prefix, "TASKQ_REDIS_URL": redis_url, "TEST_EVERY_S": "1"}
    if command == "taskq worker":
        argv = [sys.executable, "-c", "from taskq.cli import main; main()", "worker", APP,
                "--no-schedules", "--burst"]
    else:
        argv = [sys.executable, "-m", "worker", APP, "--no-schedules", "--burst"]
    # a burst worker exits once its queues are empty: long after it would have synced, and
    # it passes ticks that are due (the schedule fires every second) while it waits
    await r.xadd(f"{{{prefix}:default}}:stream", {"m": b"\x80"})  # (dead-lettered: bad payload)
    done = await asyncio.to_thread(subprocess.run, argv, cwd=ROOT, env={**os.environ, **env},
                                   capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert await r.exists(f"{{{prefix}:default}}:periodic") == 0  # never synced
    assert await r.smembers(f"{prefix}:periodic-queues") == set()  # type: ignore[misc]
    # the same app without the flag: synced and fired
    w = worker_process(APP, env={"TEST_EVERY_S": "1"})
    await eventually(lambda: _fires(r, prefix, 1), timeout=60, what="a fire without the flag")
    w.kill()
