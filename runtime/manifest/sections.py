"""The manifest's sections: model, tools, policy, approvals, budgets, interrupts.

Each validator that checks several fields together reports every problem it finds, each at
the field the user has to change (``fail_if({("scope", "roots"): ...})``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlparse

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from govrun.runtime.errors import InputError
from govrun.runtime.manifest.checks import SUCCESS_ONLY_CHECKS, Check
from govrun.runtime.manifest.fields import (
    SUPPORTED_BUILTINS,
    Action,
    Answer,
    Builtin,
    CallableRef,
    Effect,
    EnvVarName,
    Fraction,
    Host,
    Identifier,
    Integer,
    Isolation,
    McpRef,
    NonNegativeInt,
    NonNegativeNumber,
    Number,
    Penalty,
    PositiveInt,
    PositiveNumber,
    Provider,
    Regex,
    Risk,
    Section,
    Temperature,
    Text,
    TextList,
    ToolApproval,
    ToolName,
    ToolNameOrGlob,
    Url,
    not_a_policy_effect,
)
from govrun.runtime.manifest.inputs import SCRIPT, open_file
from govrun.runtime.manifest.mcp import is_glob, split_ref
from govrun.runtime.manifest.problems import expected_one_of, fail_if, message
from govrun.runtime.manifest.reader import FieldPath, show
from govrun.runtime.manifest.routing import ModelBudget

DEFAULT_API_KEY_ENV: dict[str, str] = {"openai": "OPENAI_API_KEY"}

SCOPE_KEYS: dict[str, tuple[str, ...]] = {
    "fs.read": ("roots", "hardlinks"),
    "fs.write": ("roots", "hardlinks"),
    "fs.list": ("roots", "hardlinks"),
    "fs.delete": ("roots", "hardlinks"),
    "shell": ("roots", "commands", "cwd", "hardlinks"),
    "http.get": ("hosts",),
}
"""Which ``scope`` keys each builtin understands."""

_ROOTS_WHY = "the folders it may touch, relative to the manifest folder"
REQUIRED_SCOPE: dict[str, tuple[str, str]] = {
    "fs.read": ("roots", _ROOTS_WHY),
    "fs.write": ("roots", _ROOTS_WHY),
    "fs.list": ("roots", _ROOTS_WHY),
    "fs.delete": ("roots", _ROOTS_WHY),
    "shell": ("commands", "an allowlist of the commands it may run"),
    "http.get": ("hosts", "the hosts it may fetch from"),
}
"""The scope key a builtin cannot run without, and why."""


# --- model -------------------------------------------------------------------------------------


OWNED_REQUEST_FIELDS = frozenset(
    {
        "model",
        "messages",
        "tools",
        "stream",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "parallel_tool_calls",
        "reasoning_effort",
        "tool_choice",
        "response_format",
    }
)
"""Request fields `model.params.extra_body` may not set: the adapter's own, and the
parameters `model.params` names (one place for each, so the record says which was sent)."""


class JsonSchemaFormat(Section):
    """A named JSON Schema the reply must follow (`response_format.json_schema`)."""

    name: Identifier = Field(description="The schema's name, as the API requires.")
    json_schema: dict[str, Any] = Field(alias="schema", description="A JSON Schema.")
    description: Text | None = Field(None, description="What the format is for.")
    strict: bool | None = Field(None, description="Whether the server must follow it exactly.")

    @model_serializer(mode="wrap")
    def _by_alias(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict) and "json_schema" in data:
            data["schema"] = data.pop("json_schema")
        return data


class ResponseFormat(Section):
    """`model.params.response_format`, as the chat completions API takes it."""

    type: Literal["text", "json_object", "json_schema"] = Field(description="The format.")
    json_schema: JsonSchemaFormat | None = Field(
        None, description="For type json_schema: the schema (name, schema, strict)."
    )

    @model_validator(mode="after")
    def _schema_iff_json_schema(self) -> Self:
        if self.type == "json_schema" and self.json_schema is None:
            raise message("expected `json_schema` (name and schema) with type json_schema")
        if self.type != "json_schema" and self.json_schema is not None:
            raise message(f"expected `json_schema` only with type json_schema; got {self.type}")
        return self


class ForcedFunction(Section):
    """The tool a forced `tool_choice` names."""

    name: ToolName = Field(description="A tool of this manifest, as the model calls it.")


class ForcedTool(Section):
    """`tool_choice` that makes the model call one tool, as the chat completions API
    takes it: `{type: function, function: {name: NAME}}`."""

    type: Literal["function"] = Field(description="Always function.")
    function: ForcedFunction = Field(description="The tool the model must call.")


def _tool_choice_kind(value: Any) -> str:
    return "forced" if isinstance(value, dict | ForcedTool) else "named"


ToolChoice = Annotated[
    Annotated[Literal["auto", "none", "required"], Tag("named")]
    | Annotated[ForcedTool, Tag("forced")],
    Discriminator(_tool_choice_kind),
]
"""A word, or the forced tool as a mapping: each checked on its own terms, one message."""


class ModelParams(Section):
    """Sampling parameters sent with each request. Unknown names are refused, never sent."""

    temperature: Temperature | None = Field(None, description="Sampling temperature.")
    top_p: Fraction | None = Field(None, description="Nucleus sampling mass.")
    max_tokens: PositiveInt | None = Field(None, description="Most tokens per response.")
    max_completion_tokens: PositiveInt | None = Field(
        None, description="Most completion tokens per response (newer OpenAI name)."
    )
    seed: Integer | None = Field(None, description="Seed, for providers that support one.")
    stop: TextList | None = Field(None, description="Stop sequence(s): a string or a list.")
    presence_penalty: Penalty | None = Field(None, description="Presence penalty.")
    frequency_penalty: Penalty | None = Field(None, description="Frequency penalty.")
    parallel_tool_calls: bool | None = Field(
        None, description="Whether the model may propose several tool calls in one response."
    )
    reasoning_effort: Text | None = Field(
        None, description="For reasoning models, e.g. low, medium or high."
    )
    tool_choice: ToolChoice | None = Field(
        None,
        description="Whether the model may (auto), must (required) or must not (none) call "
        "tools, or which one it must call ({type: function, function: {name: NAME}}, a "
        "tool of this manifest); some servers call tools only with `auto`. Not sent when "
        "there are no tools.",
    )
    response_format: ResponseFormat | None = Field(
        None,
        description="The reply's format: {type: text}, {type: json_object} or "
        "{type: json_schema, json_schema: {name, schema, strict}}.",
    )
    extra_body: dict[Text, Any] | None = Field(
        None,
        description="Provider extras merged into the request body as given (llama.cpp's "
        "`cache_prompt`, Ollama's `top_k`, vLLM's `guided_json`); recorded in the manifest "
        "snapshot like every parameter.",
    )

    @field_validator("extra_body")
    @classmethod
    def _extras_not_owned(cls, extras: dict[str, Any] | None) -> dict[str, Any] | None:
        owned = sorted(set(extras or {}) & OWNED_REQUEST_FIELDS)
        if owned:
            raise message(
                f"expected provider extras only; got {', '.join(owned)}, which govrun sets "
                "itself (or, for a parameter it knows, set it under model.params)"
            )
        return extras


class Pricing(Section):
    """USD per million tokens, for `budgets.max_cost_usd` and cost reports."""

    input_per_mtok: NonNegativeNumber = Field(description="USD per million prompt tokens.")
    output_per_mtok: NonNegativeNumber = Field(description="USD per million completion tokens.")
    cached_input_per_mtok: NonNegativeNumber | None = Field(
        None, description="USD per million cached prompt tokens (default: input price)."
    )


class ModelConfig(Section):
    """Which model answers, and how to reach it."""

    provider: Provider = Field(
        description="openai (any OpenAI-compatible server) or scripted (responses from a file)."
    )
    name: Text | None = Field(None, description="Model name, e.g. gpt-4o-mini (openai: required).")
    base_url: Url | None = Field(
        None, description="Base URL of an OpenAI-compatible API; the provider's if absent."
    )
    api_key_env: EnvVarName | None = Field(
        None,
        description="NAME of the env var holding the API key, never the key itself (openai "
        "default: OPENAI_API_KEY, unless `base_url` names another server: left out there, "
        "the endpoint is keyless). Its value never reaches the trace; one under 8 "
        "characters is refused.",
    )
    script: Text | None = Field(
        None, description="scripted only: YAML list of responses, relative to the manifest folder."
    )
    params: ModelParams = Field(default_factory=ModelParams, description="Sampling parameters.")
    timeout_s: PositiveNumber = Field(60, description="Seconds to wait for one response.")
    max_retries: NonNegativeInt = Field(3, description="Retries on transient model errors.")
    pricing: Pricing | None = Field(None, description="Token prices for cost accounting.")
    max_refused_replies: PositiveInt = Field(
        3,
        description="Replies in a row that are no final answer (cut off by the token limit, "
        "filtered, empty, a refusal, a tool call written as text) before the run fails with "
        "model_error; each one before that is told why and asked again.",
    )
    tool_call_format: Literal["hermes", "json"] | None = Field(
        None,
        description="Parse tool calls the model writes as text into real calls: hermes "
        "(<tool_call>{...}</tool_call>) or json (a bare or fenced {name, arguments} object). "
        "For servers without native tool_calls; absent, such text is refused.",
    )
    tool_schema: Literal["full", "minimal"] = Field(
        "full",
        description="The tool schemas sent: full (descriptions, defaults, formats) or minimal "
        "(names, types, required, enums: a smaller prompt and grammar for small local "
        "models). Neither carries length bounds; validation enforces them.",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_api_key_env(cls, data: Any) -> Any:
        """The provider's key variable, unless ``base_url`` names another server: such an
        endpoint without ``api_key_env`` is keyless (a local server gets a placeholder key,
        not a secret), and the OpenAI key is never sent to it."""
        if isinstance(data, dict) and "api_key_env" not in data:
            default = DEFAULT_API_KEY_ENV.get(str(data.get("provider")))
            if default and _provider_endpoint(data.get("base_url")):
                return {**data, "api_key_env": default}
        return data

    @model_validator(mode="after")
    def _fits_provider(self, info: ValidationInfo) -> Self:
        problems: dict[FieldPath, str] = {}
        if self.provider == "openai" and self.name is None:
            problems[("name",)] = (
                "required key 'name' is missing (provider openai needs a model, e.g. gpt-4o-mini)"
            )
        if self.provider == "scripted":
            if from_snapshot(info):
                return self
            problems.update(self._script_problems(base_dir(info)))
            for key in SCRIPTED_IGNORES:
                if key in self.model_fields_set:
                    problems[(key,)] = (
                        f"expected no `{key}` with provider scripted (it answers from its "
                        "script and would ignore it); remove it or use provider openai"
                    )
        elif self.script is not None:
            problems[("script",)] = (
                f"expected `script` only with provider scripted; got provider {self.provider}"
            )
        fail_if(problems)
        return self

    def _script_problems(self, folder: Path) -> dict[FieldPath, str]:
        if self.script is None:
            return {
                ("script",): "required key 'script' is missing (provider scripted replays "
                "responses from a YAML file, relative to the manifest)"
            }
        script = folder / self.script
        if not script.exists():
            return {
                ("script",): f"expected an existing file relative to {folder}; "
                f"got {show(self.script)}"
            }
        try:  # a folder or a FIFO is named as what it is, and never waited on
            open_file(script, SCRIPT).close()
        except InputError as exc:
            return {("script",): exc.message}
        return {}


def _provider_endpoint(base_url: Any) -> bool:
    """Whether ``base_url`` is the provider's own API (absent, or api.openai.com)."""
    if base_url is None:
        return True
    try:
        return urlparse(str(base_url)).hostname == "api.openai.com"
    except ValueError:
        return True  # a malformed URL is reported by its own field


