"""Static typing of enqueue: ``mypy --strict`` sees a task's signature through ``enqueue``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

HEADER = '''\
from taskq import TaskContext, TaskHandle, TaskQueue, TaskStatus
from taskq.workflow import Step, Workflow, chain, start

tq = TaskQueue(prefix="typing")


@tq.task
async def send_email(to: str, subject: str = "") -> bool:
    return True


@tq.task(max_attempts=2)
def resize(width: int) -> int:
    return width


@tq.task
async def report(ctx: TaskContext, month: str) -> int:
    await ctx.progress(0.5)
    return len(month)
'''

GOOD = HEADER + '''

async def main() -> None:
    handle: TaskHandle[bool] = await send_email.enqueue(to="a@b.c", subject="hi")
    sent: bool = await handle.result()
    await send_email.with_options(delay=5).enqueue(to="a@b.c")
    size: int = resize.enqueue_sync(3).result(timeout=5)
    state: TaskStatus = resize.enqueue_sync(3).status().status
    outcome: str = resize.enqueue_sync(3).cancel()
    send_email.message(to="x")
    days: int = await (await report.enqueue("2024-01")).result()
    await report.enqueue(month="2024-01")
    report.message("2024-01")
    to_step: Step[str, bool] = send_email.step(subject="x")
    month_step: Step[str, int] = report.step()
    wf: Workflow = await start(tq, chain(resize.message(3), resize.step(), to_step))
    tq.schedule(send_email.message(to="ops@x"), cron="0 6 * * *", timezone="Europe/Berlin",
                name="daily", catch_up="skip")
    print(sent, size, state, outcome, days, month_step, wf)
'''

# each bad line is tagged with the error code mypy must report on it
BAD = HEADER + '''

async def main() -> None:
    await send_email.enqueue(to=1)  # E: arg-type
    await send_email.enqueue()  # E: call-arg
    await send_email.enqueue(too="a@b.c")  # E: call-arg
    await resize.with_options(delay=1).enqueue(width="wide")  # E: arg-type
    resize.enqueue_sync(1, 2)  # E: call-arg
    send_email.message(to=b"x")  # E: arg-type
    wrong: str = await (await resize.enqueue(2)).result()  # E: assignment
    also_wrong: str = resize.enqueue_sync(2).result()  # E: assignment
    await report.enqueue(month=1)  # E: arg-type
    await report.enqueue("2024-01", "extra")  # E: call-arg
    report.enqueue_sync()  # E: call-arg
    send_email.step(subject=1)  # E: arg-type
    resize.step(1)  # E: call-arg
    tq.schedule(send_email.message(to=1), every=30)  # E: arg-type
    tq.schedule(resize.message(2), every=30, catch_up="never")  # E: arg-type
    print(wrong, also_wrong)
'''


def run_mypy(tmp_path: Path, *files: str) -> tuple[int, str]:
    config = tmp_path / "mypy.ini"
    # the project's own override: msgpack ships no type information
    config.write_text("[mypy]\nstrict = True\n\n[mypy-msgpack.*]\nignore_missing_imports = True\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config),
         "--cache-dir", str(tmp_path / ".mypy_cache"), *files],
        cwd=tmp_path, env={**os.environ, "MYPYPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120, check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_mypy_strict_checks_enqueue_arguments(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "bad.py").write_text(BAD)
    code, out = run_mypy(tmp_path, "good.py", "bad.py")
    assert code == 1, out
    assert "good.py" not in out, out
    expected = {
        (n, m.group(1))
        for n, line in enumerate(BAD.splitlines(), 1)
        if (m := re.search(r"# E: (\S+)", line))
    }
    reported = {
        (int(m.group(1)), m.group(2))
        for m in re.finditer(r"^bad\.py:(\d+): error: .*\[([\w-]+)\]$", out, re.MULTILINE)
    }
    assert reported == expected, out


def test_mypy_strict_accepts_correct_calls(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text(GOOD)
    code, out = run_mypy(tmp_path, "good.py")
    assert code == 0, out
