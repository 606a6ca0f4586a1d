"""The Lua contract: every script a file under taskq/lua called through a keyword-only wrapper
(callers never know the KEYS/ARGV order), and no Lua anywhere else in the package."""

from __future__ import annotations

import inspect
from importlib import resources
from pathlib import Path

import pytest

from taskq import TaskQueue
from taskq.scripts import NAMES, Scripts, SyncScripts, _bucket

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
    wrappers = [(name, f) for name, f in vars(cls).items()
                if inspect.isfunction(f) and not name.startswith("_") and name != "load"]
    assert wrappers
    for name, f in wrappers:
        params = list(inspect.signature(f).parameters.values())[1:]
        assert params, name
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params), name


def test_the_bucket_of_a_task_id_is_its_time() -> None:
    assert _bucket("default:1700000012345-0") == 170_000_001
    assert _bucket("a:b:1700000012345-7") == 170_000_001  # a queue name may hold ':'
    assert _bucket("jobs:1700000012345-d0a1b2") == 170_000_001  # a scheduled id
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
