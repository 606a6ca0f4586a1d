"""``python -m api [APP] [--host H] [--port P]`` (repository, Docker image): ``taskq api``."""

from taskq.service.main import cli

if __name__ == "__main__":
    cli()
