"""``python -m taskq.worker APP [options]``: taskq's own worker entry point."""

from taskq.worker.main import main

main()