SCRIPTED_IGNORES = ("base_url", "api_key_env", "params", "timeout_s", "tool_schema")
"""Model keys the scripted adapter has no use for: refused rather than silently ignored."""


def from_snapshot(info: ValidationInfo) -> bool:
    """Validating a run's recorded snapshot (defaults filled in, script not needed), not a
    file someone wrote: checks about how keys were written do not apply."""
    return isinstance(info.context, dict) and bool(info.context.get("snapshot"))


def base_dir(info: ValidationInfo) -> Path:
    """The manifest folder passed as validation context (the current folder if none)."""
    context = info.context if isinstance(info.context, dict) else {}
    return Path(context.get("base_dir") or Path.cwd())


# --- tools -------------------------------------------------------------------------------------

BUILTIN_RISK: dict[str, Risk] = {
    "fs.read": "low",
    "fs.list": "low",
    "fs.write": "medium",
    "fs.delete": "high",
    "shell": "high",
    "http.get": "medium",
}
"""Risk of a builtin whose tool declares none."""

PYTHON_RISK: Risk = "medium"
"""Risk of a Python-callable tool that declares none."""


class CommandRule(Section):
    """How one allowlisted shell command may be called."""

    flags: list[Text] = Field(
        default_factory=list, description="Flags allowed (e.g. -l); any other flag is refused."
    )
    subcommands: list[Text] | None = Field(
        None, min_length=1, description="If set, the first argument must be one of these."
    )
    max_args: NonNegativeInt | None = Field(
        None, description="Most arguments after the command (and subcommand)."
    )


