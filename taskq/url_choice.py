"""Which Redis a TaskQueue uses: the one URL precedence rule of every entry point.

1. A URL given in code, ``TaskQueue("redis://...")`` (or ``tq.configured(url=...)``), wins.
2. Else ``TASKQ_REDIS_URL``. The ``--redis-url`` option of ``taskq``, ``taskq worker`` and
   ``taskq api`` sets it for one command.
3. Else ``redis://localhost:6379/0``.

Why code wins: the web app, the worker and the API all load the same TaskQueue from the same
code, so a URL written there is the same in every process; an environment variable set (or not)
per process can never split them onto two Redis servers. An environment variable can disagree
with the code: then it is ignored, and the first connection logs a warning naming both
(passwords redacted). An entry point's ``--redis-url`` that the code overrides is an error, not
a warning: an option typed on a command line is never silently ignored. Configure Redis by the
environment by leaving the URL out of the code (``TaskQueue()``), as the README does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from taskq.connection import redact_url

ENV = "TASKQ_REDIS_URL"
DEFAULT_URL = "redis://localhost:6379/0"


class UrlSource(StrEnum):
    """Where a TaskQueue's URL came from."""

    CODE = "code"
    ENVIRONMENT = ENV
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class UrlChoice:
    """The URL a TaskQueue uses, where it came from, and ``TASKQ_REDIS_URL`` when it was made
    (None: unset)."""

    url: str
    source: UrlSource
    environment: str | None = None

    def describe(self) -> str:
        """The URL (password redacted) and its source, for start lines."""
        return f"{redact_url(self.url)} (from {self.source})"

    def conflict(self) -> str | None:
        """What to warn about when ``TASKQ_REDIS_URL`` names another Redis than the one used."""
        env = self.environment
        if env is None or env == self.url:
            return None
        return (f"{ENV}={redact_url(env)} is ignored: the TaskQueue was given "
                f"{redact_url(self.url)} in code, and a URL in code wins (leave it out of the "
                f"code to choose Redis by {ENV}; see the README's Configuration section)")

    def option_error(self, option_url: str, name: str = "--redis-url") -> str | None:
        """Why an entry point's ``--redis-url`` (``name``; already put into ``TASKQ_REDIS_URL``)
        did not apply to this TaskQueue, or None when it did."""
        if option_url == self.url:
            return None
        if self.source is UrlSource.CODE:
            return (f"{name} {redact_url(option_url)} conflicts with the URL the TaskQueue was "
                    f"given in code ({redact_url(self.url)}); a URL in code wins. Leave it out "
                    f"of the code to choose Redis by --redis-url or {ENV}")
        return (f"{name} {redact_url(option_url)} came too late: the TaskQueue was created "
                f"before it applied and uses {self.describe()}")


def choose(code_url: str | None, environ: Mapping[str, str] | None = None) -> UrlChoice:
    """Apply the rule (see the module) to a URL given in code (None: none was)."""
    env = (os.environ if environ is None else environ).get(ENV) or None
    if code_url:
        return UrlChoice(code_url, UrlSource.CODE, env)
    if env is not None:
        return UrlChoice(env, UrlSource.ENVIRONMENT, env)
    return UrlChoice(DEFAULT_URL, UrlSource.DEFAULT, None)


def apply_option(url: str | None) -> None:
    """An entry point's ``--redis-url`` given on its command line stands for ``TASKQ_REDIS_URL``
    in this process: set it before the app is imported, so the app's TaskQueue reads it (and
    so do the tasks it enqueues, which the same TaskQueue sends)."""
    if url:
        os.environ[ENV] = url
