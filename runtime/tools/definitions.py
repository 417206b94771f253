"""The tool schemas a model is shown: compatible with grammar-based servers.

llama.cpp (and other servers that constrain decoding with a grammar built from the tool
schemas) expands a length bound into one grammar rule per allowed repetition:
``"maxLength": 4096`` on a string argument alone made a server run out of memory. So what
the model sees carries no length or count bounds; the tool's own argument model still
enforces them when a call is validated, and an oversized argument is refused there as
``invalid_arguments``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

BOUND_KEYWORDS = frozenset(
    {"maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties"}
)
"""JSON Schema keywords that bound a length or a count; never shown to the model."""

MINIMAL_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "items",
        "enum",
        "const",
        "anyOf",
        "oneOf",
        "allOf",
        "$ref",
        "$defs",
        "additionalProperties",
    }
)
"""What a minimal schema keeps (``model.tool_schema: minimal``): the shape of the arguments,
without descriptions, titles, defaults, formats, patterns or numeric bounds."""

_NAMED = frozenset({"properties", "$defs"})
"""Keywords whose value maps names to schemas (a property called ``title`` is no keyword)."""


def unbounded(schema: Any) -> Any:
    """``schema`` without length and count bounds, at every depth."""
    return _filter(schema, lambda key: key not in BOUND_KEYWORDS)


def minimal(schema: Any) -> Any:
    """``schema`` reduced to the shape of the arguments (:data:`MINIMAL_KEYWORDS`)."""
    return _filter(schema, lambda key: key in MINIMAL_KEYWORDS)


def minimal_definitions(definitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI tool definitions with minimal parameter schemas and the first line of each
    description (a small model's context is short, and a grammar gets smaller too)."""
    out: list[dict[str, Any]] = []
    for definition in definitions:
        function = dict(definition.get("function") or {})
        description = function.get("description")
        if isinstance(description, str) and description.strip():
            function["description"] = description.strip().splitlines()[0]
        if "parameters" in function:
            function["parameters"] = minimal(function["parameters"])
        out.append({**definition, "function": function})
    return out


_LITERAL = frozenset({"enum", "const", "default", "examples", "required"})
"""Keywords whose value is data, not a schema: kept as is."""


def _filter(node: Any, keep: Callable[[str], bool], named: bool = False) -> Any:
    if isinstance(node, list):
        return [_filter(item, keep) for item in node]
    if not isinstance(node, dict):
        return node
    if named:  # names of properties or definitions: every one kept, each a schema
        return {name: _filter(sub, keep) for name, sub in node.items()}
    return {
        key: value if key in _LITERAL else _filter(value, keep, named=key in _NAMED)
        for key, value in node.items()
        if keep(key)
    }


def signature(name: str, parameters: Any) -> str:
    """A tool's call shape in one short line, for a model that got it wrong:
    ``write_file(path: string, content: string, mode?: string)`` — required arguments
    first, an optional one marked ``?``, in the schema's order."""
    if not isinstance(parameters, dict):
        return f"{name}()"
    props = parameters.get("properties")
    props = props if isinstance(props, dict) else {}
    required = [p for p in parameters.get("required") or () if p in props]
    optional = [p for p in props if p not in required]
    parts = [f"{p}: {_type_name(props[p])}" for p in required]
    parts += [f"{p}?: {_type_name(props[p])}" for p in optional]
    return f"{name}({', '.join(parts)})"


def signatures(definitions: list[dict[str, Any]]) -> str:
    """Every offered tool's :func:`signature`, separated by semicolons."""
    shapes = []
    for definition in definitions:
        function = definition.get("function") or {}
        shapes.append(signature(str(function.get("name")), function.get("parameters")))
    return "; ".join(shapes) or "none"


def _type_name(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema and isinstance(schema["enum"], list):
        return " | ".join(orjson_text(v) for v in schema["enum"][:6])
    kind = schema.get("type")
    if isinstance(kind, str):
        if kind == "array":
            return f"array of {_type_name(schema.get('items'))}"
        return kind
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return " | ".join(dict.fromkeys(_type_name(o) for o in options))
    return "any"


def orjson_text(value: Any) -> str:
    """A JSON value as compact text (an enum member as the model must write it)."""
    return orjson.dumps(value).decode()
