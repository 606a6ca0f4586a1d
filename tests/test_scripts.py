"""The Lua contract: every script a file under taskq/lua called through a keyword-only wrapper
(callers never know the KEYS/ARGV order), and no Lua anywhere else in the package."""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from taskq import TaskQueue, scripts
from taskq.deadletter import DeadEntry
from taskq.keys import QueueKeys
from taskq.records import TaskStatus
from taskq.scripts import (
    NAMES,
    WORKFLOW_PRELUDE,
    Completion,
    KeyHeld,
    Reclaimed,
    Scripts,
    SendItem,
    SyncScripts,
    _bucket,
    source,
)

PACKAGE = Path(__file__).resolve().parent.parent / "taskq"


def test_every_script_is_a_file_and_every_file_a_script() -> None:
    lua = resources.files("taskq") / "lua"
    files = {p.name[:-4] for p in lua.iterdir()
             if p.name.endswith(".lua") and not p.name.startswith("_")}  # (preludes)
    assert files == set(NAMES)


def test_no_lua_is_inline_in_the_package() -> None:
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if "redis.call(" in p.read_text() or ".eval(" in p.read_text()]
    assert offenders == []


@pytest.mark.parametrize("cls", [Scripts, SyncScripts])
def test_every_wrapper_takes_keyword_arguments_only(cls: type) -> None:
    # (names holding "mutmut" are mutmut's copies of the methods, during a mutation run)
    wrappers = [(name, f) for name, f in vars(cls).items()
                if inspect.isfunction(f) and not name.startswith("_") and name != "load"
                and "mutmut" not in name]
    assert wrappers
    for name, f in wrappers:
        params = list(inspect.signature(f).parameters.values())[1:]
        assert params, name
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params), name


def test_the_bucket_of_a_task_id_is_its_time() -> None:
    assert _bucket("default:1700000012345-0") == 170_000_001
    assert _bucket("a:b:1700000012345-7") == 170_000_001  # a queue name may hold ':'
    assert _bucket("jobs:1700000012345-d0a1b2") == 170_000_001  # a scheduled id
    assert _bucket("mail-out:1700000012345-0") == 170_000_001  # and a '-'
    assert _bucket("not an id") == 0


async def test_a_unique_key_is_released_only_while_it_holds_that_task(
    tq: TaskQueue,
) -> None:
    key = tq.keys("default").unique("send:k1")
    await tq.redis.set(key, "a\ndefault:1-0\nfp")
    await tq.scripts.unique_release(keys=tq.keys("default"), key="send:k1", task_id="default:2-0")
    assert await tq.redis.get(key) == b"a\ndefault:1-0\nfp"
    await tq.redis.set(key, "s\ndefault:1-0\nfp", px=60_000)  # kept after success: kept
    await tq.scripts.unique_release(keys=tq.keys("default"), key="send:k1", task_id="default:1-0")
    assert await tq.redis.exists(key) == 1
    await tq.redis.set(key, "a\ndefault:1-0\nfp")
    await tq.scripts.unique_release(keys=tq.keys("default"), key="send:k1", task_id="default:1-0")
    assert await tq.redis.exists(key) == 0


# -- what each wrapper passes (the KEYS/ARGV order of its script's header) and how it reads
# -- the answer, without Redis: ``_call`` is a stand-in ---------------------------------------