class ToolScope(Section):
    """Where a builtin tool may act. Which keys apply depends on `uses` (see SCOPE_KEYS)."""

    roots: list[Text] | None = Field(
        None, min_length=1, description="fs.*, shell: confining folders (relative to manifest)."
    )
    commands: dict[str, CommandRule] | None = Field(
        None, min_length=1, description="shell: allowlisted commands by name."
    )
    cwd: Text | None = Field(None, description="shell: working folder (relative to manifest).")
    hosts: list[Host] | None = Field(
        None, min_length=1, description="http.get: allowed hosts; '*.x.org' matches subdomains."
    )
    hardlinks: Literal["deny", "allow"] | None = Field(
        None,
        description="fs.*, shell: whether a file with more than one hard link may be read "
        "(default deny: another name for it may be outside the roots, where the path "
        "check cannot see it).",
    )


class ToolSpec(Section):
    """A tool the model may call: a builtin (`uses`), a Python callable (`python`) or a tool
    of an MCP server (`mcp`)."""

    name: ToolNameOrGlob = Field(
        description="Name the model calls the tool by (with `mcp: SERVER/*`, a pattern whose "
        "one '*' stands for each server tool's name, e.g. git_*)."
    )
    uses: Builtin | None = Field(None, description="Builtin implementation.")
    python: CallableRef | None = Field(
        None, description="Python callable 'module.path:function' (instead of `uses`)."
    )
    mcp: McpRef | None = Field(
        None,
        description="SERVER/TOOL: a tool of a server under `mcp_servers:`; SERVER/* (or "
        "another glob) exposes every tool of the server it matches.",
    )
    description: str | None = Field(
        None,
        description="What the tool does, shown to the model (an MCP tool's own description "
        "when absent).",
    )
    risk: Risk | None = Field(
        None,
        description="Risk for policy rules; absent means the builtin's default (medium for "
        "Python tools; for MCP tools, medium, or from the annotations of a trusted server).",
    )
    approval: ToolApproval = Field(
        "policy",
        description="policy: the policy decides; always: a call the policy allows still goes "
        "to the approval gate (a denied call stays denied).",
    )
    timeout_s: PositiveNumber = Field(30, description="Seconds one call may run.")
    max_output_bytes: PositiveInt = Field(65536, description="Output beyond this is cut.")
    isolation: Isolation = Field(
        "inline",
        description="python only. inline: the function runs inside govrun, the fastest way, "
        "but its timeout is best-effort (a function that catches the interrupt keeps "
        "running), and only what it prints through sys.stdout/sys.stderr is captured (not "
        "a C extension or child process writing to the file descriptors itself). process: "
        "it runs in a warm worker process of its own, killed with everything it started "
        "when a call overruns, at the cost of a round trip per call. Either way what it "
        "prints is kept as evidence (evidence.printed), never written to govrun's output.",
    )
    scope: ToolScope = Field(default_factory=ToolScope, description="Where the tool may act.")
    verify: list[Check] = Field(
        default_factory=list, description="Checks after each call; their results are evidence."
    )
    undo: Text | None = Field(
        None,
        description="shell only: the command that undoes one successful call, for rollback; "
        "{argv.N} is word N of the command that ran (0 the command itself), {args.NAME} an "
        "argument of the call. It must be allowed by scope.commands, and is vetted again "
        "with the call's values, e.g. `rmdir {argv.1}` for a `mkdir DIR` tool.",
    )
    undo_max_bytes: NonNegativeInt | None = Field(
        None,
        description="fs.write, fs.delete: largest file whose previous content is kept for "
        "rollback (default 8 MiB); a larger change is recorded as irreversible.",
    )

    @field_validator("verify")
    @classmethod
    def _no_success_only_checks(cls, checks: list[Any]) -> list[Any]:
        fail_if(
            {
                (index, "check"): f"expected a per-call check; got {check.check!r}, which is only "
                "allowed under `success:`"
                for index, check in enumerate(checks)
                if check.check in SUCCESS_ONLY_CHECKS
            }
            | {
                (index, "fresh"): "expected `fresh` only under `success:`; a per-call check "
                "already looks at the file the call just wrote"
                for index, check in enumerate(checks)
                if getattr(check, "fresh", False)
            }
        )
        return checks

    @model_validator(mode="after")
    def _fits_kind(self) -> Self:
        fail_if(self._kind_problems() or self._scope_problems())
        return self

    def _kind_problems(self) -> dict[FieldPath, str]:
        given = [key for key in ("uses", "python", "mcp") if getattr(self, key) is not None]
        if len(given) > 1:
            return {
                (given[1],): "expected exactly one of `uses`, `python` or `mcp`; got "
                + " and ".join(f"`{key}`" for key in given)
            }
        if not given:
            return {
                (): f"expected exactly one of `uses` (a builtin: {', '.join(SUPPORTED_BUILTINS)}), "
                "`python` (module:function) or `mcp` (SERVER/TOOL); got none"
            }
        stars = self.name.count("*")
        if self.mcp is not None and is_glob(split_ref(self.mcp)[1]):
            if stars != 1:
                return {
                    ("name",): "expected a name with exactly one '*' (it stands for each "
                    f"server tool's name, e.g. {split_ref(self.mcp)[0]}_*) for `mcp: "
                    f"{self.mcp}`; got {self.name!r}"
                }
        elif stars:
            return {
                ("name",): "expected a tool name without '*' ('*' is for `mcp: SERVER/*` "
                f"entries); got {self.name!r}"
            }
        return {}

    def _scope_problems(self) -> dict[FieldPath, str]:
        given = [key for key in ToolScope.model_fields if getattr(self.scope, key) is not None]
        if self.uses is None:
            return {
                ("scope", key): f"expected no scope for {self._kind()} (it acts where its "
                f"code or server does; policy and approvals govern it); got {key!r}"
                for key in given
            }
        allowed = SCOPE_KEYS[self.uses]
        problems: dict[FieldPath, str] = {
            ("scope", key): f"expected only {', '.join(allowed)} in the scope of a {self.uses} "
            f"tool; got {key!r}"
            for key in given
            if key not in allowed
        }
        required, why = REQUIRED_SCOPE[self.uses]
        if required not in given:
            problems[("scope", required)] = (
                f"required key {required!r} is missing ({self.uses} needs {why})"
            )
        if self.uses == "shell" and "roots" not in given and "cwd" not in given:
            problems[("scope", "roots")] = (
                "required key 'roots' is missing (shell commands run confined to a folder: "
                "give scope.roots, scope.cwd, or both)"
            )
        return problems

    @model_validator(mode="after")
    def _undo_fits(self) -> Self:
        problems: dict[FieldPath, str] = {}
        if self.undo is not None:
            problems.update(_undo_problems(self))
        if self.undo_max_bytes is not None and self.uses not in ("fs.write", "fs.delete"):
            problems[("undo_max_bytes",)] = (
                "expected `undo_max_bytes` only on fs.write and fs.delete tools (they keep "
                f"the previous content of the files they change); got it on {self._kind()}"
            )
        fail_if(problems)
        return self

    @model_validator(mode="after")
    def _isolation_fits(self) -> Self:
        if "isolation" in self.model_fields_set and self.python is None:
            fail_if(
                {
                    ("isolation",): "expected `isolation` only on python tools (builtins are "
                    f"govrun's own code and keep their own time limits); got it on {self._kind()}"
                }
            )
        return self

    @model_serializer(mode="wrap")
    def _without_default_isolation(self, handler: SerializerFunctionWrapHandler) -> Any:
        """The snapshot leaves out `isolation: inline`: a run recorded before the key existed
        then replays with the same `run_started` (and manifest hash) it recorded."""
        data = handler(self)
        if self.isolation == "inline" and isinstance(data, dict):
            data.pop("isolation", None)
        return data

    def _kind(self) -> str:
        if self.uses:
            return f"a {self.uses} tool"
        return "an mcp tool" if self.mcp else "a python tool"

    @property
    def is_pattern(self) -> bool:
        """An `mcp: SERVER/*` entry: its name is a pattern until the server lists its tools."""
        return "*" in self.name

    def matches(self, pattern: str) -> bool:
        """Whether a policy/interrupt glob names this tool, by its name or its builtin. An
        `mcp: SERVER/*` entry matches a glob that could name one of its tools: ``git_*`` and
        ``git_status`` both match ``name: git_*``."""
        if self.is_pattern:
            return fnmatchcase(pattern, self.name) or fnmatchcase(self.name, pattern)
        return fnmatchcase(self.name, pattern) or (
            self.uses is not None and fnmatchcase(self.uses, pattern)
        )


