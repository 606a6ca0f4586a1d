"""The message envelope: round trips, and hostile bytes that must only ever raise DecodeError."""

from __future__ import annotations

import random
import sys
from typing import Any

import msgpack
import pytest

from taskq import DecodeError, Message, codec


def envelope(**changes: Any) -> bytes:
    body: dict[str, Any] = {"v": 1, "t": "app.task", "a": [], "k": {}, "n": 0, "e": 0}
    body.update(changes)
    return msgpack.packb({k: v for k, v in body.items() if v is not ...}, use_bin_type=True)


@pytest.mark.parametrize(
    "message",
    [
        Message("a.b"),
        Message("emails.send", (1, "two", 3.5, None, True), {"to": "x@y.z", "cc": ["a", "b"]}),
        Message("t", ([{"nested": [1, [2, [3]]]}],), {"blob": "é" * 1000}, attempts=2,
                enqueued_ms=1_700_000_000_000, task_id="default:1700000000000-d00ff"),
        Message("t", (2**63 - 1, -(2**63)), {"big": 2**64 - 1}),
    ],
)
def test_round_trip(message: Message) -> None:
    decoded = codec.decode(codec.encode(message))
    assert decoded == message


def test_task_id_is_only_written_when_set() -> None:
    assert b"\xa1i" not in codec.encode(Message("t"))
    assert codec.decode(codec.encode(Message("t", task_id="q:1-2"))).task_id == "q:1-2"


def test_encode_refuses_values_msgpack_cannot_hold() -> None:
    with pytest.raises(DecodeError):
        codec.encode(Message("t", (object(),)))
    with pytest.raises(DecodeError):
        codec.encode(Message("t", (2**64,)))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # a byte msgpack never uses
        b"not msgpack at all \xff\xfe",
        b"\xdb\xff\xff\xff\xff",  # a 4 GB string header with no string
        b"\xdd\xff\xff\xff\xff",  # a 4-billion-element array header
        b"\xdf\xff\xff\xff\xff",  # a 4-billion-entry map header
        b"\x91" * 100_000 + b"\xc0",  # 100,000 nested arrays
        b"\x81\xa1a" * 50_000 + b"\xc0",  # 50,000 nested maps
        msgpack.packb([1, 2, 3]),
        msgpack.packb("a string"),
        msgpack.packb(None),
        msgpack.packb(42),
        envelope() + b"trailing",
        envelope(v=...),
        envelope(v=2),
        envelope(v="1"),
        envelope(t=...),
        envelope(t=""),
        envelope(t=["os", "system"]),
        envelope(t=b"bytes"),
        envelope(a={"not": "a list"}),
        envelope(a="abc"),
        envelope(k=[1, 2]),
        envelope(k={b"bytes": 1}),
        envelope(n=-1),
        envelope(n="0"),
        envelope(n=1.5),
        envelope(e="yesterday"),
        envelope(i=5),
        msgpack.packb({1: "int key"}),
        msgpack.packb({(1, 2): "tuple key"}),
        msgpack.packb(msgpack.ExtType(42, b"\x00" * 8)),
    ],
)
def test_hostile_input_raises_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        codec.decode(data)


def test_max_bytes_is_checked_before_parsing() -> None:
    data = envelope(a=["x" * 100])
    assert codec.decode(data, max_bytes=len(data)).args == ("x" * 100,)
    with pytest.raises(DecodeError):
        codec.decode(data, max_bytes=len(data) - 1)


def test_random_and_mutated_bytes_only_raise_decode_error() -> None:
    rng = random.Random(1234)
    valid = codec.encode(Message("emails.send", (1, "two"), {"to": ["a", {"b": 1.5}]}, 1, 5))
    samples = [rng.randbytes(rng.randint(0, 64)) for _ in range(3_000)]
    for _ in range(3_000):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        samples.append(bytes(data[: rng.randint(0, len(data))]))
    decoded = 0
    for data in samples:
        try:
            msg = codec.decode(data)
        except DecodeError:
            continue
        decoded += 1
        # whatever decodes has the shape a worker relies on
        assert isinstance(msg.task, str) and msg.task
        assert isinstance(msg.args, tuple) and isinstance(msg.kwargs, dict)
        assert all(isinstance(k, str) for k in msg.kwargs)
        assert isinstance(msg.attempts, int) and msg.attempts >= 0
    assert decoded < len(samples)


