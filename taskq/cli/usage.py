"""Usage errors as one line on stderr (``error: ...``, with the hint to ``--help``): the
``taskq`` group's class, from :mod:`taskq.usage` (shared with ``taskq worker`` and ``taskq
api``)."""

from __future__ import annotations

from taskq.usage import OneLineErrors, one_line

__all__ = ["OneLineErrors", "one_line"]
