"""A tool known only from a record: the definition its model was shown, without its code.

A trace replays anywhere (DESIGN section 4): strict replay answers every call from the
record, so it needs a Python tool's *definition* (name, description, parameters schema —
recorded in ``run_started.tools``) but never its code. When the module cannot be imported
where the trace is replayed, the toolbox stands this in for it. It can still validate
arguments against the recorded schema (for a record that predates canonical calls, whose
decisions were made on the arguments as sent); it refuses to run, saying why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from govrun.runtime.tools.base import (
    BaseTool,
    Canonical,
    ScopeViolation,
    ToolResult,
)
from govrun.runtime.tools.schema_kinds import json_schema_kinds


class RecordedArguments(BaseModel):
    """Any JSON object: a recorded tool's arguments are checked against its schema."""

    model_config = ConfigDict(extra="allow", frozen=True)


class RecordedTool(BaseTool):
    """The recorded definition of a tool whose code is not here."""

    args_model = RecordedArguments

    def __init__(self, definition: Mapping[str, Any], *, why: str) -> None:
        function = definition.get("function") or {}
        name = str(function.get("name", ""))
        super().__init__(
            name=name,
            description=str(function.get("description") or ""),
            timeout_s=1.0,
            max_output_bytes=1,
        )
        self.parameters: dict[str, Any] = dict(function.get("parameters") or {})
        self.kinds = json_schema_kinds(self.parameters)
        self.why = why
        """Why the tool's own code is not used (its import error)."""

    def json_schema(self) -> dict[str, Any]:
        return dict(self.parameters)

    def _canonical(self, args: BaseModel) -> Canonical:
        """The arguments as sent, once they fit the recorded schema: without the code, their
        declared types cannot be applied (a record that holds canonical calls never asks)."""
        import jsonschema  # rarely needed (~50 ms to import)

        arguments = dict(args.model_extra or {})
        try:
            jsonschema.validate(arguments, self.parameters)
        except jsonschema.ValidationError as exc:
            raise ScopeViolation(
                f"invalid arguments for {self.name}: {exc.message}",
                failure_class="invalid_arguments",
            ) from None
        except jsonschema.SchemaError:
            pass  # a recorded schema jsonschema cannot read: judged as sent
        return Canonical(arguments, arguments)

    def _plan(self, arguments: Mapping[str, Any]) -> Any:
        return dict(arguments)

    def _execute(self, plan: Any) -> ToolResult:
        return ToolResult.failure(
            "tool_error",
            f"tool {self.name} cannot run here: only its recorded definition is available "
            f"({self.why})",
        )
