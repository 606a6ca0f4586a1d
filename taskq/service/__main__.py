"""``python -m taskq.service [APP] [--host H] [--port P]``: what ``taskq api`` runs."""

from taskq.service.main import cli

if __name__ == "__main__":
    cli(prog_name="taskq api")
