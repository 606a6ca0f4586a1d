"""What a worker says about task names it does not know (the app it runs never imported their
module): a WARNING with the fix, the first time a name is seen and then at most once a minute
per name; every hand-back itself is logged at DEBUG."""

from __future__ import annotations

import time

WARN_EVERY_S = 60.0


class UnknownNames:
    """When to warn about an unknown task name (see the module)."""

    __slots__ = ("_warned_at", "every_s", "grace_s")

    def __init__(self, grace_s: float, every_s: float = WARN_EVERY_S) -> None:
        self.grace_s = grace_s
        self.every_s = every_s
        self._warned_at: dict[str, float] = {}

    def due(self, name: str, now: float | None = None) -> bool:
        """Whether to warn about ``name`` now (and if so, the next warning is a minute off)."""
        now = time.monotonic() if now is None else now
        last = self._warned_at.get(name)
        if last is not None and now - last < self.every_s:
            return False
        if len(self._warned_at) > 1000:  # (names come from payloads: keep the map bounded)
            self._warned_at.clear()
        self._warned_at[name] = now
        return True

    def warning(self, name: str, left_s: float) -> str:
        """The WARNING's text for ``name``, whose deploy grace ends in ``left_s``."""
        module = name.rpartition(".")[0]
        which = f" ({module}?)" if module else ""
        return (f"task {name} is not registered in this worker: import its module{which} in "
                f"the worker app (taskq worker myapp.tasks:tq, where myapp/tasks.py imports "
                f"every module that defines tasks). Handed back meanwhile; dead-lettered as "
                f"unknown_task once no worker has known it for {self.grace_s:.0f} s "
                f"({max(0.0, left_s):.0f} s left for this task)")
