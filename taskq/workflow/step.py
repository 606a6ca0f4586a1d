"""A workflow step that takes an input: a task with some arguments, waiting for the result of
the step(s) before it (``task.step(...)``, ``task.step_into("name", ...)``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

A_contra = TypeVar("A_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)


@dataclass(frozen=True, slots=True)
class Step(Generic[A_contra, R_co]):
    """A task whose parameter ``param`` takes the step's input (the previous step's result, a
    chord's list of results, or a failure handler's :class:`~taskq.workflow.StepFailure`); its
    other arguments are validated already, and held by name in ``kwargs``. ``A`` is the type
    of the input, ``R`` the task's result."""

    task: str
    queue: str
    param: str
    kwargs: dict[str, Any] = field(default_factory=dict)
