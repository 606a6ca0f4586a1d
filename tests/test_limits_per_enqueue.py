"""``with_options(concurrency_key=...)``: a concurrency limit on a key given per enqueue."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from taskq import TaskQueue, TaskStatus, Worker, codec
from taskq.limits import Limits, with_concurrency_key
from tests.support import RunsPerKey

FAST = {"block_ms": 100, "promote_every_ms": 20}


def test_the_key_travels_in_the_envelope_and_is_checked(tq: TaskQueue) -> None:
    @tq.task(name="job")
    async def job(n: int) -> None: ...

    msg = job.with_options(concurrency_key="acct-1").message(1)
    assert msg.options is not None and msg.options.concurrency_key == "acct-1"
    back = codec.decode(codec.encode(msg))
    assert back.options is not None and back.options.concurrency_key == "acct-1"
    assert codec.decode(codec.encode(job.message(1))).options is None  # nothing when unused
    for bad in ("", "a b", "x" * 201):
        with pytest.raises(ValueError, match="concurrency_key"):
            job.with_options(concurrency_key=bad)


def test_a_per_enqueue_key_replaces_the_tasks_own_and_keeps_its_limit() -> None:
    assert with_concurrency_key(None, "k") == Limits(concurrency=1, fixed_concurrency_key="k")
    own = Limits.of("10/s", None, 3, "account")
    assert own is not None
    keyed = with_concurrency_key(own, "k")
    assert (keyed.rate, keyed.concurrency, keyed.concurrency_key, keyed.fixed_concurrency_key) \
        == (own.rate, 3, None, "k")


async def test_one_at_a_time_per_key_given_at_enqueue(
        tq: TaskQueue, start_worker: Callable[..., Worker]) -> None:
    runs = RunsPerKey()

    @tq.task(queue="pk")  # no limit of its own
    async def sync_account(account: str, n: int) -> None:
        await runs.run(account, 0.03)

    msgs = [sync_account.with_options(concurrency_key=f"acct-{a}", priority=level).message(a, i)
            for i in range(5) for a in "xy" for level in ("high", "normal")]
    handles = await tq.enqueue_many(msgs)
    plain = await sync_account.enqueue("z", 0)  # sent without a key: not limited
    for _ in range(2):
        start_worker(tq, queues=("pk",), concurrency=5, **FAST)
    for h in [*handles, plain]:
        assert (await h.wait(timeout=60)).status is TaskStatus.SUCCEEDED
    assert (runs.peaks["x"], runs.peaks["y"]) == (1, 1)  # across both priority lanes
    assert runs.overlap  # different keys did run at the same time
    for a in "xy":
        slots = tq.keys("pk").limit("run", f"{sync_account.name}:acct-{a}")
        assert await tq.redis.zcard(slots) == 0  # freed with each ack
