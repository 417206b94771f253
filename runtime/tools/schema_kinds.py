"""An argument's kinds from a JSON schema: what policy predicates on it may test. Python
tools read them from the schema their signature gives; a recorded tool from the schema its
model was shown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from govrun.runtime.tools.base import ArgKind, Kinds


def json_schema_kinds(schema: Mapping[str, Any]) -> Kinds:
    """Each property's kinds in an object schema (``$ref``, unions, enums followed)."""
    defs = schema.get("$defs", {})
    return {
        name: frozenset(_kinds(prop, defs)) for name, prop in schema.get("properties", {}).items()
    }


_JSON_KINDS: dict[str, ArgKind] = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
    "null": "null",
}


def _kinds(node: Any, defs: Mapping[str, Any], depth: int = 0) -> set[ArgKind]:
    if not isinstance(node, Mapping) or depth > 20:
        return {"any"}
    if "$ref" in node:
        return _kinds(defs.get(str(node["$ref"]).rsplit("/", 1)[-1]), defs, depth + 1)
    for union in ("anyOf", "oneOf"):
        if union in node:
            return set().union(*(_kinds(member, defs, depth + 1) for member in node[union]))
    kind = node.get("type")
    if isinstance(kind, str) and kind in _JSON_KINDS:
        return {_JSON_KINDS[kind]}
    if isinstance(kind, list):
        return {_JSON_KINDS[k] for k in kind if k in _JSON_KINDS} or {"any"}
    values = node["enum"] if "enum" in node else [node["const"]] if "const" in node else None
    if values is not None:
        return {_value_kind(v) for v in values}
    return {"any"}


def _value_kind(value: Any) -> ArgKind:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "array" if isinstance(value, list) else "object"
