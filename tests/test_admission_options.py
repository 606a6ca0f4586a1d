"""Admission of entries with options, without Redis: expiry against the Redis clock, the deploy
grace of unknown task names (counted from the first worker that did not know it), and the
envelope fields round-tripping."""

from __future__ import annotations

import pytest

from taskq import DecodeError, Message, TaskQueue, codec
from taskq.options import SendOptions
from taskq.worker.admission import UNKNOWN_RETRY_MS, Deferred, Expired, Ready, Refused, admit

ENTRY = "1700000000000-7"


@pytest.fixture
def tq() -> TaskQueue:
    app = TaskQueue("redis://127.0.0.1:1/0")

    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    return app


def enc(task: str = "add", options: SendOptions | None = None) -> bytes:
    return codec.encode(Message(task, (), {"a": 1, "b": 2}, options=options))


def test_expiry_is_checked_against_the_clock(tq: TaskQueue) -> None:
    payload = enc(options=SendOptions(expires_ms=1_000))
    before = admit("default", ENTRY, 1, payload, tq.registry, 10_000, (), lambda: 999)
    after = admit("default", ENTRY, 1, payload, tq.registry, 10_000, (), lambda: 1_000)
    assert type(before) is Ready and type(after) is Expired
    assert after.task_id == f"default:{ENTRY}" and after.attempts == 0


def test_an_unknown_name_is_deferred_within_the_grace_then_refused(tq: TaskQueue) -> None:
    first = admit("default", ENTRY, 1, enc("new"), tq.registry, 10_000, (), lambda: 5_000,
                  60_000)
    assert type(first) is Deferred and first.delay_ms == UNKNOWN_RETRY_MS
    assert first.msg.options is not None and first.msg.options.unknown_since_ms == 5_000
    again = codec.encode(first.msg)  # as handed back: the first sighting travels along
    near_end = admit("default", ENTRY, 1, again, tq.registry, 10_000, (), lambda: 63_000, 60_000)
    assert type(near_end) is Deferred and near_end.delay_ms == 2_000  # not past the grace
    late = admit("default", ENTRY, 1, again, tq.registry, 10_000, (), lambda: 65_000, 60_000)
    assert type(late) is Refused and late.reason == "unknown_task"
    assert "for 60 s, the deploy grace" in late.error
    at_once = admit("default", ENTRY, 1, enc("new"), tq.registry, 10_000, ())
    assert type(at_once) is Refused and at_once.reason == "unknown_task"


def test_options_round_trip_and_plain_envelopes_stay_plain() -> None:
    opts = SendOptions(key="add:k", unique_for_ms=5, expires_ms=7, unknown_since_ms=9)
    back = codec.decode(enc(options=opts))
    assert back.options == SendOptions("add:k", 5, 7, unknown_since_ms=9)
    assert codec.decode(enc()).options is None
    assert len(codec.unpack(enc())) == 6  # no option field at all
    for bad in ({"u": 5}, {"uf": -1, "u": "k"}, {"ex": "soon"}, {"ug": 1.5}):
        body = {"v": 1, "t": "add", "a": [], "k": {}, "n": 0, "e": 0, **bad}
        with pytest.raises(DecodeError):
            codec.decode(codec.pack(body))
