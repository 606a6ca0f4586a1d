"""Issue 12, CLI: poison data written by another producer (msgpack ``bin`` values, enqueue times
out of range, NaN results) is shown safely by ``taskq dead list/show`` and ``taskq task``,
never as a traceback."""

from __future__ import annotations

import asyncio
import json
import math
import re
from typing import Any

import msgpack
from typer.testing import CliRunner

from taskq import TaskStatus
from taskq.cli import app, common
from taskq.cli.visible import visible
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
                  "e": 2**53 - 1}  # (the largest enqueue time a message may carry)
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


# -- security review, finding 4: terminal control sequences from task text ----------------

HOSTILE = "FAKE \x1b]0;TITLEPWN\x07\x1b[2J\x1b[1;1HCLEARED \x1b]8;;http://evil.example\x1b\\link" \
          "\x1b]8;;\x1b\\ \rover \x9b31m \u202eevil\u202c [bold red]markup[/bold red]"
HOSTILE_ARG = "arg\x1b[2Jcleared\x1b]0;T\x07"


async def _hostile(redis_url: str, prefix: str) -> str:
    tq = build(prefix, redis_url)
    try:
        keys = tq.keys("jobs")
        payload = {"v": 1, "t": "add\x1b[2J", "a": [HOSTILE_ARG], "k": {"b": HOSTILE_ARG},
                   "n": 0, "e": 0}
        dead_id = await tq.redis.xadd(keys.dead, {
            "id": "jobs:9-0", "entry": "9-0", "task": "add\x1b[2J", "reason": "max_attempts",
            "error_type": "RuntimeError", "error": HOSTILE, "worker": "w\x1b]0;W\x07",
            "traceback": f"Traceback (most recent call last):\n  File x\nRuntimeError: {HOSTILE}\n",
            "payload": msgpack.packb(payload), "attempts": "1", "failed_ms": "1"})
        record = encode_record(TaskStatus.DEAD, task="add\x1b[2J", args=[HOSTILE_ARG],
                               kwargs={"b": HOSTILE_ARG}, finished_ms=1, error=HOSTILE,
                               error_type="RuntimeError", worker="w\x1b]0;W\x07",
                               traceback=f"Traceback:\n  File x\nRuntimeError: {HOSTILE}\n")
        await tq.redis.hset(bucket_key(keys, "jobs:9-0"), "jobs:9-0", record)
        return str(dead_id.decode())
    finally:
        await tq.aclose()


def test_task_text_never_reaches_the_terminal_raw(redis_url: str, prefix: str,
                                                  monkeypatch: Any) -> None:
    dead_id = asyncio.run(_hostile(redis_url, prefix))
    monkeypatch.setattr(common.out, "_force_terminal", True)  # as on a TTY: styles on
    monkeypatch.setenv("COLUMNS", "400")

    def cli(*args: str) -> str:
        result = runner.invoke(app, ["--redis-url", redis_url, "--prefix", prefix, *args])
        assert result.exit_code == 0, (args, result.output)
        return result.stdout

    for args in (("task", "jobs:9-0"), ("task", "jobs:9-0", "--full"),
                 ("dead", "list", "jobs"), ("dead", "show", "jobs", dead_id),
                 ("queue", "jobs")):
        shown = cli(*args)
        # only the CLI's own styles (CSI ... m) may reach the terminal: no OSC, no clear
        # screen, no cursor move, no carriage return, no 8-bit CSI, no bidi override
        leftover = re.sub(r"\x1b\[[0-9;]*m", "", shown)
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", leftover), (
            args, [c for c in leftover if ord(c) < 32 and c != "\n"][:5], shown[:2000])
        assert "\\x1b" in shown, (args, shown)  # the escapes are shown, visibly
    shown = cli("task", "jobs:9-0", "--full")
    plain = re.sub(r"\x1b\[[0-9;]*m", "", shown)
    assert "\\x1b]0;TITLEPWN\\x07\\x1b[2J" in plain and "\\u202eevil" in plain
    assert "[bold red]markup[/bold red]" in plain  # shown as written, not as markup
    assert "traceback" in plain and "\\x0dover" in plain


def test_visible() -> None:
    assert visible("a\x1b[2Jb\tc\nd\re\x00\x7f\x9b\u202e\u2028") == (
        "a\\x1b[2Jb\tc\nd\\x0de\\x00\\x7f\\x9b\\u202e\\u2028")
    assert visible("plain, ünïcode ✓ 中文") == "plain, ünïcode ✓ 中文"
