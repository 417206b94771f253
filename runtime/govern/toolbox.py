"""The manifest's tools, built once per run: what the model is offered, and how a proposed
call becomes the canonical call its tool will execute (or a classified rejection) before
policy."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel

from govrun.runtime.manifest.fields import Risk
from govrun.runtime.manifest.schema import Manifest, ToolSpec
from govrun.runtime.manifest.sections import tool_risk
from govrun.runtime.ports import ToolCallRequest
from govrun.runtime.tools import ScopeViolation, Tool, ToolResult, build_builtin, load_python_tool
from govrun.runtime.tools.base import Canonical, ToolConfigError, parse_arguments
from govrun.runtime.tools.definitions import signature, signatures, unbounded
from govrun.runtime.tools.recorded import RecordedTool
from govrun.runtime.trace.canonical import call_hash
from govrun.runtime.trace.events import CURRENT_REVISION, REPLIES_JUDGED, Revision


@dataclass(slots=True)  # built per call: frozen dataclasses cost ~1 µs each
class PreparedCall:
    """A proposed call whose tool exists and whose arguments validated, with the canonical
    call its tool will execute — or, when the call leaves the tool's scope, why not."""

    call_id: str
    name: str
    spec: ToolSpec
    tool: Tool
    args: BaseModel | None
    """The validated arguments (None for a call answered from a record)."""
    raw: dict[str, Any]
    """The arguments as the model sent them (parsed JSON)."""
    canonical: Canonical | None
    """What will run; None when the call leaves the scope (``scope_error`` says why)."""
    call_hash: str
    """SHA-256 of tool, canonical arguments and step (the raw ones when out of scope)."""
    risk: str
    scope_error: ScopeViolation | None = None

    @property
    def arguments(self) -> dict[str, Any]:
        """The canonical arguments: what policy judges, approvers see and the tool runs."""
        return self.canonical.arguments if self.canonical is not None else self.raw


@dataclass(slots=True)  # built per call: frozen dataclasses cost ~1 µs each
class RejectedCall:
    """A proposed call that cannot even reach policy: unknown tool or invalid arguments."""

    call_id: str
    name: str
    failure_class: str
    reason: str
    arguments: dict[str, Any] | None = None
    raw_arguments: str | None = None
    call_hash: str = ""


@dataclass(frozen=True, slots=True)
class _Declared:
    """A declared tool as ``prepare`` needs it: one lookup per call, risk resolved once."""

    tool: Tool
    spec: ToolSpec
    risk: Risk


