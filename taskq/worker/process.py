"""One worker process: signals, logging, and the worker's event loop.

SIGTERM or SIGINT: stop reading, let running tasks finish within the grace period, hand back
the rest, exit 0. A second signal exits at once (code 1); what it held returns after its lease.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import threading

from taskq.errors import ConfigError
from taskq.queue import TaskQueue
from taskq.worker.config import WorkerConfig
from taskq.worker.context import OnTransition
from taskq.worker.core import Worker
from taskq.worker.metrics import MetricsServer, serve_metrics

log = logging.getLogger(__name__)

EXIT_CONFIG = 78
"""Exit code of a worker that cannot run with this configuration (the supervisor stops)."""


def run_worker(app: TaskQueue, config: WorkerConfig,
               metrics_at: tuple[str, int] | None = None, *,
               on_transition: OnTransition | None = None) -> int:
    """Run one worker until it is stopped; uses uvloop when it is installed (faster loop).
    ``metrics_at``: (host, port) to serve Prometheus metrics on (:mod:`taskq.worker.metrics`).
    ``on_transition``: the worker's transition hook (the fault suite's crash points).

    A sync task still running in a thread after the grace period was handed back already; the
    process then exits without waiting for that thread (which Python would otherwise join)."""
    code = _run(app, config, metrics_at, on_transition)
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        log.warning("exiting with sync tasks still running in threads (already handed back)")
        logging.shutdown()
        os._exit(code)
    return code


def _run(app: TaskQueue, config: WorkerConfig, metrics_at: tuple[str, int] | None,
         on_transition: OnTransition | None) -> int:
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
                on_transition: OnTransition | None) -> int:
    worker = Worker(app, config, on_transition=on_transition)
    metrics: MetricsServer | None = None
    if metrics_at is not None:
        try:
            metrics = serve_metrics(worker, *metrics_at)
        except OSError as exc:
            log.error("cannot serve metrics on %s:%d: %s", *metrics_at, exc)
            await app.aclose()
            return EXIT_CONFIG
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("%s: finishing running tasks (up to %.0f s); signal again to exit now",
                     signal.Signals(signum).name, config.grace_s)
            worker.stop()
        else:
            log.warning("second signal: exiting now")
            os._exit(1)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await worker.run()
    except ConfigError as exc:
        log.error("cannot run: %s", exc)
        return EXIT_CONFIG
    finally:
        if metrics is not None:
            metrics.close()
        await app.aclose()
    return 0
