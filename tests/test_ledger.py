"""The in-flight ledger's rules, without Redis: run slots, the read room, hand-over and acks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from taskq.records import TaskStatus
from taskq.worker.config import WorkerConfig
from taskq.worker.ledger import Delivery, Ledger


class Runs:
    """A stand-in runner: each delivery's run waits until released, then ends or finishes."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.started: list[str] = []
        self.release: dict[str, asyncio.Future[bool]] = {}
        ledger.runs(self.process)

    async def process(self, d: Delivery) -> None:
        self.started.append(d.entry_id)
        done = self.release[d.entry_id] = asyncio.get_running_loop().create_future()
        try:
            d.started = True
            if await done:  # True: finished, handed to the completer
                self.ledger.hand_over(d)
        finally:
            self.ledger.runner_ended(d)

    async def end(self, entry: str, finished: bool = True) -> None:
        self.release[entry].set_result(finished)
        for _ in range(3):
            await asyncio.sleep(0)


RunsOf = Callable[[Ledger], Runs]


@pytest.fixture
async def runs_of() -> AsyncIterator[RunsOf]:
    """Stand-in runners for a ledger; runs still waiting at teardown end without an outcome."""
    made: list[Runs] = []

    def make(ledger: Ledger) -> Runs:
        made.append(Runs(ledger))
        return made[-1]

    yield make
    for runs in made:
        for done in runs.release.values():
            if not done.done():
                done.set_result(False)
    await settle()


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def entry(n: int) -> str:
    return f"17000000000{n:02d}-0"


async def test_run_slots_then_waiting_in_order(runs_of: RunsOf) -> None:
    ledger = Ledger(WorkerConfig(concurrency=2, prefetch=2, batch=10))
    runs = runs_of(ledger)
    for n in range(4):
        ledger.accept("q", entry(n), b"", 1)
    await settle()
    assert runs.started == [entry(0), entry(1)]
    assert (ledger.running, len(ledger.waiting), len(ledger.held)) == (2, 2, 4)
    await runs.end(entry(1), finished=False)  # ended without an outcome: leaves the ledger
    assert runs.started == [entry(0), entry(1), entry(2)]
    assert (ledger.running, len(ledger.waiting), len(ledger.held)) == (2, 1, 3)


async def test_a_redelivered_entry_only_takes_its_new_delivery_count(runs_of: RunsOf) -> None:
    ledger = Ledger(WorkerConfig(concurrency=1, prefetch=1))
    runs = runs_of(ledger)
    ledger.accept("q", entry(0), b"", 1)
    ledger.accept("q", entry(0), b"", 3)
    await settle()
    assert runs.started == [entry(0)]
    assert ledger.held[("q", entry(0))].deliveries == 3


async def test_read_room_counts_finished_entries_awaiting_their_ack_up_to_the_capacity(
        runs_of: RunsOf) -> None:
    ledger = Ledger(WorkerConfig(concurrency=2, prefetch=1, batch=10))  # capacity 3
    runs = runs_of(ledger)
    assert ledger.read_room() == 3 and ledger.read_threshold == 1
    for n in range(3):
        ledger.accept("q", entry(n), b"", 1)
    await settle()
    assert ledger.read_room() == 0
    await runs.end(entry(0))  # finished: held until acked, but it leaves room to read
    assert len(ledger.held) == 3 and ledger.acking == 1 and ledger.read_room() == 1
    for n in range(3, 6):
        ledger.accept("q", entry(n), b"", 1)
    await settle()
    for n in (1, 2, 3, 4):
        await runs.end(entry(n))
    # 5 awaiting their ack, 1 running: the room stops at the capacity again
    assert (len(ledger.held), ledger.acking) == (6, 5)
    assert ledger.read_room() == 0
    assert ledger.reclaim_room() == -3  # reclaiming counts everything held