class Toolbox:
    """Builds every declared tool up front, so a bad scope or a missing Python callable is
    a clear error before the run starts, not in the middle of it."""

    def __init__(
        self,
        manifest: Manifest,
        *,
        tools: Mapping[str, Tool] | None = None,
        recorded: Sequence[Mapping[str, Any]] | None = None,
        revision: Revision = CURRENT_REVISION,
    ) -> None:
        """``recorded``: the tool definitions a run recorded (replay). The model is then
        shown exactly those, and a Python tool whose module cannot be imported here stands
        in as its recorded definition (:class:`RecordedTool`): a trace replays anywhere.
        ``revision``: the schema revision of the run; before :data:`REPLIES_JUDGED` tool
        schemas kept their length bounds and a rejected call was told no tool shapes."""
        legacy = revision < REPLIES_JUDGED
        self._hints = not legacy
        self._specs = {spec.name: spec for spec in manifest.tools}
        self._closing: list[Any] = []
        importable_from_manifest_folder(manifest)
        built = tools or {}
        known = {str((d.get("function") or {}).get("name")): d for d in recorded or ()}
        self._tools: dict[str, Tool] = {
            spec.name: built.get(spec.name) or _build_or_recorded(spec, manifest, known)
            for spec in manifest.tools
        }
        self._declared = {
            name: _Declared(self._tools[name], spec, tool_risk(spec))
            for name, spec in self._specs.items()
        }
        self.definitions: list[dict[str, Any]] = (
            [dict(d) for d in recorded]
            if recorded is not None
            else [
                {
                    "type": "function",
                    "function": {
                        "name": name,
                        "description": tool.description,
                        "parameters": tool.json_schema()
                        if legacy
                        else unbounded(tool.json_schema()),
                    },
                }
                for name, tool in self._tools.items()
            ]
        )

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def tool(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def declared(self, name: str) -> tuple[Tool, ToolSpec, Risk] | None:
        """A declared tool with its spec and risk (None for an unknown name)."""
        found = self._declared.get(name)
        return (found.tool, found.spec, found.risk) if found is not None else None

    def closing(self, resource: Any) -> None:
        """Close ``resource`` (e.g. the run's MCP servers) with the tools."""
        self._closing.append(resource)

    def close(self) -> None:
        """Stop what tools keep running between calls (a Python tool's worker process, the
        MCP servers)."""
        for tool in self._tools.values():
            close = getattr(tool, "close", None)
            if close is not None:
                close()
        while self._closing:
            self._closing.pop().close()

    def prepare(self, step: int, call: ToolCallRequest) -> PreparedCall | RejectedCall:
        """Parse and validate a proposed call. Model-controlled text never picks a tool
        that was not declared and never reaches a tool without validating."""
        declared = self._declared.get(call.name)
        parsed, raw = _parse_json(call.arguments)
        if declared is None:
            known = ", ".join(self._tools) or "none"
            why = f"unknown tool {call.name!r}; the tools are: {known}"
            if self._hints:
                why = f"{why}. {self._unknown_hint(call.name)}"
            return RejectedCall(
                call.id,
                call.name,
                "unknown_tool",
                why,
                arguments=parsed,
                raw_arguments=raw,
            )
        if parsed is None:
            why = f"arguments for {call.name} are not a JSON object: {_snippet(call.arguments)}"
            return RejectedCall(
                call.id,
                call.name,
                "invalid_arguments",
                why + self._shape_hint(call.name, "Send the arguments as one JSON object"),
                raw_arguments=call.arguments,
            )
        try:
            args = parse_arguments(declared.tool, parsed)
        except ScopeViolation as exc:
            return RejectedCall(
                call.id,
                call.name,
                exc.failure_class,
                exc.message + self._shape_hint(call.name, "Expected"),
                arguments=parsed,
                call_hash=call_hash(call.name, parsed, step),
            )
        try:
            canonical = declared.tool.canonicalize(args)
        except Exception as exc:  # a ScopeViolation, or a check that broke: fail closed
            denial = exc if isinstance(exc, ScopeViolation) else _broken(exc)
            return PreparedCall(
                call.id,
                call.name,
                declared.spec,
                declared.tool,
                args,
                parsed,
                None,
                call_hash(call.name, parsed, step),
                declared.risk,
                denial,
            )
        try:
            digest = call_hash(call.name, canonical.arguments, step)
        except (TypeError, orjson.JSONEncodeError):  # e.g. an int past 64 bits, from 1e23
            return RejectedCall(
                call.id,
                call.name,
                "invalid_arguments",
                f"invalid arguments for {call.name}: a value is outside what the trace can "
                "record (integers must fit in 64 bits)",
                arguments=parsed,
                call_hash=call_hash(call.name, parsed, step),
            )
        return PreparedCall(
            call.id,
            call.name,
            declared.spec,
            declared.tool,
            args,
            parsed,
            canonical,
            digest,
            declared.risk,
        )

    # --- what a model that got a call wrong is told ---------------------------------------

    def _shape_hint(self, name: str, lead: str) -> str:
        """``. Expected: write_file(path: string, content: string)`` (nothing before
        :data:`REPLIES_JUDGED`): the tool's arguments, from the schema the model was shown."""
        if not self._hints:
            return ""
        return f". {lead}: {signature(name, self._parameters(name))}"

    def _unknown_hint(self, name: str) -> str:
        """The tools' shapes, and the closest name when the model meant one of them (a
        small model writes ``read_file notes.txt`` as a name)."""
        close = difflib.get_close_matches(name.split()[0] if name.split() else name, self._tools, 1)
        mean = f"Did you mean {close[0]}? " if close else ""
        shapes = signatures(self.definitions)
        return f"{mean}Call a tool by its exact name, with its arguments as JSON: {shapes}"

    def _parameters(self, name: str) -> Any:
        for definition in self.definitions:
            function = definition.get("function") or {}
            if function.get("name") == name:
                return function.get("parameters")
        return None


class LiveTools:
    """The live ``Tools`` port: the tool runs exactly the canonical call, inside its
    scope."""

    def execute(self, call: PreparedCall) -> ToolResult:
        assert call.canonical is not None, "only a call inside its scope is executed"
        return call.tool.run_canonical(call.canonical)


def importable_from_manifest_folder(manifest: Manifest) -> None:
    """Put the manifest's folder first on ``sys.path`` when it names Python code (a
    ``python:`` tool or a ``check: python`` function), so a module beside the manifest
    imports; ``isolation: process`` workers start with this same path."""
    checks = [c for spec in manifest.tools for c in spec.verify] + list(manifest.success)
    python = any(spec.python for spec in manifest.tools) or any(c.check == "python" for c in checks)
    base = str(manifest.base_dir)
    if python and base not in sys.path:
        sys.path.insert(0, base)


def build_tool(spec: ToolSpec, manifest: Manifest) -> Tool:
    """One declared tool, built as a run builds it (rollback rebuilds a shell tool to run
    its undo command inside the same scope)."""
    return _build(spec, manifest)


def _build_or_recorded(
    spec: ToolSpec, manifest: Manifest, recorded: Mapping[str, Mapping[str, Any]]
) -> Tool:
    try:
        return _build(spec, manifest)
    except ToolConfigError as exc:
        definition = recorded.get(spec.name)
        if definition is None or not spec.python:
            raise
        return RecordedTool(definition, why=exc.message)


def _build(spec: ToolSpec, manifest: Manifest) -> Tool:
    if spec.mcp:
        raise ToolConfigError(
            f"tool {spec.name!r}: an MCP tool is built from what its server lists, when the "
            "run starts the server"
        )
    if spec.python:
        return load_python_tool(
            spec.python,
            name=spec.name,
            description=spec.description,
            timeout_s=spec.timeout_s,
            max_output_bytes=spec.max_output_bytes,
            isolation=spec.isolation,
        )
    scope = spec.scope
    return build_builtin(
        spec.uses or "",
        name=spec.name,
        description=spec.description,
        roots=[manifest.resolve_path(r) for r in scope.roots or []],
        commands={k: v.model_dump() for k, v in (scope.commands or {}).items()},
        hosts=list(scope.hosts or []),
        cwd=manifest.resolve_path(scope.cwd) if scope.cwd else None,
        timeout_s=spec.timeout_s,
        max_output_bytes=spec.max_output_bytes,
        undo=spec.undo,
        undo_max_bytes=spec.undo_max_bytes,
        hardlinks=scope.hardlinks == "allow",
    )


def _parse_json(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None) when the text is a JSON object, else (None, text as sent). Blank
    text is the empty object; it is looked for only when parsing fails, as blank text
    always does."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return ({}, None) if not text.strip() else (None, text)
    return (value, None) if type(value) is dict else (None, text)


def _broken(exc: Exception) -> ScopeViolation:
    return ScopeViolation(f"the scope check failed: {type(exc).__name__}: {exc}")


def _snippet(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
