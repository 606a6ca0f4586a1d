"""``python -m worker APP [options]``: runs taskq's worker command line (taskq.worker.main)."""

from taskq.worker.main import main

if __name__ == "__main__":
    main(prog_name="python -m worker")