class Recorded:
    """Stands in for ``Scripts._call``: records (name, KEYS, ARGV), answers ``answer``."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[tuple[str, list[Any], list[Any]]] = []

    async def __call__(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        self.calls.append((name, list(keys), list(args)))
        return self.answer


def recorded(answer: Any) -> tuple[Scripts, Recorded]:
    """Scripts over a client that never connects, with ``_call`` recorded."""
    scripts = Scripts(Redis.from_url("redis://127.0.0.1:1/0"))
    call = Recorded(answer)
    scripts._call = call  # type: ignore[method-assign]
    return scripts, call


K = QueueKeys("p", "default")
TASK = "default:1700000012345-0"  # bucket 170_000_001
BUCKET = K.records(170_000_001)


def test_a_script_is_the_prelude_then_its_file() -> None:
    lua = resources.files("taskq") / "lua"
    workflow = (lua / "_workflow.lua").read_text() + "\n"
    for name in NAMES:
        assert source(name) == (lua / "_lib.lua").read_text() + "\n" + (
            workflow if name in WORKFLOW_PRELUDE else "") + (lua / f"{name}.lua").read_text()
    assert set(NAMES) > WORKFLOW_PRELUDE


async def test_enqueue_passes_the_limit_then_the_messages() -> None:
    scripts, call = recorded([1, 5, b"1-0", "2-0"])
    assert await scripts.enqueue(keys=K, payloads=[b"m1", b"m2"], limit=9) == (["1-0", "2-0"], 5)
    assert call.calls == [("enqueue", [K.stream], [9, b"m1", b"m2"])]
    call.answer = [0, 7]
    assert await scripts.enqueue(keys=K, payloads=[b"m1"], limit=7) == (None, 7)


async def test_schedule_passes_a_triple_per_message() -> None:
    scripts, call = recorded([1, 1_000, b"2000"])
    assert await scripts.schedule(keys=K, task_ids=["default:1-a", "default:2-b"],
                                  payloads=[b"m1", b"m2"], delay_ms=500, limit=4) == [1_000,
                                                                                     2_000]
    assert call.calls == [("schedule", [K.delayed, K.payloads, K.stream],
                           [4, "default:1-a", b"m1", 500, "default:2-b", b"m2", 500])]
    call.answer = [0, b"3"]
    assert await scripts.schedule(keys=K, task_ids=["default:1-a"], payloads=[b"m1"],
                                  delay_ms=500, limit=3) == 3
    with pytest.raises(ValueError):  # a message without its id is refused, not dropped
        await scripts.schedule(keys=K, task_ids=["default:1-a"], payloads=[b"m1", b"m2"],
                               delay_ms=0, limit=0)


async def test_probe_names_the_refused_command_or_none() -> None:
    scripts, call = recorded(b"the 'xadd' command on 'k'")
    assert await scripts.probe(keys=K) == "the 'xadd' command on 'k'"
    assert call.calls == [("probe", [K.stream, K.delayed, K.payloads], [])]
    call.answer = None
    assert await scripts.probe(keys=K) is None


async def test_cancel_passes_the_implied_entry_of_the_task() -> None:
    scripts, call = recorded(b"queued")
    assert await scripts.cancel(keys=K, task_id=TASK, record=b"r", ttl_ms=60) == "queued"
    call.answer = "delayed"
    assert await scripts.cancel(keys=K, task_id="default:1700000012345-d0a1", record=b"r",
                                ttl_ms=60) == "delayed"
    assert call.calls == [
        ("cancel", [K.stream, K.delayed, K.payloads, K.entries, K.cancels, BUCKET],
         ["taskq", TASK, "1700000012345-0", b"r", 60, K.events, b"", b""]),
        ("cancel", [K.stream, K.delayed, K.payloads, K.entries, K.cancels, BUCKET],
         ["taskq", "default:1700000012345-d0a1", "", b"r", 60, K.events, b"", b""])]


async def test_complete_passes_one_line_per_item_and_each_bucket_once() -> None:
    scripts, call = recorded([b"2-0"])
    items = [Completion("1-0", 1, TASK, TaskStatus.SUCCEEDED, b"r1", "c"),
             Completion("2-0", 3, "default:1700000099999-4", TaskStatus.CANCELLED, b"r2"),
             Completion("3-0", 2, "default:1700000012000-1", TaskStatus.DEAD, b"r3", "ce")]
    lost = await scripts.complete(keys=K, consumer="w1", items=items, ttl_ms=60,
                                  now_ms=1_700_000_123_456, scan=7)
    assert lost == ["2-0"]
    meta = ("1-0\t1\t1\tdefault:1700000012345-0\tsucceeded\tc\n"
            "2-0\t3\t2\tdefault:1700000099999-4\tcancelled\t\n"
            "3-0\t2\t1\tdefault:1700000012000-1\tdead\tce")
    assert call.calls == [
        ("complete", [K.stream, K.stats, K.done_minute(28_333_335), K.entries, K.cancels,
                      BUCKET, K.records(170_000_009)],
         ["taskq", "w1", 60, K.events, 7, meta, b"r1", b"r2", b"r3"])]


async def test_complete_takes_ids_of_another_form_item_by_item() -> None:
    scripts, call = recorded([])
    items = [Completion("1-0", 1, TASK, TaskStatus.SUCCEEDED, b"r1"),
             Completion("2-0", 1, "other:1700000099999-0", TaskStatus.SUCCEEDED, b"r2"),
             Completion("3-0", 1, "no id", TaskStatus.SUCCEEDED, b"r3"),
             Completion("4-0", 1, "default:1700000012000-1", TaskStatus.SUCCEEDED, b"r4")]
    assert await scripts.complete(keys=K, consumer="w1", items=items, ttl_ms=60, now_ms=0,
                                  scan=4) == []
    [(_, keys, args)] = call.calls
    assert keys[5:] == [BUCKET, K.records(170_000_009), K.records(0)]
    assert args[5] == ("1-0\t1\t1\tdefault:1700000012345-0\tsucceeded\t\n"
                       "2-0\t1\t2\tother:1700000099999-0\tsucceeded\t\n"
                       "3-0\t1\t3\tno id\tsucceeded\t\n"
                       "4-0\t1\t1\tdefault:1700000012000-1\tsucceeded\t")


async def test_complete_warns_when_redis_kept_lean_records(
        caplog: pytest.LogCaptureFixture) -> None:
    scripts, _ = recorded([b"2-0", b"lean:3"])
    items = [Completion("1-0", 1, TASK, TaskStatus.SUCCEEDED, b"r1")]
    with caplog.at_level(logging.WARNING, logger="taskq.scripts"):
        assert await scripts.complete(keys=K, consumer="w1", items=items, ttl_ms=60,
                                      now_ms=0, scan=1) == ["2-0"]
        scripts2, _ = recorded([b"lean-2-0"])  # an entry id is never taken for the marker
        assert await scripts2.complete(keys=K, consumer="w1", items=items, ttl_ms=60,
                                       now_ms=0, scan=1) == ["lean-2-0"]
        scripts3, _ = recorded([])
        assert await scripts3.complete(keys=K, consumer="w1", items=items, ttl_ms=60,
                                       now_ms=0, scan=1) == []
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "Redis is out of memory: 3 task records kept only their status "
                          "(no result, no error) so that finishing work frees memory")]


async def test_retry_passes_the_next_attempt_and_its_record() -> None:
    scripts, call = recorded(b"1700000013000")
    assert await scripts.retry(keys=K, consumer="w1", entry_id="1-0", deliveries=2,
                               task_id=TASK, payload=b"m", delay_ms=500, record=b"r",
                               ttl_ms=60) == 1_700_000_013_000
    assert call.calls == [
        ("retry", [K.stream, K.delayed, K.payloads, K.entries, BUCKET, K.stats],
         ["taskq", "w1", "1-0", 2, TASK, b"m", 500, b"r", 60, K.events])]


async def test_dead_passes_the_letter_as_field_value_pairs() -> None:
    scripts, call = recorded(b"9-0")
    letter = DeadEntry(task_id=TASK, entry="1-0", task="send", reason="max_attempts",
                       error_type="E", error="e", traceback="tb", attempts=3, enqueued_ms=5,
                       failed_ms=6, worker="w1", payload=b"m")
    assert await scripts.dead(keys=K, consumer="w1", entry_id="1-0", deliveries=2,
                              task_id=TASK, record=b"r", ttl_ms=60, dead_cap=100,
                              letter=letter) == "9-0"
    call.answer = 0
    assert await scripts.dead(keys=K, consumer="w1", entry_id="1-0", deliveries=None,
                              task_id=TASK, record=b"r", ttl_ms=60, dead_cap=0,
                              letter=letter) is None
    flat = ["id", TASK, "entry", "1-0", "task", "send", "reason", "max_attempts",
            "error_type", "E", "error", "e", "traceback", "tb", "attempts", 3, "enqueued_ms", 5,
            "failed_ms", 6, "worker", "w1", "payload", b"m"]
    dead_keys = [K.stream, K.dead, K.entries, BUCKET, K.stats, K.cancels]
    assert call.calls == [
        ("dead", dead_keys, ["taskq", "w1", "1-0", 2, TASK, b"r", 60, K.events, 100, *flat]),
        ("dead", dead_keys, ["taskq", "w1", "1-0", "", TASK, b"r", 60, K.events, 0, *flat])]


async def test_release_passes_the_message_back() -> None:
    scripts, call = recorded(b"7-0")
    assert await scripts.release(keys=K, consumer="w1", entry_id="1-0", deliveries=2,
                                 task_id=TASK, payload=b"m") == "7-0"
    assert call.calls == [("release", [K.stream, K.entries], ["taskq", "w1", "1-0", 2, TASK,
                                                             b"m"])]
    call.answer = 0
    assert await scripts.release(keys=K, consumer="w1", entry_id="1-0", deliveries=2,
                                 task_id=TASK, payload=b"m") is None


async def test_renew_scans_past_the_held_entries() -> None:
    scripts, call = recorded([b"2-0", "3-0"])
    assert await scripts.renew(keys=K, consumer="w1", entry_ids=["1-0", "2-0", "3-0"]) == [
        "2-0", "3-0"]
    assert call.calls == [("renew", [K.stream], ["taskq", "w1", 67, "1-0", "2-0", "3-0"])]


async def test_reclaim_reads_triples_and_the_missing_count() -> None:
    scripts, call = recorded([b"5-0", [b"1-0", b"m1", 2, b"2-0", None, 1, "3-0", b"", 3], 4])
    assert await scripts.reclaim(keys=K, consumer="w1", min_idle_ms=1_500, cursor="0-0",
                                 count=10, rounds=2, dead_cap=50) == (
        "5-0", [Reclaimed("1-0", b"m1", 2), Reclaimed("2-0", b"", 1), Reclaimed("3-0", b"", 3)],
        4)
    assert call.calls == [("reclaim", [K.stream, K.dead, K.stats],
                           ["taskq", "w1", 1_500, "0-0", 10, 2, "default", 50])]


async def test_promote_purge_forget_and_replay_pass_their_arguments() -> None:
    scripts, call = recorded([b"2", 1])
    assert await scripts.promote(keys=K, count=10) == (2, 1)
    call.answer = [2, 1, 1]
    assert await scripts.purge(keys=K, entries=[("1-0", TASK, "job:k"), ("2-0", "d:2-0", None)],
                               delayed=[("d:3-d1", "job:k"), ("d:4-d2", None)]) == (2, 1, 1)
    call.answer = 1
    assert await scripts.forget_consumer(keys=K, consumer="w1") is True
    call.answer = b"8-0"
    assert await scripts.replay(keys=K, dead_id="9-0", payload=b"m", task_id=TASK) == "8-0"
    call.answer = 0
    assert await scripts.forget_consumer(keys=K, consumer="w1") is False
    call.answer = None
    assert await scripts.replay(keys=K, dead_id="9-0", payload=b"m", task_id=TASK) is None
    replay = ("replay", [K.dead, K.stream, K.entries, BUCKET], ["9-0", b"m", TASK])
    forget = ("forget_consumer", [K.stream], ["taskq", "w1"])
    assert call.calls == [
        ("promote", [K.delayed, K.payloads, K.entries, K.stream, K.stats], [10]),
        ("purge", [K.stream, K.delayed, K.payloads, K.entries, K.stats, K.unique("job:k")],
         ["taskq", K.queue, 2, "1-0", TASK, 6, "2-0", "d:2-0", 0, "d:3-d1", 6, "d:4-d2", 0]),
        forget, replay, forget, replay]


def _lanes(prefix: str, queue: str) -> list[str]:
    out = []
    for q in (f"{queue}!high", queue, f"{queue}!low"):
        k = QueueKeys(prefix, q)
        out += (k.stream, k.delayed, k.entries)
    return out


async def test_replay_with_a_unique_key_passes_the_key_and_every_lane() -> None:
    scripts, call = recorded([b"default!high:5-0", b"s"])
    r = await scripts.replay(keys=K, dead_id="9-0", payload=b"m", task_id=TASK, unique="job:k")
    assert r == KeyHeld("default!high:5-0", kept=True)
    assert call.calls == [("replay", [K.dead, K.stream, K.entries, BUCKET, K.unique("job:k"),
                                      *_lanes("p", "default")],
                           ["9-0", b"m", TASK, "default!high", "default", "default!low"])]


async def test_a_lanes_unique_keys_are_its_queues() -> None:
    high = QueueKeys("p", "default!high")
    assert high.unique("job:k") == K.unique("job:k") == "{p:default}:uniq:job:k"
    scripts, call = recorded([1, "default!high:1-0", 0, 0, ""])
    await scripts.enqueue_with(keys=high, items=[SendItem(b"m", "job:k", "", "")], limit=0)
    ((_, keys, args),) = call.calls
    assert keys == [high.stream, high.delayed, high.payloads, high.entries,
                    *_lanes("p", "default"), K.unique("job:k")]
    assert args == [0, "default!high", "default!high", "default", "default!low",
                    14, "", b"m", "", ""]


async def test_unique_release_passes_the_key_and_task_id() -> None:
    scripts, call = recorded(1)
    await scripts.unique_release(keys=K, key="job:k", task_id=TASK)
    assert call.calls == [("unique_release", [K.unique("job:k")], [TASK])]


def test_the_sync_scripts_pass_what_the_async_ones_do() -> None:
    scripts = SyncScripts(SyncRedis.from_url("redis://127.0.0.1:1/0"))
    calls: list[tuple[str, list[Any], list[Any]]] = []

    def stand_in(name: str, answer: Any) -> Any:
        def call(keys: list[Any], args: list[Any]) -> Any:
            calls.append((name, keys, args))
            return answer
        return call

    scripts._enqueue = stand_in("enqueue", [1, -1, b"1-0"])  # type: ignore[assignment]
    scripts._schedule = stand_in("schedule", [1, 1_500])  # type: ignore[assignment]
    assert scripts.enqueue(keys=K, payloads=[b"m1"], limit=0) == (["1-0"], -1)
    assert scripts.schedule(keys=K, task_ids=["default:1-a"], payloads=[b"m1"], delay_ms=500,
                            limit=2) == [1_500]
    assert calls == [("enqueue", [K.stream], [0, b"m1"]),
                     ("schedule", [K.delayed, K.payloads, K.stream],
                      [2, "default:1-a", b"m1", 500])]


class FakeLane:
    """Stands in for a Lane: answers each command from ``answers`` (raising exceptions)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.commands: list[tuple[Any, ...]] = []

    async def execute(self, *args: Any) -> Any:
        self.commands.append(args)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def laned(lane: FakeLane) -> Scripts:
    return Scripts(Redis.from_url("redis://127.0.0.1:1/0"), lane)  # type: ignore[arg-type]