def tool_risk(spec: ToolSpec) -> Risk:
    """The tool's declared risk, else the default for its builtin (Python tools: medium)."""
    if spec.risk is not None:
        return spec.risk
    return BUILTIN_RISK.get(spec.uses, PYTHON_RISK) if spec.uses else PYTHON_RISK


_UNDO_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_UNDO_FIELD = re.compile(r"args\.[A-Za-z_][A-Za-z0-9_]*|argv\.[0-9]+")


def _undo_problems(tool: ToolSpec) -> dict[FieldPath, str]:
    """``undo:`` belongs to shell tools, and its command must pass the tool's own allowlist
    (the shell tool vets it again, with the call's values, each time it records one)."""
    where: FieldPath = ("undo",)
    if tool.uses != "shell":
        return {
            where: "expected `undo` only on shell tools (fs.write and fs.delete keep the "
            f"previous content themselves); got it on {tool._kind()}"
        }
    try:
        words = shlex.split(tool.undo or "", posix=True)
    except ValueError as exc:
        return {where: f"expected a command line; got {show(tool.undo)} ({exc})"}
    bad = [p for w in words for p in _UNDO_PLACEHOLDER.findall(w) if not _UNDO_FIELD.fullmatch(p)]
    if bad:
        found = "{" + bad[0] + "}"
        return {where: f"expected only {{argv.N}} or {{args.NAME}} placeholders; got {found}"}
    commands = tool.scope.commands or {}
    if not words or _UNDO_PLACEHOLDER.search(words[0]) or words[0] not in commands:
        allowed = ", ".join(sorted(commands)) or "none"
        got = show(words[0]) if words else "nothing"
        return {
            where: f"expected a command allowed by scope.commands ({allowed}); got {got}, "
            "and an undo command runs under the tool's own allowlist"
        }
    flags = set(commands[words[0]].flags)
    for word in words[1:]:
        if word.startswith("-") and word != "-" and word != "--" and "{" not in word:
            name = word.partition("=")[0]
            short = not word.startswith("--") and all(f"-{c}" in flags for c in word[1:])
            if word not in flags and name not in flags and not short:
                return {
                    where: f"expected flags allowed for {words[0]} in scope.commands "
                    f"({', '.join(sorted(flags)) or 'none'}); got {show(word)}"
                }
    return {}