def test_decoding_names_nothing_it_imports() -> None:
    """A payload naming a module is data: decoding it imports and runs nothing."""
    name = "tests.apps._never_imported_module"
    msg = codec.decode(envelope(t=name, a=["rm -rf /"]))
    assert msg.task == name
    assert name not in sys.modules


def test_a_first_delivery_keeps_every_field() -> None:
    """The decoder's fast path (no task id): enqueue time, attempts and bytes survive."""
    message = Message("t", (b"\x00raw", "text"), {"k": b"\xff"}, attempts=1,
                      enqueued_ms=1_700_000_000_123)
    decoded = codec.decode(codec.encode(message))
    assert decoded == message
    assert type(decoded.args[0]) is bytes and type(decoded.kwargs["k"]) is bytes


def test_the_largest_counts_and_times_in_range_decode() -> None:
    msg = codec.decode(envelope(n=codec.ATTEMPTS_MAX, e=2**53 - 1, s=-(2**53 - 1),
                                ex=2**53 - 1))
    assert (msg.attempts, msg.enqueued_ms, msg.scheduled_ms) == (2**31 - 1, 2**53 - 1,
                                                                 -(2**53 - 1))
    assert msg.options is not None and msg.options.expires_ms == 2**53 - 1


def test_absent_optional_fields_take_their_defaults() -> None:
    assert codec.decode(envelope(a=..., k=..., n=..., e=...)) == Message("app.task")


@pytest.mark.parametrize(("data", "error"), [
    (msgpack.packb([1]), "envelope is a list, not a map"),
    (envelope(v=2), "unsupported envelope version 2"),
    (envelope(t=""), "envelope has no task name"),
    (envelope(a="abc"), "envelope arguments are not a list"),
    (envelope(k={b"bytes": 1}), "envelope keyword arguments are not a map of names"),
    (envelope(n=-1), "envelope attempt count is not an integer from 0 to 2147483647"),
    (envelope(n=2**63), "envelope attempt count is not an integer from 0 to 2147483647"),
    (envelope(n=2**64 - 1), "envelope attempt count is not an integer from 0 to 2147483647"),
    (envelope(n=2**31), "envelope attempt count is not an integer from 0 to 2147483647"),
    (envelope(e="yesterday"), "envelope enqueue time is not a time in ms (an integer within "
                              "+-9007199254740991)"),
    (envelope(e=2**63), "envelope enqueue time is not a time in ms (an integer within "
                        "+-9007199254740991)"),
    (envelope(e=-(2**63)), "envelope enqueue time is not a time in ms (an integer within "
                           "+-9007199254740991)"),
    (envelope(s=2**64 - 1), "envelope periodic tick is not a time in ms (an integer within "
                            "+-9007199254740991)"),
    (envelope(ex=2**63), "envelope expiry is not a time in ms (an integer within "
                         "+-9007199254740991)"),
    (envelope(u="t:k", uf=2**60), "envelope unique_for is not a non-negative number of ms "
                                  "(an integer within +-9007199254740991)"),
    (envelope(ug=-(2**63)), "envelope 'ug' is not a time in ms (an integer within "
                            "+-9007199254740991)"),
    (envelope(i="nope"), "envelope task id 'nope' is not a taskq task id"),
    (b"\xc1", "not valid msgpack: a byte that starts no msgpack value (FormatError)"),
    (b"", "not valid msgpack: "),
])
def test_decode_errors_name_the_fault(data: bytes, error: str) -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode(data)
    assert str(info.value).startswith(error), str(info.value)
    assert error.endswith(": ") or str(info.value) == error
    assert not str(info.value).endswith(": "), "a reason after the colon"


def test_size_and_encode_errors_say_what_failed() -> None:
    with pytest.raises(DecodeError, match=r"^payload of 10 bytes exceeds 9$"):
        codec.decode(b"\x00" * 10, max_bytes=9)
    with pytest.raises(DecodeError, match=r"^cannot encode arguments of task 'mail': "):
        codec.encode(Message("mail", (object(),)))
