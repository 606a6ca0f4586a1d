"""The stored formats shared by a writer and a reader: the worker heartbeat and dead letters."""

from __future__ import annotations

import dataclasses
import json

from taskq import deadletter, heartbeat
from taskq.heartbeat import Heartbeat


def test_a_heartbeat_reads_back_as_written() -> None:
    beat = Heartbeat(id="w1", host="h", pid=7, queues=["a", "b"], concurrency=4, in_flight=2,
                     processed=9, succeeded=6, failed=3, retried=2, dead=1, reclaimed=1,
                     lost_leases=1, started_ms=1000, heartbeat_ms=2000, stopping=True)
    assert heartbeat.decode("w1", beat.encode()) == beat
    assert heartbeat.decode("w1", beat.encode().encode()) == beat  # as Redis returns it
    stored = json.loads(beat.encode())
    assert (stored["started"], stored["heartbeat"]) == (1000, 2000)  # the stored key names


def test_a_damaged_heartbeat_still_names_its_worker() -> None:
    for raw in (None, b"", b"not json", b"[1, 2]", b'{"pid": "x", "processed": null}'):
        beat = heartbeat.decode("w9", raw)
        assert beat == Heartbeat(id="w9"), raw


def test_a_dead_letter_reads_back_as_written() -> None:
    entry = deadletter.DeadEntry(
        task_id="q:1-0", entry="1-0", task="t", reason="max_attempts", error_type="ValueError",
        error="e" * 3000, traceback="t" * 5000, attempts=3, enqueued_ms=5, failed_ms=9,
        worker="w1", payload=b"\x01\x02",
    )
    stored = {k.encode(): v if isinstance(v, bytes) else str(v).encode()
              for k, v in entry.fields().items()}
    back = deadletter.parse(stored)
    assert len(back.error) == deadletter.ERROR_LIMIT
    assert len(back.traceback) == deadletter.TRACEBACK_LIMIT
    assert back == dataclasses.replace(entry, error="e" * deadletter.ERROR_LIMIT,
                                       traceback="t" * deadletter.TRACEBACK_LIMIT)
    assert deadletter.task_of(stored) == "t"


def test_a_lost_entry_dead_letter_has_no_payload_nor_times() -> None:
    # the shape lua/reclaim.lua writes for entries deleted while pending
    back = deadletter.parse({b"id": b"q:1-0", b"entry": b"1-0", b"task": b"",
                             b"reason": b"payload_missing", b"attempts": b"0",
                             b"failed_ms": b"9"})
    assert (back.payload, back.enqueued_ms, back.failed_ms, back.worker) == (b"", None, 9, "")

