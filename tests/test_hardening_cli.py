"""Issue 12, CLI: poison data written by another producer (msgpack ``bin`` values, enqueue times
out of range, NaN results) is shown safely by ``taskq dead list/show`` and ``taskq task``,
never as a traceback."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import msgpack
from typer.testing import CliRunner

from taskq import TaskStatus
from taskq.cli import app
from taskq.records import bucket_key, encode_record
from tests.apps.cli_app import build

runner = CliRunner()


def strict_json(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


async def _poison(redis_url: str, prefix: str) -> str:
    tq = build(prefix, redis_url)
    try:
        keys = tq.keys("jobs")
        good = {"v": 1, "t": "add", "a": [], "k": {"a": 1, "b": 2}, "n": 0, "e": 0}
        await tq.redis.xadd(keys.dead, {"id": "jobs:1-0", "entry": "1-0", "task": "add",
                                        "reason": "max_attempts", "payload": msgpack.packb(good)})
        poison = {"v": 1, "t": "add", "a": [b"\xff\x00"], "k": {"b": b"\x80"}, "n": 0,
                  "e": 2**62}
        dead_id = await tq.redis.xadd(keys.dead, {
            "id": "jobs:2-0", "entry": "2-0", "task": "add", "reason": "invalid_args",
            "payload": msgpack.packb(poison, use_bin_type=True), "error": b"\xff\xfe",
            "enqueued_ms": str(2**62), "failed_ms": str(-(10**17))})
        record = encode_record(TaskStatus.DEAD, task="add", args=[b"\xff\x00"],
                               kwargs={"b": b"\x80"}, enqueued_ms=-(2**62),
                               finished_ms=2**62, error="invalid_args")
        await tq.redis.hset(bucket_key(keys, "jobs:2-0"), "jobs:2-0", record)
        result = encode_record(TaskStatus.SUCCEEDED, task="add", finished_ms=1,
                               result=[math.nan, math.inf])
        await tq.redis.hset(bucket_key(keys, "jobs:3-0"), "jobs:3-0", result)
        return str(dead_id.decode())
    finally:
        await tq.aclose()


def test_poison_data_is_shown_safely(redis_url: str, prefix: str) -> None:
    dead_id = asyncio.run(_poison(redis_url, prefix))

    def cli(*args: str) -> str:
        result = runner.invoke(app, ["--redis-url", redis_url, "--prefix", prefix, *args])
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            args, repr(result.exception))
        assert result.exit_code == 0, (args, result.output)
        assert "Traceback" not in result.output
        return result.stdout

    listed = cli("dead", "list", "jobs")
    assert "jobs:1-0" in listed and "jobs:2-0" in listed
    letters = strict_json(cli("dead", "list", "jobs", "--json"))["dead_letters"]
    assert {d["task_id"] for d in letters} == {"jobs:1-0", "jobs:2-0"}
    shown = cli("dead", "show", "jobs", dead_id)
    assert '{"$bytes": "/wA="}' in shown and "out of range" in shown
    letter = strict_json(cli("dead", "show", "jobs", dead_id, "--json"))
    assert letter["args"] == [{"$bytes": "/wA="}] and letter["kwargs"] == {"b": {"$bytes": "gA=="}}
    task = cli("task", "jobs:2-0")
    assert "out of range" in task and '{"$bytes": "gA=="}' in task
    record = strict_json(cli("task", "jobs:2-0", "--json"))
    assert record["args"] == [{"$bytes": "/wA="}]
    assert strict_json(cli("task", "jobs:3-0", "--json"))["result"] == [None, None]