async def test_a_lane_runs_each_script_by_its_sha() -> None:
    lane = FakeLane(b"7-0")
    scripts = laned(lane)
    sha = hashlib.sha1(source("release").encode()).hexdigest()
    assert await scripts.release(keys=K, consumer="w1", entry_id="1-0", deliveries=2,
                                 task_id=TASK, payload=b"m") == "7-0"
    assert lane.commands == [("EVALSHA", sha, 2, K.stream, K.entries, "taskq", "w1", "1-0", 2,
                              TASK, b"m")]


async def test_a_lane_loads_a_script_redis_does_not_have_and_calls_it_again() -> None:
    lane = FakeLane(ResponseError("NOSCRIPT No matching script."), b"ok", [1, 2])
    scripts = laned(lane)
    sha = hashlib.sha1(source("promote").encode()).hexdigest()
    assert await scripts.promote(keys=K, count=3) == (1, 2)
    evalsha = ("EVALSHA", sha, 5, K.delayed, K.payloads, K.entries, K.stream, K.stats, 3)
    assert lane.commands == [evalsha, ("SCRIPT", "LOAD", source("promote")), evalsha]


async def test_a_lane_raises_other_errors_of_a_script() -> None:
    lane = FakeLane(ResponseError("ERR wrong number of arguments"))
    with pytest.raises(ResponseError, match="wrong number"):
        await laned(lane).promote(keys=K, count=3)
    assert len(lane.commands) == 1
    lane = FakeLane(ResponseError("ERR NOSCRIPT is not at the start"))
    with pytest.raises(ResponseError):
        await laned(lane).promote(keys=K, count=3)
    assert len(lane.commands) == 1


