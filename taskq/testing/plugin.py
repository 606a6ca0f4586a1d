"""The pytest plugin (registered as ``taskq`` through the ``pytest11`` entry point): fixtures
that give the app's own TaskQueue a fresh backend per test.

- ``taskq_app``: the app's TaskQueue, named by ``--taskq-app module:attr`` or the ini option
  ``taskq_app``; or override the fixture to return it.
- ``taskq_redis_url``: None (in memory) unless ``TASKQ_TEST_REDIS_URL`` is set; override it
  to choose per test or per directory.
- ``taskq_memory``: a :class:`~taskq.testing.Harness` on ``taskq_app``, bound to a fresh
  in-memory stand-in (or to ``taskq_redis_url`` under a key prefix of its own) for the test.

Nothing here runs unless a test asks for these fixtures; the stand-in is loaded on first use.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from taskq.loading import load_app
from taskq.queue import TaskQueue
from taskq.testing.harness import Harness, bind

TEST_REDIS_ENV = "TASKQ_TEST_REDIS_URL"
_QUIET = ("ignore::DeprecationWarning:fakeredis.*", "ignore::DeprecationWarning:lupa.*")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("taskq")
    group.addoption("--taskq-app", default=None, metavar="MODULE:ATTR",
                    help="the app's TaskQueue for the taskq fixtures (ini: taskq_app)")
    parser.addini("taskq_app", "the app's TaskQueue for the taskq fixtures, as module:attr")


def pytest_configure(config: pytest.Config) -> None:
    for line in _QUIET:  # the stand-in's own dependencies, not the user's code
        config.addinivalue_line("filterwarnings", line)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After a test that used ``taskq_memory``, close the queue's connections while the
    test's event loop is still open (an async test's loop is closed before fixtures end)."""
    yield  # (whatever the test's outcome)
    harness = getattr(item, "funcargs", {}).get("taskq_memory")
    if isinstance(harness, Harness):
        harness.close()


@pytest.fixture
def taskq_app(request: pytest.FixtureRequest) -> TaskQueue:
    """The app's own TaskQueue (``--taskq-app`` or ini ``taskq_app``; or override this)."""
    spec = request.config.getoption("taskq_app") or request.config.getini("taskq_app")
    if not spec:
        pytest.fail("name the app's TaskQueue for the taskq fixtures: taskq_app = module:attr "
                    "in the pytest ini, --taskq-app module:attr, or a taskq_app fixture that "
                    "returns it", pytrace=False)
    return load_app(str(spec))


@pytest.fixture
def taskq_redis_url() -> str | None:
    """A real Redis for the taskq fixtures (``TASKQ_TEST_REDIS_URL``), else None: in memory."""
    return os.environ.get(TEST_REDIS_ENV) or None


@pytest.fixture
def taskq_memory(taskq_app: TaskQueue, taskq_redis_url: str | None) -> Iterator[Harness]:
    """``taskq_app`` on a fresh backend for this test (see :func:`taskq.testing.bind`)."""
    with bind(taskq_app, taskq_redis_url) as harness:
        yield harness
