"""One worker process: signals, logging, and the worker's event loop.

SIGTERM or SIGINT: stop reading, let running tasks finish within the grace period, hand back
the rest, exit 0. A second signal exits at once (code 1); what it held returns after its lease.
A signal within :data:`SAME_STOP_S` of the first is the same stop, not a second one (one
Ctrl-C, or a service manager signalling every process of the service, may deliver it twice).
A process started by the supervisor (``--processes N``) ignores SIGINT: a Ctrl-C in the
terminal reaches the supervisor too, which sends each child one SIGTERM.
The shutdown is bounded: a process still running :func:`shutdown_limit_s` after the signal
logs where it is stuck and exits (code 1).
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass

from taskq.cancelling import bounded, stack_of
from taskq.errors import ConfigError
from taskq.queue import TaskQueue
from taskq.worker import orphan
from taskq.worker.config import WorkerConfig
from taskq.worker.context import OnTransition
from taskq.worker.core import READER_STOP_S, Worker
from taskq.worker.metrics import MetricsServer, serve_metrics

log = logging.getLogger(__name__)

EXIT_CONFIG = 78
"""Exit code of a worker that cannot run with this configuration (the supervisor stops)."""
CONFIG_FAILURE_ENV = "TASKQ_CONFIG_FAILURE_FILE"
"""Set by the supervisor for each child: the file in which the child writes why it cannot run
with this configuration before exiting with :data:`EXIT_CONFIG`. The supervisor stops only
when the file says so: an exit code alone could come from task code (``os._exit(78)``)."""
SHUTDOWN_TAIL_S = 15.0
"""How long a stopped worker may take after its grace period (hand back, last acks, unregister,
close): the steps are each bounded and take milliseconds when Redis answers; past this, the
process logs what is stuck and exits (code 1)."""
CLOSE_S = 2.0
SAME_STOP_S = 1.0
"""A stop signal this soon after the first is the same stop (not "signal again to exit now")."""
SUPERVISED_ENV = "TASKQ_SUPERVISED"
"""Set to 1 by the supervisor for its children: they ignore SIGINT and follow its SIGTERM."""


def run_worker(app: TaskQueue, config: WorkerConfig,
               metrics_at: tuple[str, int] | None = None, *,
               on_transition: OnTransition | None = None) -> int:
    """Run one worker until it is stopped; uses uvloop when it is installed (faster loop).
    ``metrics_at``: (host, port) to serve Prometheus metrics on (:mod:`taskq.worker.metrics`).
    ``on_transition``: the worker's transition hook (the fault suite's crash points).

    A sync task still running in a thread after the grace period was handed back already; the
    process then exits without waiting for that thread (which Python would otherwise join)."""
    report_to = os.environ.pop(CONFIG_FAILURE_ENV, None)  # (not seen by task code after this)
    ended = _run(app, config, metrics_at, on_transition)
    if ended.code == EXIT_CONFIG and report_to:
        _report_config_failure(report_to, ended.why)
    if ended.busy:
        log.warning("exiting with %d sync tasks still running in threads or processes (already "
                    "handed back)", ended.busy)
        logging.shutdown()
        os._exit(ended.code)
    return ended.code


def _report_config_failure(path: str, why: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(why)
    except OSError as exc:
        log.error("cannot tell the supervisor (%s): %s", path, exc)


@dataclass(frozen=True, slots=True)
class _Ended:
    code: int
    busy: int  # sync and cpu_bound calls still running in the worker's pools
    why: str = ""  # with EXIT_CONFIG: what is wrong with the configuration


def _run(app: TaskQueue, config: WorkerConfig, metrics_at: tuple[str, int] | None,
         on_transition: OnTransition | None) -> _Ended:
    # The app, its imports and the libraries are loaded: keep the cyclic GC from walking them
    # on every full collection (shorter pauses, steadier latency).
    gc.collect()
    gc.freeze()
    if os.environ.get("TASKQ_UVLOOP", "1") != "0":
        try:
            import uvloop  # noqa: PLC0415 - optional speed-up

            return uvloop.run(_main(app, config, metrics_at, on_transition))
        except ImportError:
            pass
    return asyncio.run(_main(app, config, metrics_at, on_transition))


async def _main(app: TaskQueue, config: WorkerConfig, metrics_at: tuple[str, int] | None,
                on_transition: OnTransition | None) -> _Ended:
    worker = Worker(app, config, on_transition=on_transition)
    metrics: MetricsServer | None = None
    if metrics_at is not None:
        try:
            metrics = serve_metrics(worker, *metrics_at)
        except OSError as exc:
            log.error("cannot serve metrics on %s:%d: %s", *metrics_at, exc)
            await app.aclose()
            return _Ended(EXIT_CONFIG, 0, f"cannot serve metrics on {metrics_at[0]}:"
                                          f"{metrics_at[1]}: {exc}")
    loop = asyncio.get_running_loop()
    first_at: float | None = None

    def on_signal(signum: int) -> None:
        nonlocal first_at
        now = time.monotonic()
        if first_at is None:
            first_at = now
            log.info("%s: finishing running tasks (up to %.0f s); signal again to exit now",
                     signal.Signals(signum).name, config.grace_s)
            worker.stop()
            _watchdog(loop, shutdown_limit_s(config))
        elif now - first_at < SAME_STOP_S:
            log.info("%s again within %.0f s: the same stop", signal.Signals(signum).name,
                     SAME_STOP_S)
        else:
            log.warning("second signal: exiting now")
            worker.executors.kill_processes()  # (they ignore the signals: see execution.py)
            os._exit(1)

    supervised = os.environ.pop(SUPERVISED_ENV, "") == "1"
    if supervised:  # the terminal's Ctrl-C: the supervisor sends SIGTERM
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM,) if supervised else (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    if supervised:  # a supervisor killed outright (SIGKILL, OOM) leaves no orphan consuming
        orphan.signal_on_parent_death(signal.SIGTERM)
    code, why = 0, ""
    try:
        await worker.run()
    except ConfigError as exc:
        log.error("cannot run: %s", exc)
        code, why = EXIT_CONFIG, str(exc)
    finally:
        if metrics is not None:
            metrics.close()
        await bounded(app.aclose(), timeout_s=CLOSE_S, what="closing the Redis connections")
    return _Ended(code, worker.executors.busy, why)


def shutdown_limit_s(config: WorkerConfig) -> float:
    """The longest a stopped worker takes to exit: its last read, the grace period, and a
    bounded time for the steps after it (see :mod:`taskq.worker.core`)."""
    return config.block_ms / 1000 + READER_STOP_S + config.grace_s + SHUTDOWN_TAIL_S


def _watchdog(loop: asyncio.AbstractEventLoop, limit_s: float) -> None:
    """Exit the process (code 1) if it is still running ``limit_s`` from now, after logging
    where every thread and asyncio task is stuck: the last resort of a bounded shutdown (a
    thread, so that it fires even when the event loop is blocked)."""

    def overdue() -> None:
        log.error("shutdown overdue (%.0f s): exiting now; what it held returns after its "
                  "lease. Stuck tasks:\n%s", limit_s, _stacks(loop))
        faulthandler.dump_traceback(all_threads=True)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(limit_s, overdue)
    timer.daemon = True
    timer.name = "taskq-shutdown-watchdog"
    timer.start()


def _stacks(loop: asyncio.AbstractEventLoop) -> str:
    try:
        tasks = list(asyncio.all_tasks(loop))
    except RuntimeError:  # the set changed under us (another thread): best effort
        return "(not available)"
    return "\n".join(stack_of(t) for t in tasks)
