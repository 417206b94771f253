"""One MCP server tool, governed like any tool.

Its arguments are checked against the input schema the server listed (and the run pinned)
before policy sees them; the canonical call is those arguments exactly (JSON Schema does
not coerce: ``"0"`` stays a string). It runs with the manifest's timeout and output limit;
the result's content blocks become the text the model sees, its structured content the
data, and a hash of both the evidence. A result with ``isError`` is a ``tool_error``.

Without a connection (a replay, which answers every call from the record and starts no
server) the tool still validates and is shown to the model as recorded, and refuses to run.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict

from govrun.runtime.manifest.patterns import Pattern, PatternError, compile_pattern
from govrun.runtime.tools.base import BaseTool, Canonical, ScopeViolation, ToolResult
from govrun.runtime.tools.mcp.client import McpConnection, McpServerError
from govrun.runtime.tools.mcp.pins import compare, definition_hash, definition_of, describe
from govrun.runtime.tools.schema_kinds import json_schema_kinds
from govrun.runtime.trace.canonical import canonical, sha256_hex

RELIST_TIMEOUT_S = 10.0


class McpArguments(BaseModel):
    """Any JSON object: an MCP tool's arguments are checked against its input schema."""

    model_config = ConfigDict(extra="allow", frozen=True)


class McpTool(BaseTool):
    """A server's tool under a manifest name."""

    args_model = McpArguments

    def __init__(
        self,
        *,
        name: str,
        server: str,
        tool: str,
        definition: Mapping[str, Any],
        connection: McpConnection | None,
        description: str | None,
        timeout_s: float,
        max_output_bytes: int,
    ) -> None:
        super().__init__(
            name=name,
            description=description or str(definition.get("description") or ""),
            timeout_s=timeout_s,
            max_output_bytes=max_output_bytes,
        )
        self.server = server
        self.tool = tool
        self.definition = dict(definition)
        self.sha256 = definition_hash(definition)
        self.connection = connection
        schema = definition.get("inputSchema")
        self.parameters: dict[str, Any] = dict(schema) if isinstance(schema, Mapping) else {}
        self.parameters.setdefault("type", "object")
        self.kinds = json_schema_kinds(self.parameters)
        self._validator = _validator(self.parameters)
        self.pin_change: str | None = None
        """Why the definition differs from its pin in the lock (decided on: rule mcp-pin)."""
        self.on_change = "deny"
        self.changed_mid_run: str | None = None
        """Why the tool no longer runs: the server re-listed it with another definition."""

    def json_schema(self) -> dict[str, Any]:
        return orjson.loads(orjson.dumps(self.parameters))  # a copy the caller may change

    def _canonical(self, args: BaseModel) -> Canonical:
        arguments = dict(args.model_extra or {})
        error = next(iter(self._validator.iter_errors(arguments)), None)
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path) or "arguments"
            raise ScopeViolation(
                f"invalid arguments for {self.name}: {where}: {error.message}",
                failure_class="invalid_arguments",
            )
        return Canonical(arguments, arguments)

    def _plan(self, arguments: Mapping[str, Any]) -> Any:
        return dict(arguments)

    def _execute(self, plan: Any) -> ToolResult:
        if self.connection is None:
            return ToolResult.failure(
                "tool_error",
                f"tool {self.name} cannot run here: MCP server {self.server!r} is not "
                "started in a replay (its calls are answered from the record)",
            )
        if self.connection.tools_changed.is_set() or self.changed_mid_run:
            refused = self._relisted()
            if refused is not None:
                return refused
        try:
            result = self.connection.call_tool(self.tool, plan, self.timeout_s)
        except TimeoutError:
            return ToolResult.failure(
                "timeout",
                f"MCP server {self.server!r} did not answer {self.tool} within {self.timeout_s:g}s",
                evidence=self._evidence(),
            )
        except McpServerError as exc:
            return ToolResult.failure("tool_error", exc.message, evidence=self._evidence())
        except Exception as exc:  # a JSON-RPC error the server answered with
            return ToolResult.failure(
                "tool_error",
                f"MCP server {self.server!r} refused {self.tool}: {exc}",
                evidence=self._evidence(),
            )
        return self._result(result)

    def _relisted(self) -> ToolResult | None:
        """The server said its tools changed: list them again, and refuse this tool (from
        now on) if its definition is no longer the one the run started with."""
        if self.changed_mid_run is None:
            assert self.connection is not None
            try:
                listed = self.connection.list_tools(RELIST_TIMEOUT_S)
            except (TimeoutError, McpServerError) as exc:
                return ToolResult.failure(
                    "tool_error",
                    f"MCP server {self.server!r} changed its tools and could not list them "
                    f"again: {exc}",
                )
            now = {t.name: definition_of(t) for t in listed}
            pinned = {self.tool: {"sha256": self.sha256, "definition": self.definition}}
            changes = compare({k: v for k, v in now.items() if k == self.tool}, pinned)
            if changes:
                change = dict(changes[0])
                if change["change"] == "removed":
                    change["detail"] = "no longer offered"
                self.changed_mid_run = describe(change).replace("since it was pinned", "mid-run")
        if self.changed_mid_run is None:
            return None
        return ToolResult.failure(
            "policy_denied",
            f"not run: MCP server {self.server!r} re-listed its tools during the run: "
            f"{self.changed_mid_run}",
            evidence=self._evidence(),
        )

    def _result(self, result: Any) -> ToolResult:
        blocks = [_block(b) for b in result.content or []]
        structured = result.structured_content
        text = "\n".join(b["text"] for b in blocks if "text" in b)
        if not text and structured is not None:
            text = orjson.dumps(structured, option=orjson.OPT_SORT_KEYS).decode()
        output, truncated = self._clip(text)
        recorded = {"content": blocks, "structured": structured}
        evidence = self._evidence(result_sha256=sha256_hex(canonical(recorded)))
        if structured is not None:
            evidence["mcp"]["structured_sha256"] = sha256_hex(canonical(structured))
        data: dict[str, Any] = {"content": [b["type"] for b in blocks]}
        if structured is not None:
            data["structured"] = structured
        if result.is_error:
            return ToolResult.failure(
                "tool_error",
                f"{self.tool} reported an error: {output or 'no details'}",
                output=output or f"error: {self.tool} reported an error",
                data=data,
                evidence=evidence,
                truncated=truncated,
            )
        return ToolResult(ok=True, output=output, data=data, evidence=evidence, truncated=truncated)

    def _evidence(self, **extra: Any) -> dict[str, Any]:
        return {
            "mcp": {"server": self.server, "tool": self.tool, "definition": self.sha256, **extra}
        }