async def test_acks_release_the_held_entries_and_count_outcomes(runs_of: RunsOf) -> None:
    ledger = Ledger(WorkerConfig(concurrency=4, prefetch=1))
    runs = runs_of(ledger)
    for n in range(3):
        ledger.accept("q", entry(n), b"", 1)
    await settle()
    for n in range(3):
        await runs.end(entry(n))
    batch = ledger.take_done()
    assert [d.entry_id for d in batch] == [entry(0), entry(1), entry(2)]
    assert not ledger.done_ready.is_set() and ledger.acks_pending() == 3
    for d in batch:
        d.status = TaskStatus.SUCCEEDED
    ledger.acked(batch, [entry(1)])
    assert ledger.held == {} and ledger.acks_pending() == 0
    assert (ledger.counters.succeeded, ledger.counters.lost_leases) == (2, 1)


async def test_a_lost_lease_drops_an_unstarted_delivery_and_marks_a_running_one(
        runs_of: RunsOf) -> None:
    ledger = Ledger(WorkerConfig(concurrency=1, prefetch=1))
    runs = runs_of(ledger)
    ledger.accept("q", entry(0), b"", 1)
    ledger.accept("q", entry(1), b"", 1)
    await settle()
    ledger.lost("q", entry(0))  # running: its outcome will be discarded
    ledger.lost("q", entry(1))  # waiting: gone at once, never started
    assert ledger.held[("q", entry(0))].lost and ("q", entry(1)) not in ledger.held
    assert ledger.counters.lost_leases == 2
    await runs.end(entry(0), finished=False)
    assert runs.started == [entry(0)] and ledger.held == {}


async def test_stopping_starts_nothing_and_keeps_unstarted_deliveries_to_hand_back(
        runs_of: RunsOf) -> None:
    ledger = Ledger(WorkerConfig(concurrency=1, prefetch=2))
    runs = runs_of(ledger)
    for n in range(3):
        ledger.accept("q", entry(n), b"", 1)
    await settle()
    ledger.stop()
    assert await asyncio.wait_for(ledger.wait_room(), 1) == ledger.read_room()
    unstarted = ledger.unstarted()
    assert [d.entry_id for d in unstarted] == [entry(1), entry(2)]
    await runs.end(entry(0))
    assert runs.started == [entry(0)]  # the waiting ones never started
    assert len(ledger.held) == 3 and ledger.acks_pending() == 1


async def test_a_reclaimed_own_entry_keeps_its_delivery_and_payload(runs_of: RunsOf) -> None:
    """Reclaiming an entry this worker still holds changes only its fencing token: the same
    delivery (running, with its payload) stays; nothing new is queued to run it twice."""
    ledger = Ledger(WorkerConfig(concurrency=1, prefetch=1))
    runs = runs_of(ledger)
    ledger.accept("q", entry(0), b"payload", 1)
    await settle()
    d = ledger.held[("q", entry(0))]
    assert (d.deliveries, d.payload) == (1, b"payload")
    ledger.accept("q", entry(0), None, 2)
    assert ledger.held[("q", entry(0))] is d and (d.deliveries, d.payload) == (2, b"payload")
    assert not ledger.waiting and ledger.running == 1
    await runs.end(entry(0))
    assert runs.started == [entry(0)]


async def test_a_lost_lease_is_counted_once_and_never_for_an_entry_being_acked(
        runs_of: RunsOf) -> None:
    ledger = Ledger(WorkerConfig(concurrency=2, prefetch=1))
    runs = runs_of(ledger)
    ledger.accept("q", entry(0), b"", 1)
    ledger.accept("q", entry(1), b"", 1)
    await settle()
    ledger.lost("q", entry(0))
    ledger.lost("q", entry(0))  # reported again by the next renewal
    assert ledger.counters.lost_leases == 1
    await runs.end(entry(1))  # handed to the completer: its script's owner check decides
    ledger.lost("q", entry(1))
    assert not ledger.held[("q", entry(1))].lost and ledger.counters.lost_leases == 1
    batch = ledger.take_done()
    batch[0].status = "succeeded"
    ledger.acked(batch, [entry(1)])  # the completer found it lost: counted on top
    assert ledger.counters.lost_leases == 2 and ledger.counters.succeeded == 0
