"""Field types shared by every manifest section: names, patterns and their plain-word meaning.

Patterns live in the JSON Schema (so editors check them) and in ``PATTERN_WORDS`` (so error
messages say "an environment variable NAME" instead of printing a regex).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
)

from govrun.runtime.manifest.patterns import PatternError, compile_pattern
from govrun.runtime.manifest.problems import message
from govrun.runtime.manifest.reader import show

Provider = Literal["openai", "scripted"]
Builtin = Literal["fs.read", "fs.write", "fs.list", "fs.delete", "shell", "http.get"]
Risk = Literal["low", "medium", "high"]
Effect = Literal["allow", "deny", "ask"]
Action = Literal["pause", "stop"]
ToolApproval = Literal["policy", "always"]
Isolation = Literal["inline", "process"]

PROVIDERS: tuple[str, ...] = get_args(Provider)
SUPPORTED_BUILTINS: tuple[str, ...] = get_args(Builtin)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
TOOL_NAME_OR_GLOB_PATTERN = r"^[A-Za-z0-9_*-]{1,64}$"
MCP_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}/[A-Za-z0-9_.*?/-]{1,128}$"
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
CALLABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_.]*$"
URL_PATTERN = r"^https?://[^\s/?#]+[^\s]*$"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
HOST_PATTERN = rf"^(\*\.)?{_LABEL}(\.{_LABEL})*(:[0-9]{{1,5}})?$"
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"

PATTERN_WORDS: dict[str, str] = {
    NAME_PATTERN: "a name of letters, digits, '_', '.' or '-' starting with a letter or digit "
    "(at most 64 characters)",
    TOOL_NAME_PATTERN: "a tool name of letters, digits, '_' or '-' (1-64 characters; the model "
    "calls it as a function name)",
    TOOL_NAME_OR_GLOB_PATTERN: "a tool name of letters, digits, '_' or '-' (1-64 characters), "
    "with one '*' standing for each server tool's name when `mcp:` is a glob",
    MCP_REF_PATTERN: "SERVER/TOOL (a server under `mcp_servers:` and one of its tools), or "
    "SERVER/* for all of them",
    HEADER_NAME_PATTERN: "an HTTP header name such as Authorization",
    ENV_NAME_PATTERN: "an environment variable NAME such as OPENAI_API_KEY",
    CALLABLE_PATTERN: "a Python callable as 'module.path:function'",
    URL_PATTERN: "an http(s) URL such as https://api.openai.com/v1",
    HOST_PATTERN: "a host name such as api.github.com or *.example.org (no scheme or path)",
    SHA256_PATTERN: "a SHA-256 hex digest (64 hex characters)",
}
"""Plain words for each pattern, used in error messages instead of the regex."""

_KEY_PREFIXES = ("sk-", "sk_", "ghp_", "gho_", "github_pat_", "xox", "AKIA", "AIza", "hf_")


def _not_bool(value: Any) -> Any:
    """YAML ``true`` would otherwise pass as the number 1."""
    if isinstance(value, bool):
        raise message(f"expected a number; got {show(value)}")
    return value


def _regex_compiles(pattern: str, info: ValidationInfo) -> str:
    """Compiled as it will run (RE2, linear time): a pattern the engine refuses is a problem
    here, at its line, never a surprise during a run. A manifest recorded in an older
    trace may hold a pattern only Python's engine takes; replay accepts it (see
    :func:`govrun.runtime.manifest.patterns.compile_pattern`)."""
    snapshot = isinstance(info.context, dict) and bool(info.context.get("snapshot"))
    try:
        compile_pattern(pattern, legacy=snapshot)
    except PatternError as exc:
        raise message(f"expected a valid regular expression; got {show(pattern)} ({exc})") from None
    return pattern


def _not_a_literal_key(value: Any) -> Any:
    """Catch a pasted API key before the pattern check, so no message ever echoes it."""
    if isinstance(value, str) and looks_like_key(value):
        raise message(
            "expected the NAME of an environment variable; got what looks like an API key itself "
            "(not shown) — put the key in an env var and name the var here, e.g. OPENAI_API_KEY"
        )
    return value


def looks_like_key(value: str) -> bool:
    """Known key prefixes, or a long unbroken mix of letters and digits."""
    if value.startswith(_KEY_PREFIXES):
        return True
    mixed = re.search(r"[A-Za-z]", value) and re.search(r"[0-9]", value)
    return len(value) >= 24 and "_" not in value and bool(mixed)


_POLICY_WORDS = {"allow": "approve", "deny": "reject"}


def not_a_policy_effect(value: Any) -> Any:
    """``deny`` where an approval answer belongs: say which word approvals use."""
    if isinstance(value, str) and value in _POLICY_WORDS:
        raise message(
            f"expected one of approve, reject; got {show(value)} — did you mean "
            f"{_POLICY_WORDS[value]!r}? (allow/deny are policy effects; an approver approves "
            "or rejects)"
        )
    return value


def _as_list(value: Any) -> Any:
    """Let a single string stand for a one-item list (``tools: write_file``)."""
    return [value] if isinstance(value, str) else value


# Bounds sit inside the type, before the bool guard, so they reach the JSON Schema as
# minimum/exclusiveMinimum even where the field is optional.
_NO_BOOL = BeforeValidator(_not_bool)
Number = Annotated[float, _NO_BOOL]
Integer = Annotated[int, _NO_BOOL]
PositiveNumber = Annotated[float, Field(gt=0), _NO_BOOL]
NonNegativeNumber = Annotated[float, Field(ge=0), _NO_BOOL]
PositiveInt = Annotated[int, Field(gt=0), _NO_BOOL]
NonNegativeInt = Annotated[int, Field(ge=0), _NO_BOOL]
Temperature = Annotated[float, Field(ge=0, le=2), _NO_BOOL]
Fraction = Annotated[float, Field(ge=0, le=1), _NO_BOOL]
Penalty = Annotated[float, Field(ge=-2, le=2), _NO_BOOL]
Text = Annotated[str, StringConstraints(min_length=1)]
Regex = Annotated[str, AfterValidator(_regex_compiles)]
Identifier = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
ToolName = Annotated[str, StringConstraints(pattern=TOOL_NAME_PATTERN)]
ToolNameOrGlob = Annotated[str, StringConstraints(pattern=TOOL_NAME_OR_GLOB_PATTERN)]
McpRef = Annotated[str, StringConstraints(pattern=MCP_REF_PATTERN)]
HeaderName = Annotated[str, StringConstraints(pattern=HEADER_NAME_PATTERN)]
EnvVarName = Annotated[
    str, StringConstraints(pattern=ENV_NAME_PATTERN), BeforeValidator(_not_a_literal_key)
]
CallableRef = Annotated[str, StringConstraints(pattern=CALLABLE_PATTERN)]
Url = Annotated[str, StringConstraints(pattern=URL_PATTERN)]
Host = Annotated[str, StringConstraints(pattern=HOST_PATTERN)]
Sha256 = Annotated[str, StringConstraints(pattern=SHA256_PATTERN)]
Answer = Annotated[Literal["approve", "reject"], BeforeValidator(not_a_policy_effect)]
"""An approver's answer, as written in `approvals.on_timeout` and standing approval rules."""
TextList = Annotated[list[Text], BeforeValidator(_as_list, json_schema_input_type=str | list[str])]


class Section(BaseModel):
    """Base for every manifest section: frozen, no unknown keys, no inf/nan."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