# --- policy ------------------------------------------------------------------------------------


class Predicate(Section):
    """A test on one argument of a tool call; every key given must hold."""

    glob: Text | None = Field(
        None,
        description="The argument matches this glob (a path: its canonical root-relative "
        "form; a command: any word, or for an allow rule every word).",
    )
    regex: Regex | None = Field(
        None,
        description="The argument matches this regex (search, RE2 syntax; a command: per "
        "word, as for glob).",
    )
    name: TextList | None = Field(
        None,
        min_length=1,
        description="Path arguments: the canonical path's last component matches one of "
        "these globs (e.g. '.env', '*.pem').",
    )
    under: TextList | None = Field(
        None,
        min_length=1,
        description="Path arguments: the canonical root-relative path is one of these "
        "folders or inside it ('.' is the whole root).",
    )
    inside: list[Text] | None = Field(
        None, min_length=1, description="Path argument is inside one of these (manifest-relative)."
    )
    not_inside: list[Text] | None = Field(
        None, min_length=1, description="Path argument is inside none of these folders."
    )
    host_in: list[Host] | None = Field(
        None, min_length=1, description="URL argument's host is one of these ('*.x.org' ok)."
    )
    min: Number | None = Field(None, description="Numeric argument is >= this.")
    max: Number | None = Field(None, description="Numeric argument is <= this.")
    equals: Any = Field(None, description="Argument equals this value.")
    one_of: list[Any] | None = Field(None, min_length=1, description="Argument is one of these.")
    max_bytes: PositiveInt | None = Field(
        None, description="Argument, as UTF-8 JSON, is at most this many bytes."
    )

    @model_validator(mode="after")
    def _meaningful(self) -> Self:
        problems: dict[FieldPath, str] = {}
        if not self.model_fields_set:
            keys = ", ".join(type(self).model_fields)
            problems[()] = f"expected at least one of {keys}; got an empty mapping"
        if "equals" in self.model_fields_set and self.equals is None:
            problems[("equals",)] = "expected a value to compare with; got null"
        if self.min is not None and self.max is not None and self.min > self.max:
            problems[("min",)] = f"expected min <= max ({show(self.max)}); got {show(self.min)}"
        fail_if(problems)
        return self


