"""The manifest's `mcp_servers:` section: MCP servers as tool sources.

A server is either a program govrun starts and talks to over stdio (`command:`, with `env:`
and `cwd:`) or a streamable-HTTP endpoint (`url:`, with `headers:`). Its tools reach the
model only through `tools:` entries that name them (`mcp: SERVER/TOOL`, or a glob such as
`SERVER/*`); everything else about such a tool — policy, approvals, budgets, checks — is
the same as for any tool.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from govrun.runtime.manifest.fields import (
    EnvVarName,
    HeaderName,
    PositiveNumber,
    Section,
    Text,
    Url,
)
from govrun.runtime.manifest.problems import fail_if
from govrun.runtime.manifest.reader import FieldPath

OnChange = Literal["deny", "ask"]


class McpServerSpec(Section):
    """One MCP server: how to reach it, whether to believe its hints, what a change means."""

    command: list[Text] | None = Field(
        None,
        min_length=1,
        description="stdio: the program and its arguments, as an argv (no shell), e.g. "
        "[uvx, mcp-server-time]. Started at run start, stopped when the run ends.",
    )
    env: dict[EnvVarName, str] = Field(
        default_factory=dict,
        description="stdio: environment variables for the server, over a minimal default "
        "environment (values from ${VAR} are secrets: never written to the trace).",
    )
    cwd: Text | None = Field(
        None, description="stdio: the folder the server starts in (relative to the manifest)."
    )
    url: Url | None = Field(None, description="streamable HTTP: the server's MCP endpoint.")
    headers: dict[HeaderName, str] = Field(
        default_factory=dict,
        description="streamable HTTP: request headers, e.g. Authorization: Bearer ${TOKEN} "
        "(values from ${VAR} are secrets: never written to the trace).",
    )
    trusted: bool = Field(
        False,
        description="Whether the server's readOnlyHint / destructiveHint annotations may set "
        "a tool's risk. Hints from an untrusted server are recorded, never believed.",
    )
    on_change: OnChange = Field(
        "deny",
        description="When a tool's definition differs from its pin in the lock file "
        "(`govrun mcp pin`): deny its calls, or send them to the approval gate.",
    )
    startup_timeout_s: PositiveNumber = Field(
        30, description="Seconds the server may take to start and list its tools."
    )

    @model_validator(mode="after")
    def _one_transport(self) -> Self:
        problems: dict[FieldPath, str] = {}
        if (self.command is None) == (self.url is None):
            got = "both" if self.command is not None else "neither"
            problems[()] = (
                "expected exactly one of `command` (a program govrun starts, over stdio) or "
                f"`url` (a streamable-HTTP endpoint); got {got}"
            )
        elif self.url is not None:
            for key in ("env", "cwd"):
                if getattr(self, key):
                    problems[(key,)] = f"expected `{key}` only with `command` (stdio servers)"
        elif self.headers:
            problems[("headers",)] = "expected `headers` only with `url` (HTTP servers)"
        fail_if(problems)
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"


def split_ref(ref: str) -> tuple[str, str]:
    """``SERVER/TOOL`` -> (server, tool); the tool part may itself hold ``/``."""
    server, _, tool = ref.partition("/")
    return server, tool


def is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")
