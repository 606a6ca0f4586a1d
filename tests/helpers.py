"""Test helpers: polling with a deadline (never fixed sleeps), worker processes, key cleanup."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0,
                     interval: float = 0.02, what: str = "condition") -> Any:
    """Poll ``check`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s (last: {value!r})")
        await asyncio.sleep(interval)


def wait_sync(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
              what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s (last: {value!r})")
        time.sleep(interval)


class WorkerProcess:
    """A real ``python -m worker`` subprocess, killed at teardown if still running."""

    def __init__(self, app: str, env: dict[str, str], *args: str, log: Path | None = None) -> None:
        self.log_path = log
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker", app, *args],
            cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if log:
            out.close()  # type: ignore[union-attr]  # the child holds its own descriptor
        self.exit_expected = False  # set by signal/kill/wait: the test is ending it itself

    def expect_exit(self) -> None:
        """The test expects this process to end on its own: its exit is not a crash."""
        self.exit_expected = True

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int) -> None:
        self.exit_expected = True
        self.proc.send_signal(sig)

    def kill(self) -> None:
        self.exit_expected = True
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def wait(self, timeout: float) -> int:
        self.exit_expected = True
        return self.proc.wait(timeout)

    def output(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""
