"""The workflow examples of the README and docs/workflows.md run as written and type-check.

The task definitions come from docs/workflows.md (their ``...`` bodies replaced by stand-ins
that return what the annotation says); each documented ``wf = await start(...)`` line is
started on ``memory://``, drained through the real worker, and must succeed, then fail
into its documented failure handler when its tasks fail. mypy --strict checks the same lines.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from taskq import TaskQueue, memory
from taskq.errors import WorkflowFailed
from taskq.testing import drain
from taskq.workflow import start
from tests.test_typing import run_mypy

ROOT = Path(__file__).parents[1]
URL = "memory://docs-examples"
DEFINITION = re.compile(r"^async def (\w+)\((.*)\) -> (.+): \.\.\.(\s+#.*)?$")
START = re.compile(r"^wf = await start\(tq, ")
VALUES = {"url": "https://example.com/a", "urls": ["https://example.com/a", "https://b.org/bb"],
          "order_id": 7}


def block(path: str, heading: str) -> list[str]:
    """The first python block after ``heading`` in ``path``, as lines."""
    text = (ROOT / path).read_text()
    after = text[text.index(f"\n{heading}\n"):]
    found = re.search(r"```python\n(.*?)```", after, re.S)
    assert found is not None, (path, heading)
    return found.group(1).splitlines()


def starts(lines: list[str]) -> list[str]:
    """The ``wf = await start(tq, ...)`` statements (joined when continued on the next line)."""
    out: list[str] = []
    for i, line in enumerate(lines):
        if START.match(line):
            statement = line
            j = i
            while statement.count("(") > statement.count(")"):
                j += 1
                statement += " " + lines[j].strip()
            out.append(statement)
    return out


WORKFLOWS = block("docs/workflows.md", "## Workflows: chains, groups, chords")
README = block("README.md", "## Workflows: chains, groups, chords")
DEFINED = {m.group(1): m.group(3) for line in WORKFLOWS if (m := DEFINITION.match(line))}
HANDLERS = {m.group(1) for line in WORKFLOWS
            if (m := DEFINITION.match(line)) and "StepFailure" in m.group(2)}


def definitions(body: str) -> str:
    """docs/workflows.md's import line, ``tq``, and its task definitions, each body replaced by
    ``body`` (formatted with the task's name)."""
    out = ["from taskq import TaskQueue"]
    for i, line in enumerate(WORKFLOWS):
        if m := DEFINITION.match(line):
            out.append(f"async def {m.group(1)}({m.group(2)}) -> {m.group(3)}:")
            out.append("    " + body.format(name=m.group(1)))
        elif line.startswith("from taskq.workflow import"):
            out += [line, "", f"tq = TaskQueue({URL!r}, prefix='docs')"]
        elif line == "@tq.task":
            out += ["", "", line]
        elif START.match(line):
            break
        else:
            assert not line.strip(), f"docs/workflows.md line {i}: {line!r}"
    return "\n".join(out) + "\n"


class Stand:
    """What the stand-in bodies do: return a value of the annotated type, or fail (retried,
    then dead: the drain fast-forwards the backoff)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.failing = False

    def __call__(self, name: str, arguments: dict[str, Any]) -> Any:
        self.calls.append(name)
        first = next(iter(arguments.values()), None)
        if name in HANDLERS:  # given a StepFailure (a dict, validated by the worker)
            assert isinstance(first, dict) and first["reason"], first
            return None
        if self.failing:
            raise ValueError(f"{name} fails, as asked")
        returns = DEFINED[name]
        if returns == "str":
            return f"{name}:{first}"
        if returns == "int":
            return sum(first) if isinstance(first, list) else len(str(first))
        if returns.startswith("dict"):
            return {"from": str(first)}
        assert returns == "None", returns
        return None


@pytest.fixture
async def app() -> AsyncIterator[tuple[TaskQueue, dict[str, Any], Stand]]:
    stand = Stand()
    namespace: dict[str, Any] = {"__name__": "docs_workflows", "_stand": stand, **VALUES}
    source = definitions("return _stand({name!r}, dict(locals()))")
    exec(compile(source, "docs/workflows.md", "exec"), namespace)
    tq: TaskQueue = namespace["tq"]
    try:
        yield tq, namespace, stand
    finally:
        await tq.aclose()
        memory.stop(URL)


def test_the_documents_show_the_same_tasks() -> None:
    assert set(DEFINED) == {"fetch", "parse", "store", "size", "total", "charge", "receipt",
                            "refund", "alert"}
    assert len(starts(WORKFLOWS)) == 4 and len(starts(README)) == 3
    named = set(re.findall(r"(\w+)\.(?:message|step)\(", "\n".join(README)))
    assert named <= set(DEFINED), named - set(DEFINED)
    summary = " ".join(line for line in README if line.startswith("# the tasks of"))
    assert summary, "the README names where its tasks are defined"


@pytest.mark.parametrize("statement", sorted(set(starts(WORKFLOWS)) | set(starts(README))))
async def test_each_documented_workflow_starts_and_succeeds(
        app: tuple[TaskQueue, dict[str, Any], Stand], statement: str) -> None:
    tq, namespace, stand = app
    canvas = eval(statement.removeprefix("wf = await start(tq, ")[:-1], namespace)
    wf = await start(tq, canvas)  # TaskValidationError here: a step cannot take its input
    result = await drain(tq)
    assert result.dead == 0, result.dead_letters
    status = await wf.status()
    assert status.status == "succeeded", status
    assert "refund" not in stand.calls and "alert" not in stand.calls
    await wf.result(timeout=10)


@pytest.mark.parametrize("statement", [s for s in starts(WORKFLOWS) if "on_" in s])
async def test_a_documented_failure_handler_runs_when_a_step_ends_dead(
        app: tuple[TaskQueue, dict[str, Any], Stand], statement: str) -> None:
    tq, namespace, stand = app
    stand.failing = True
    canvas = eval(statement.removeprefix("wf = await start(tq, ")[:-1], namespace)
    wf = await start(tq, canvas)
    await drain(tq)
    handler = re.findall(r"on_(?:error|failure)=(\w+)\.step\(\)", statement)[-1]
    assert stand.calls.count(handler) == 1, stand.calls
    with pytest.raises(WorkflowFailed):
        await wf.result(timeout=10)


async def test_the_readme_lines_after_start_run(
        app: tuple[TaskQueue, dict[str, Any], Stand]) -> None:
    tq, namespace, _ = app
    after = README[README.index(next(line for line in README
                                     if line.startswith("await wf."))):]
    body = "\n".join(line for line in after if line.strip())
    namespace["wf"] = await start(tq, eval(starts(README)[0][len("wf = await start(tq, "):-1],
                                           namespace))
    await drain(tq)
    exec(f"async def _after(wf):\n{textwrap.indent(body, '    ')}\n", namespace)
    runner: Callable[[Any], Any] = namespace["_after"]
    await runner(namespace["wf"])


def test_the_documented_lines_type_check(tmp_path: Path) -> None:
    """mypy --strict on the definitions and every start line (a step taking the wrong input
    type, a missing argument: errors), with the README's lines after start."""
    after = [line for line in README[README.index(next(
        line for line in README if line.startswith("await wf."))):] if line.strip()]
    lines = [*starts(WORKFLOWS), *starts(README), *after]
    module = (definitions("raise NotImplementedError")
              + "\n\nasync def main(url: str, urls: list[str], order_id: int) -> None:\n"
              + textwrap.indent("\n".join(lines), "    ") + "\n")
    (tmp_path / "docs_example.py").write_text(module)
    code, out = run_mypy(tmp_path, "docs_example.py")
    assert code == 0, out + "\n" + module
