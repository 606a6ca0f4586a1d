"""The public API: ``taskq.__all__`` is sorted and lists every public member (httpx's pattern)."""

from __future__ import annotations

import re
import types

import pytest

import taskq


def isort_style(name: str) -> tuple[int, list[object]]:
    """The order ruff's RUF022 keeps ``__all__`` in (the project lints with it): constants,
    then classes, then the rest; a natural sort within each."""
    if name.isupper() or (name.upper() == name and "_" in name):
        kind = 0
    elif name[:1].isupper():
        kind = 1
    else:
        kind = 2
    return kind, [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def test_all_is_sorted() -> None:
    assert taskq.__all__ == sorted(taskq.__all__, key=isort_style)
    assert len(set(taskq.__all__)) == len(taskq.__all__)


def test_all_lists_every_public_member() -> None:
    public = {
        name
        for name, value in vars(taskq).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and type(value).__module__ != "__future__"  # `from __future__ import annotations`
    }
    assert set(taskq.__all__) == public


def test_every_exported_name_exists_and_belongs_to_taskq() -> None:
    for name in taskq.__all__:
        value = getattr(taskq, name)
        module = getattr(value, "__module__", None) or "taskq"
        assert module.startswith("taskq"), (name, module)


def test_every_exported_exception_derives_from_the_base() -> None:
    exceptions = {
        name for name in taskq.__all__
        if isinstance(getattr(taskq, name), type) and issubclass(getattr(taskq, name), Exception)
    }
    assert len(exceptions) == 30  # (WorkflowError and WorkflowNotFound among them)
    for name in exceptions - {"Retry"}:  # Retry is a request for another attempt, not an error
        assert issubclass(getattr(taskq, name), taskq.TaskqError), name
        assert name in (taskq.errors.__doc__ or ""), f"{name} missing from the error tree"


def test_the_workflow_names_are_exported() -> None:
    for name in ("chain", "group", "chord", "link", "Workflow", "Step", "start_workflow",
                 "start_workflow_sync", "WorkflowError"):
        assert name in taskq.__all__, name
    assert taskq.chain is taskq.workflow.chain
    assert taskq.start_workflow is taskq.workflow.start


async def test_a_message_missing_the_previous_result_hints_at_step() -> None:
    tq = taskq.TaskQueue("memory://exports-hint")

    @tq.task
    async def fetch(url: str) -> str:
        return url

    @tq.task
    async def parse(page: str) -> int:
        return len(page)

    try:
        with pytest.raises(taskq.TaskValidationError, match=r"page: Field required.*"
                           r"parse\.step\(\.\.\.\), not \.message"):
            taskq.chain(fetch.message("u"), parse.message())
        taskq.chain(fetch.message("u"), parse.step())  # the documented form
    finally:
        await tq.aclose()
