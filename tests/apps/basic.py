"""The app of worker subprocesses: ``python -m worker tests.apps.basic:tq``."""

from __future__ import annotations

import os

from tests.apps.common import build

tq = build(os.environ["TEST_PREFIX"])