class PolicyRule(Section):
    """One ordered policy rule; the first rule that matches a call decides it."""

    id: Identifier = Field(description="Unique rule id, recorded with every decision.")
    tools: TextList = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        description="Tool name globs; a tool also matches by its builtin (e.g. 'fs.*').",
    )
    effect: Effect = Field(description="allow, deny, or ask (the approver decides).")
    risk: list[Risk] | None = Field(
        None, min_length=1, description="Match only calls whose tool risk is listed."
    )
    when: dict[str, Predicate] = Field(
        default_factory=dict, description="Argument name -> predicate; all must hold."
    )
    reason: str | None = Field(None, description="Why, shown to the model and the operator.")


class Policy(Section):
    """Decides each proposed tool call: the first matching rule, else `default`."""

    default: Effect = Field("deny", description="Effect when no rule matches.")
    rules: list[PolicyRule] = Field(default_factory=list, description="Ordered rules.")

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: list[PolicyRule]) -> list[PolicyRule]:
        fail_if(duplicates([rule.id for rule in rules], "id", "rules"))
        return rules


# --- approvals ---------------------------------------------------------------------------------


class OnTimeout(Section):
    """What an unanswered approval prompt decides once `timeout_s` has passed, by the risk
    of the call."""

    low: Answer = Field("reject", description="approve or reject a low-risk call.")
    medium: Answer = Field("reject", description="approve or reject a medium-risk call.")
    high: Answer = Field("reject", description="approve or reject a high-risk call.")


