"""Task names: the full name a task gets by default, and finding a task by a short name.

A task registered without ``name=`` is named ``module.qualname`` of its function, e.g.
``myapp.tasks.send_email``: unique across modules, and the name stored in every message. People
(the CLI, HTTP callers) may give a shorter name: any dotted tail of the full name
(``send_email``, ``tasks.send_email``) or the function's own name. It resolves when exactly one
registered task matches; an exact full name always wins. Workers never resolve: a message
holds the full name, looked up as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from taskq.errors import TaskNotRegistered


class Named(Protocol):
    """What resolving needs of a registered task: its function."""

    @property
    def fn(self) -> Callable[..., Any]: ...


T = TypeVar("T", bound=Named)


def default_name(fn: Callable[..., Any]) -> str:
    """The name of a task registered without ``name=``: ``module.qualname``."""
    return f"{fn.__module__}.{fn.__qualname__}"


def matches(registry: Mapping[str, Named], name: str) -> list[str]:
    """The full names ``name`` stands for (sorted): itself if registered, else every task whose
    full name ends with ``.name`` or whose function is called ``name``."""
    if name in registry:
        return [name]
    tail = "." + name
    return sorted(full for full, task in registry.items()
                  if full.endswith(tail) or getattr(task.fn, "__name__", None) == name)


def resolve(registry: Mapping[str, T], name: str) -> T:
    """The task ``name`` stands for; :class:`TaskNotRegistered` when none does, or when several
    do (then with their full names in ``matches``)."""
    found = matches(registry, name)
    if len(found) == 1:
        return registry[found[0]]
    raise TaskNotRegistered(name, found)


def resolve_among(names: Iterable[str], name: str) -> str:
    """The full name ``name`` stands for among ``names`` (task names found in data: dead
    letters, records), by the rule of :func:`matches`: ``name`` itself when it is one of them
    or none matches (so a filter on it finds nothing); the one name ending with ``.name``;
    :class:`TaskNotRegistered` with the candidates when several do."""
    known = set(names)
    if name in known:
        return name
    tail = "." + name
    found = sorted(n for n in known if n.endswith(tail))
    if len(found) > 1:
        raise TaskNotRegistered(name, found)
    return found[0] if found else name
