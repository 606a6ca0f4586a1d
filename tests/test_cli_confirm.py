"""Issue 12, CLI: a destructive command without --yes asks only a terminal. With stdin a pipe
(silent, or saying "y"), a file or nothing, it refuses at once, exit 1, and changes nothing;
at a real terminal (a pty) the answer counts."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from typer.testing import CliRunner

from taskq import TaskQueue, admin, codec
from taskq.cli import app

runner = CliRunner()
TASKQ = [sys.executable, "-c", "from taskq.cli import main; main()"]
REFUSED = "refusing without a terminal"


def seed(on_redis: Callable[..., Any]) -> tuple[list[str], str]:
    """Three waiting tasks and one dead letter in queue ``jobs``: (task ids, dead id)."""
    async def fn(tq: TaskQueue) -> tuple[list[str], str]:
        add = tq.get_task("add")
        assert add is not None
        handles = await tq.enqueue_many([add.message(i, 1) for i in range(3)])
        payload = codec.encode(add.message(9, 9).with_attempts(1, "jobs:1000-0"))
        dead_id = await tq.redis.xadd(tq.keys("jobs").dead, {
            "id": "jobs:1000-0", "entry": "1000-0", "task": "add", "reason": "max_attempts",
            "error_type": "RuntimeError", "error": "boom", "attempts": 1, "payload": payload})
        return [h.id for h in handles], dead_id.decode()
    result: tuple[list[str], str] = on_redis(fn)
    return result


def counts(on_redis: Callable[..., Any]) -> tuple[int, int]:
    async def fn(tq: TaskQueue) -> tuple[int, int]:
        info = await admin.queue_info(tq, "jobs")
        return info.lag, info.dead
    result: tuple[int, int] = on_redis(fn)
    return result


def env(redis_url: str, prefix: str) -> dict[str, str]:
    return {**os.environ, "TASKQ_REDIS_URL": redis_url, "TASKQ_PREFIX": prefix}


def test_a_silent_pipe_is_refused_at_once(redis_url: str, prefix: str,
                                          on_redis: Callable[..., Any]) -> None:
    seed(on_redis)
    proc = subprocess.Popen([*TASKQ, "purge", "jobs"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env(redis_url, prefix))
    try:  # the pipe stays open and silent: before the fix, this waited for an answer forever
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, (out, err)
    assert REFUSED in err.decode() and "--yes" in err.decode()
    assert len(err.decode().splitlines()) == 1
    assert counts(on_redis) == (3, 1)


def test_yes_piped_in_is_not_a_confirmation(redis_url: str, prefix: str,
                                            on_redis: Callable[..., Any]) -> None:
    seed(on_redis)
    for stdin in ("y\n", "yes\n"):  # `echo y | taskq purge jobs`
        done = subprocess.run([*TASKQ, "purge", "jobs"], input=stdin.encode(), check=False,
                              capture_output=True, env=env(redis_url, prefix), timeout=60)
        assert done.returncode == 1, done
        assert REFUSED in done.stderr.decode()
    done = subprocess.run([*TASKQ, "purge", "jobs"], stdin=subprocess.DEVNULL, check=False,
                          capture_output=True, env=env(redis_url, prefix), timeout=60)
    assert done.returncode == 1 and REFUSED in done.stderr.decode()
    assert counts(on_redis) == (3, 1)


def test_every_confirmation_refuses_without_a_terminal(redis_url: str, prefix: str,
                                                       on_redis: Callable[..., Any]) -> None:
    ids, dead_id = seed(on_redis)
    for args in (["purge", "jobs"], ["cancel", ids[0]], ["dead", "purge", "jobs", "--all"],
                 ["dead", "purge", "jobs", dead_id], ["dead", "replay", "jobs", "--all"],
                 ["dead", "replay", "jobs", dead_id], ["dead", "purge", "jobs", "--task", "add"]):
        result = runner.invoke(app, ["--redis-url", redis_url, "--prefix", prefix, *args],
                               input="y\n")
        assert result.exit_code == 1, (args, result.output)
        assert REFUSED in result.stderr and "nothing was changed" in result.stderr, args
    assert counts(on_redis) == (3, 1)
    done = runner.invoke(app, ["--redis-url", redis_url, "--prefix", prefix, "dead", "purge",
                               "jobs", "--all", "--yes"])
    assert done.exit_code == 0 and counts(on_redis) == (3, 0)


def _at_a_terminal(args: list[str], answer: bytes, redis_url: str,
                   prefix: str) -> tuple[int, str]:
    """Run ``taskq args`` with a pty as stdin, answer the question; (exit code, stdout)."""
    main_fd, child_fd = pty.openpty()
    try:
        with subprocess.Popen([*TASKQ, *args], stdin=child_fd, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=env(redis_url, prefix)) as proc:
            os.close(child_fd)
            child_fd = -1
            os.write(main_fd, answer)
            try:
                out, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
        return proc.returncode, out.decode()
    finally:
        os.close(main_fd)
        if child_fd >= 0:
            os.close(child_fd)


def test_at_a_terminal_the_answer_counts(redis_url: str, prefix: str,
                                         on_redis: Callable[..., Any]) -> None:
    seed(on_redis)
    code, output = _at_a_terminal(["purge", "jobs"], b"n\n", redis_url, prefix)
    assert code == 1 and "declined" in output and counts(on_redis) == (3, 1)
    code, output = _at_a_terminal(["purge", "jobs"], b"y\n", redis_url, prefix)
    assert code == 0, output
    assert "purged 3 waiting tasks" in output and counts(on_redis) == (0, 1)
