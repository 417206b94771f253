"""Pinning MCP tool definitions: what the model is told a tool does, held to a hash.

A server can change a tool after it was reviewed — a new description that instructs the
model, a schema that takes a new argument (a "rug pull"). ``govrun mcp pin`` writes every
tool a server offers, with the SHA-256 of its canonical definition, into a lock file beside
the manifest (``AGENT.mcp.lock``); each run compares what the servers list with it, and a
changed tool is denied or asked about (``on_change``), never silently used.

The definition is what shapes the model's call: name, description, input schema and
annotations, in canonical JSON (sorted keys), so the hash does not depend on key order or
whitespace.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from govrun.runtime.errors import InputError
from govrun.runtime.trace.canonical import canonical, sha256_hex

DEFINITION_KEYS = ("name", "description", "inputSchema", "annotations")
LOCK_VERSION = 1
_FIELD_WORDS = {
    "description": "description",
    "inputSchema": "input schema",
    "annotations": "annotations",
    "name": "name",
}


def definition_of(tool: Any) -> dict[str, Any]:
    """The pinned part of an SDK ``Tool``, as the wire spells it (camelCase, no nulls)."""
    wire = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {key: wire[key] for key in DEFINITION_KEYS if key in wire}


def definition_hash(definition: Mapping[str, Any]) -> str:
    return sha256_hex(canonical(dict(definition)))


def lock_path(manifest_file: Path) -> Path:
    """``agent.yaml`` -> ``agent.mcp.lock``, beside it."""
    return manifest_file.with_name(f"{manifest_file.stem}.mcp.lock")


Pins = dict[str, dict[str, dict[str, Any]]]
"""server -> tool -> {"sha256", "definition"}."""


def read_lock(path: Path) -> Pins | None:
    """The pins in ``path``; None when there is no lock. A lock that cannot be read is an
    error, never an empty lock (that would pin nothing)."""
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise InputError(
            f"{path} is not a readable MCP lock file: {exc}",
            hint="Write it again with `govrun mcp pin AGENT.yaml`.",
        ) from None
    servers = data.get("servers") if isinstance(data, dict) else None
    if data.get("version") != LOCK_VERSION or not isinstance(servers, dict):
        raise InputError(
            f"{path} is not a govrun MCP lock file (version {LOCK_VERSION})",
            hint="Write it again with `govrun mcp pin AGENT.yaml`.",
        )
    return servers


def write_lock(path: Path, pins: Pins) -> None:
    """Write ``pins`` atomically (a reader never sees half a lock)."""
    body = orjson.dumps(
        {"version": LOCK_VERSION, "servers": pins},
        option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS,
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(body + b"\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pins_of(definitions: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """tool -> {"sha256", "definition"} for one server's listing."""
    return {
        name: {"sha256": definition_hash(d), "definition": dict(d)}
        for name, d in sorted(definitions.items())
    }


def compare(
    listed: Mapping[str, Mapping[str, Any]], pinned: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """What differs between a server's listing and its pins, tool by tool: ``changed``
    (with the fields and a short diff of each), ``added``, ``removed``."""
    changes: list[dict[str, Any]] = []
    for name in sorted(set(listed) | set(pinned)):
        now, pin = listed.get(name), pinned.get(name)
        if pin is None:
            changes.append({"tool": name, "change": "added", "detail": "not in the lock"})
        elif now is None:
            changes.append({"tool": name, "change": "removed", "detail": "no longer offered"})
        elif definition_hash(now) != pin.get("sha256"):
            before = pin.get("definition") or {}
            fields = [k for k in DEFINITION_KEYS if before.get(k) != now.get(k)]
            detail = "; ".join(_field_diff(k, before.get(k), now.get(k)) for k in fields)
            changes.append(
                {
                    "tool": name,
                    "change": "changed",
                    "fields": fields,
                    "detail": detail or "its definition hash differs from the pin",
                }
            )
    return changes


def describe(change: Mapping[str, Any]) -> str:
    """One line for a change, for the model, the operator and the trace."""
    tool, kind = change["tool"], change["change"]
    if kind == "changed":
        words = ", ".join(_FIELD_WORDS.get(f, f) for f in change.get("fields", ()))
        return f"tool {tool!r} changed since it was pinned ({words}): {change['detail']}"
    if kind == "added":
        return f"tool {tool!r} was added since the server was pinned"
    return f"tool {tool!r} was removed since the server was pinned"


def _field_diff(field: str, before: Any, after: Any, limit: int = 600) -> str:
    """``description: 'old' -> 'new'``, or a unified diff of the JSON for structures."""
    word = _FIELD_WORDS.get(field, field)
    if (isinstance(before, str) or before is None) and (isinstance(after, str) or after is None):
        return _clip(f"{word}: {before!r} -> {after!r}", limit)
    old = _lines(before)
    new = _lines(after)
    diff = [
        line
        for line in difflib.unified_diff(old, new, lineterm="", n=0)
        if not line.startswith(("---", "+++", "@@"))
    ]
    return _clip(f"{word}: " + " ".join(line.strip() for line in diff), limit)


def _lines(value: Any) -> list[str]:
    if value is None:
        return []
    return (
        orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode().split("\n")
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