def _same_for_every_risk(value: Any) -> Any:
    """``on_timeout: reject`` is short for the same answer at every risk level."""
    if not isinstance(value, str):
        return value
    not_a_policy_effect(value)
    if value not in ("approve", "reject"):
        raise message(
            expected_one_of(["approve", "reject"], value)
            + " (or a mapping of risk level -> approve/reject)"
        )
    return dict.fromkeys(OnTimeout.model_fields, value)


OnTimeoutSetting = Annotated[
    OnTimeout,
    BeforeValidator(_same_for_every_risk, json_schema_input_type=Answer | OnTimeout),
]


NOTIFY_FIELDS = ("run", "call", "tool", "risk", "trace")
"""The placeholders an `approvals.notify.command` may use."""


class Notify(Section):
    """Who to tell when a call starts waiting for a decision from elsewhere."""

    command: list[Text] | None = Field(
        None,
        min_length=1,
        description="A program and its arguments (no shell); {run}, {call}, {tool}, {risk} "
        "and {trace} are replaced by the waiting call's values.",
    )
    url: Url | None = Field(None, description="POST a JSON description of the waiting call here.")
    timeout_s: PositiveNumber = Field(
        5, description="How long the command or the POST may take; it never delays the run."
    )

    @model_validator(mode="after")
    def _something_to_do(self) -> Self:
        problems: dict[FieldPath, str] = {}
        if self.command is None and self.url is None:
            problems[()] = "expected `command`, `url` or both"
        for i, word in enumerate(self.command or []):
            for name in _UNDO_PLACEHOLDER.findall(word):
                if name not in NOTIFY_FIELDS:
                    problems[("command", i)] = (
                        f"expected placeholders among {{{'}, {'.join(NOTIFY_FIELDS)}}}; "
                        f"got {{{name}}}"
                    )
        fail_if(problems)
        return self


