"""``python -m bench.peers NAME COMMAND ...``: run one adapter's command (see _common)."""

from __future__ import annotations

import importlib
import sys

from bench.peers._common import main

if __name__ == "__main__":
    name = sys.argv.pop(1)
    adapter = importlib.import_module(f"bench.peers.{name}")
    main(adapter.make, adapter.worker)
