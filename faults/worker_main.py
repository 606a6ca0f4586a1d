"""The fault suite's worker process: taskq's worker command line with the crash hook installed.

``python -m faults.worker_main faults.app:tq [worker options]`` runs exactly what
``python -m worker`` runs; when FAULTS_CRASH_AT names a transition (``after_read``,
``before_ack``, ``before_retry``, ``before_dead``), the worker is given a transition hook that
ends the process there with exit code 86 (``os._exit``: no cleanup, like a crash).
"""

from __future__ import annotations

import os

from taskq.worker.context import OnTransition
from taskq.worker.main import main

CRASH_EXIT = 86


def crash_at(point: str) -> OnTransition:
    """A transition hook that ends the process when the worker reaches ``point``."""

    def on_transition(name: str) -> None:
        if name == point:
            os._exit(CRASH_EXIT)

    return on_transition


if __name__ == "__main__":
    point = os.environ.get("FAULTS_CRASH_AT", "")
    main(on_transition=crash_at(point) if point else None)