def _block(block: Any) -> dict[str, Any]:
    """One content block as the model and the record see it: text as text, anything else
    as a short description (binary payloads are not shown to a text model)."""
    kind = getattr(block, "type", "unknown")
    if kind == "text":
        return {"type": "text", "text": block.text}
    if kind in ("image", "audio"):
        size = len(getattr(block, "data", "") or "") * 3 // 4
        return {"type": kind, "text": f"[{kind}: {block.mime_type}, {size:,} bytes]"}
    if kind == "resource_link":
        return {"type": kind, "text": f"[resource link: {block.uri}]"}
    if kind == "resource":
        resource = block.resource
        text = getattr(resource, "text", None)
        if isinstance(text, str):
            return {"type": kind, "text": text}
        return {"type": kind, "text": f"[resource: {resource.uri}, {resource.mime_type}]"}
    return {"type": str(kind), "text": f"[{kind} content]"}


def _validator(schema: Mapping[str, Any]) -> Any:
    """A JSON Schema validator for a server's input schema. The server's schema decides
    what is valid; an invalid schema is refused when the tool is built. Its `pattern`s
    meet model-chosen text, so they match with RE2 (linear time: a server's regex cannot
    stall a decision); one RE2 cannot compile fails validation rather than being skipped."""
    import jsonschema  # only agents with MCP tools need it (~30 ms to import)

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return jsonschema.validators.extend(cls, {"pattern": _pattern})(schema)


@functools.lru_cache(maxsize=256)
def _re2(pattern: str) -> Pattern:
    return compile_pattern(pattern)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    import jsonschema

    if not validator.is_type(instance, "string"):
        return
    try:
        found = _re2(pattern).search(instance)
    except PatternError:
        yield jsonschema.ValidationError(f"the schema's pattern {pattern!r} is not supported")
        return
    if found is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")