# -- against Redis ---------------------------------------------------------------------------


async def test_load_loads_every_script_under_its_sha(tq: TaskQueue) -> None:
    scripts = Scripts(tq.redis)  # no lane: redis-py's Script objects
    for script in scripts._s.values():
        script.sha = ""
    await scripts.load()
    shas = [hashlib.sha1(source(n).encode()).hexdigest() for n in NAMES]
    assert [scripts._s[n].sha for n in NAMES] == shas
    assert await tq.redis.script_exists(*shas) == [True] * len(NAMES)


async def test_scripts_without_a_lane_run_through_redis_py(tq: TaskQueue) -> None:
    scripts = Scripts(tq.redis)
    keys = tq.keys("default")
    added, length = await scripts.enqueue(keys=keys, payloads=[b"m1", b"m2"], limit=10)
    assert length == 2 and added is not None and len(added) == 2
    assert [e.decode() for e, _ in await tq.redis.xrange(keys.stream)] == added


def test_the_sync_scripts_run_against_redis(tq: TaskQueue, redis_url: str) -> None:
    client = SyncRedis.from_url(redis_url)
    try:
        scripts = SyncScripts(client)
        keys = tq.keys("default")
        added, length = scripts.enqueue(keys=keys, payloads=[b"m1"], limit=0)
        assert length == -1 and added is not None
        assert [e.decode() for e, _ in client.xrange(keys.stream)] == added
        [due] = scripts.schedule(keys=keys, task_ids=["default:1-a"], payloads=[b"m2"],
                                 delay_ms=60_000, limit=0)
        assert client.zscore(keys.delayed, "default:1-a") == due
        assert client.hget(keys.payloads, "default:1-a") == b"m2"
    finally:
        client.close()


def test_lane_keys_cache_is_bounded() -> None:
    """An API taking arbitrary queue names must not grow the cache of lane keys without end."""
    for i in range(scripts.LANE_KEYS_CACHED + 50):
        scripts.lane_keys("bounded", f"q{i}")
    assert scripts.lane_keys.cache_info().currsize <= scripts.LANE_KEYS_CACHED
    names, keys = scripts.lane_keys("bounded", "q0")
    assert names[1] == "q0" and len(keys) == 3 * len(names)
