"""Example request bodies for the OpenAPI schema, made from each task's argument schema."""

from __future__ import annotations

from typing import Any

from taskq.queue import TaskQueue
from taskq.task import Task

_BY_TYPE: dict[str, Any] = {
    "string": "text", "integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {},
    "null": None,
}


def example_value(schema: dict[str, Any], defs: dict[str, Any], depth: int = 0,
                  required_only: bool = False) -> Any:
    """A plausible value for a JSON schema (its example or default when it has one)."""
    if depth > 4:
        return None
    if schema.get("examples"):
        return schema["examples"][0]
    if "default" in schema:
        return schema["default"]
    if "$ref" in schema:
        target = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
        return example_value(target, defs, depth + 1)
    for combo in ("anyOf", "oneOf", "allOf"):
        if schema.get(combo):
            return example_value(schema[combo][0], defs, depth + 1)
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        wanted = schema.get("required", []) if required_only else list(schema["properties"])
        return {name: "ada@example.com" if "email" in name and sub.get("type") == "string"
                else example_value(sub, defs, depth + 1)
                for name, sub in schema["properties"].items() if name in wanted}
    if kind == "string" and schema.get("format") == "email":
        return "ada@example.com"
    return _BY_TYPE.get(kind if isinstance(kind, str) else "")


def arguments_schema(task: Task[Any, Any]) -> dict[str, Any]:
    """The JSON schema of a task's arguments by name (defaults shown, defaulted ones optional)."""
    return task.signature.json_schema()


def body_examples(tq: TaskQueue) -> dict[str, Any]:
    """OpenAPI ``examples`` for the enqueue body: one per registered task."""
    out: dict[str, Any] = {}
    for name in sorted(tq.registry):
        schema = arguments_schema(tq.registry[name])
        value = example_value(schema, schema.get("$defs", {}))
        out[name] = {"summary": f"arguments of {name}", "value": value or {}}
    return out
