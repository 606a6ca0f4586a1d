"""A worker app with a cpu_bound task: ``python -m worker tests.apps.cpu_app:tq`` (the tasks of
tests/apps/common.py, and ``spin`` in the process pool)."""

from __future__ import annotations

import os

from tests.apps import cpu
from tests.apps.common import build

tq = build(os.environ["TEST_PREFIX"])
spin = tq.task(name="spin", cpu_bound=True)(cpu.spin)
