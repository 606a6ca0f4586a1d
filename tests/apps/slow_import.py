"""A module that takes a while to import (1.5 s): the start-up of a process-pool process that
imports it for a cpu_bound task, which must not count against the task's timeout."""

from __future__ import annotations

import time

time.sleep(1.5)


def plus_one(x: int) -> int:
    return x + 1