class Approvals(Section):
    """How `ask` calls are decided at the approval gate: who is recorded, how long the
    inline prompt waits, and what an unanswered prompt decides."""

    mode: Literal["prompt", "deny", "auto", "wait"] | None = Field(
        None,
        description="How calls no standing rule decides are decided (`govrun run --approve` "
        "overrides it): prompt at the terminal, deny, auto-approve, or wait for a decision "
        "from elsewhere (`govrun approve` / `reject`; on a terminal the prompt is shown too). "
        "Absent: prompt on a terminal, else deny.",
    )
    identity: Text | None = Field(
        None,
        description="Approver identity recorded with each decision (overridden by "
        "`govrun run --approver`; default user@host).",
    )
    timeout_s: PositiveNumber | None = Field(
        None,
        description="Seconds a call waits for a decision (at the prompt or from elsewhere); "
        "absent waits forever. Without a terminal and without `wait`, nothing waits.",
    )
    trusted_keys: Text | None = Field(
        None,
        description="A trusted-keys file (as for `govrun verify --trusted-keys`, relative to "
        "the manifest): a decision sent from elsewhere must be signed by one of its keys.",
    )
    notify: Notify | None = Field(
        None, description="Run a command and/or POST to a URL when a call starts waiting."
    )
    on_timeout: OnTimeoutSetting = Field(
        default_factory=OnTimeout,
        description="approve or reject per risk level (low, medium, high) when the prompt "
        "times out, or one answer for all; default reject.",
    )

    @model_validator(mode="after")
    def _timeout_for_on_timeout(self, info: ValidationInfo) -> Self:
        written = "on_timeout" in self.model_fields_set and not from_snapshot(info)
        if written and self.timeout_s is None:
            fail_if(
                {
                    ("on_timeout",): "expected `timeout_s` with `on_timeout` (without a timeout "
                    "the prompt waits forever, so on_timeout would never apply); add "
                    "`timeout_s: SECONDS` or remove on_timeout"
                }
            )
        return self


# --- budgets and interrupts --------------------------------------------------------------------


class Budgets(Section):
    """Hard limits; reaching one stops the run with `budget_exceeded`."""

    max_steps: PositiveInt = Field(50, description="Most loop steps.")
    max_model_calls: PositiveInt | None = Field(None, description="Most model requests.")
    max_tool_calls: PositiveInt | None = Field(None, description="Most tool calls in total.")
    max_tool_calls_per_tool: dict[str, PositiveInt] = Field(
        default_factory=dict, description="Most calls per declared tool name."
    )
    max_tokens: PositiveInt | None = Field(None, description="Most tokens, prompt + output.")
    max_cost_usd: PositiveNumber | None = Field(None, description="Most USD (needs pricing).")
    max_wall_time_s: PositiveNumber | None = Field(None, description="Most wall-clock seconds.")
    per_model: dict[Identifier, ModelBudget] = Field(
        default_factory=dict,
        description="Limits per name under `models:` (model calls, tokens, cost).",
    )


class RepeatCall(Section):
    """Interrupt when the same tool is called with the same arguments again and again."""

    max_repeats: Integer = Field(3, ge=2, description="Identical calls that trigger it.")
    action: Action = Field("stop", description="pause (ask the operator) or stop.")


class ForbiddenSequence(Section):
    """Interrupt when tools are called in this order (not necessarily adjacent)."""

    id: Identifier = Field(description="Unique id, recorded with the interrupt.")
    sequence: list[Text] = Field(min_length=2, description="Tool names or globs, in order.")
    action: Action = Field("stop", description="pause (ask the operator) or stop.")


class ArgumentSize(Section):
    """Interrupt when a call's arguments are unusually large (a common exfiltration sign)."""

    max_bytes: PositiveInt = Field(description="Largest arguments, as UTF-8 JSON bytes.")
    action: Action = Field("stop", description="pause (ask the operator) or stop.")


class Interrupts(Section):
    """Behaviour detectors that pause or stop a run."""

    repeat_call: RepeatCall | None = Field(None, description="Loop detection.")
    forbidden_sequences: list[ForbiddenSequence] = Field(
        default_factory=list, description="Tool-call orders that must not happen."
    )
    argument_size: ArgumentSize | None = Field(None, description="Oversized arguments.")

    @field_validator("forbidden_sequences")
    @classmethod
    def _unique_ids(cls, sequences: list[ForbiddenSequence]) -> list[ForbiddenSequence]:
        fail_if(duplicates([seq.id for seq in sequences], "id", "forbidden_sequences"))
        return sequences


def duplicates(values: Sequence[str], key: str, where: str) -> dict[FieldPath, str]:
    """A problem at ``(index, key)`` for each value already used at an earlier index."""
    first: dict[str, int] = {}
    problems: dict[FieldPath, str] = {}
    for index, value in enumerate(values):
        if value in first:
            problems[(index, key)] = (
                f"expected a unique {key}; got {value!r} again (first at {where}[{first[value]}])"
            )
        first.setdefault(value, index)
    return problems
