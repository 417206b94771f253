"""The agent manifest: one YAML file declaring the model, tools, policy, budgets and checks.

``load_manifest`` is the way in. It reports every problem at once as a ManifestError whose
lines read ``FILE:LINE:COL FIELD: expected ...; got ...``; a pydantic or YAML error never
escapes. Sections are frozen and forbid unknown keys, so a typo is never silently ignored.
Section models live in ``manifest_sections`` / ``manifest_checks`` and are re-exported here.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from govrun.runtime.errors import ManifestError
from govrun.runtime.manifest.checks import (
    CHECK_KINDS,
    Check,
    ExitCodeCheck,
    FileContainsCheck,
    FileExistsCheck,
    FileSha256Check,
    FinalAnswerMatchesCheck,
    OutputMatchesCheck,
    OutputSchemaCheck,
    PythonCheck,
)
from govrun.runtime.manifest.fields import (
    PATTERN_WORDS,
    PROVIDERS,
    SUPPORTED_BUILTINS,
    EnvVarName,
    Identifier,
    Section,
)
from govrun.runtime.manifest.inputs import MANIFEST, read_text
from govrun.runtime.manifest.mcp import McpServerSpec, split_ref
from govrun.runtime.manifest.problems import did_you_mean, fail_if, translate
from govrun.runtime.manifest.reader import (
    FieldPath,
    Problem,
    SourceMap,
    Template,
    format_path,
    interpolate,
    load_yaml,
    show,
)
from govrun.runtime.manifest.routing import Compaction, Routing
from govrun.runtime.manifest.sections import (
    Approvals,
    ArgumentSize,
    Budgets,
    CommandRule,
    ForbiddenSequence,
    ForcedTool,
    Interrupts,
    ModelConfig,
    ModelParams,
    OnTimeout,
    Policy,
    PolicyRule,
    Predicate,
    Pricing,
    RepeatCall,
    ToolScope,
    ToolSpec,
    base_dir,
    duplicates,
    from_snapshot,
)
from govrun.runtime.manifest.telemetry import Otlp, Telemetry
from govrun.runtime.manifest.workspace import Workspace, WorkspaceCopy, lexical

NOT_SUPPORTED_YET: dict[str, str] = {}
"""Keys the format reserves but the runtime does not implement: rejected, never ignored.
Delete an entry when its feature lands. ``tools[].KEY`` means KEY inside any tool."""

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

MIN_SECRET_CHARS = 8
"""The shortest secret value a run accepts: redaction replaces a secret wherever it occurs
in a value, and a shorter one (``x``, ``none``) occurs in ordinary text."""


class Manifest(Section):
    """A govrun agent: the model, its tools, and the rules it runs under."""

    version: Literal[1] = Field(1, description="Manifest format version; only 1 exists.")
    name: Identifier = Field(description="Agent name, used in traces and file names.")
    description: str | None = Field(None, description="What the agent is for.")
    input: str | None = Field(None, description="Default task when `govrun run -i` is not given.")
    system: str = Field("", description="System prompt.")
    durability: Literal["flush", "fsync"] = Field(
        "flush", description="Trace durability: flush each event, or also fsync it."
    )
    secrets: list[EnvVarName] = Field(
        default_factory=list, description="NAMES of env vars whose values must never be traced."
    )
    model: ModelConfig = Field(
        None,  # type: ignore[assignment]  # filled from `models:` + `routing.default`
        description="The model that drives the agent (or `models:` with `routing:`).",
    )
    models: dict[Identifier, ModelConfig] = Field(
        default_factory=dict,
        description="Named model configurations, e.g. fast and strong; `routing:` picks one "
        "per step.",
    )
    routing: Routing | None = Field(
        None, description="Which of `models:` handles each step (needs `models:`)."
    )
    compaction: Compaction | None = Field(
        None, description="Keep the prompt under a size by compacting older turns."
    )
    workspace: Workspace | None = Field(
        None,
        description="A folder each run gets a fresh copy of, so every run starts from the same "
        "files and the folder itself never changes.",
    )
    mcp_servers: dict[Identifier, McpServerSpec] = Field(
        default_factory=dict,
        description="MCP servers whose tools `tools:` entries may expose (`mcp: SERVER/TOOL`).",
    )
    tools: list[ToolSpec] = Field(default_factory=list, description="Tools the model may call.")
    policy: Policy = Field(default_factory=Policy, description="Allow, deny or ask per tool call.")
    approvals: Approvals = Field(
        default_factory=Approvals, description="How `ask` calls are decided at the approval gate."
    )
    budgets: Budgets = Field(default_factory=Budgets, description="Hard run limits.")
    interrupts: Interrupts = Field(default_factory=Interrupts, description="Behaviour detectors.")
    success: list[Check] = Field(
        default_factory=list, description="Checks that prove the run succeeded."
    )
    on_failure: Literal["rollback"] | None = Field(
        None,
        description="rollback: when the run fails or stops, or any verification fails, undo "
        "every effect it recorded (file pre-images, shell `undo:` commands), newest first, "
        "before it ends; a file changed since is refused. Recorded as rollback events; the "
        "run still ends failed.",
    )
    telemetry: Telemetry | None = Field(
        None,
        exclude=True,  # where a run is watched, not what it does: never in the snapshot
        description="Export the run as OpenTelemetry spans while it runs (OTLP). Not "
        "recorded in the trace: a run writes the same trace with or without it.",
    )

    on_in_flight: Literal["rerun", "skip", "fail"] | None = Field(
        None,
        description="A call that was running when its worker was lost (or the run crashed) "
        "may or may not have taken effect; when the run resumes without a person to ask "
        "(on Temporal, or `govrun resume` without a terminal and without --in-flight): run "
        "it again, skip it, or stop the run there (fail, the default on Temporal). Recorded.",
    )

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _workspace_copy: WorkspaceCopy | None = PrivateAttr(default=None)
    _templates: dict[FieldPath, Template] = PrivateAttr(default_factory=dict)
    _source: tuple[str, SourceMap] | None = PrivateAttr(default=None)
    """The file it was read from and where each field is in it (for problems found after
    loading, such as :mod:`govrun.runtime.govern.preflight`'s); None for a recorded snapshot."""

    # Fields validate in declaration order, so `tools` is in info.data for the sections below
    # (absent if `tools` itself was invalid, in which case reference checks wait for a fix).

    @field_validator("tools")
    @classmethod
    def _unique_tool_names(cls, tools: list[ToolSpec], info: ValidationInfo) -> list[ToolSpec]:
        fail_if(duplicates([tool.name for tool in tools], "name", "tools"))
        servers = info.data.get("mcp_servers")
        if servers is not None:
            fail_if(
                {
                    (i, "mcp"): _unknown_server(split_ref(tool.mcp)[0], list(servers))
                    for i, tool in enumerate(tools)
                    if tool.mcp is not None and split_ref(tool.mcp)[0] not in servers
                }
            )
        return tools

    @field_validator("policy")
    @classmethod
    def _rules_name_tools(cls, policy: Policy, info: ValidationInfo) -> Policy:
        tools = info.data.get("tools")
        if tools is not None:
            fail_if(
                {
                    ("rules", i, "tools", j): undeclared_tool(glob, tools)
                    for i, rule in enumerate(policy.rules)
                    for j, glob in enumerate(rule.tools)
                    if not names_a_tool(glob, tools)
                }
            )
        return policy

    @field_validator("budgets")
    @classmethod
    def _budgets_name_tools(cls, budgets: Budgets, info: ValidationInfo) -> Budgets:
        tools = info.data.get("tools")
        if tools is not None:
            names = {tool.name for tool in tools if not tool.is_pattern}
            patterns = [tool for tool in tools if tool.is_pattern]
            fail_if(
                {
                    ("max_tool_calls_per_tool", key): undeclared_tool(key, tools, globs=False)
                    for key in budgets.max_tool_calls_per_tool
                    if key not in names and not any(t.matches(key) for t in patterns)
                }
            )
        return budgets

    @field_validator("interrupts")
    @classmethod
    def _sequences_name_tools(cls, interrupts: Interrupts, info: ValidationInfo) -> Interrupts:
        tools = info.data.get("tools")
        if tools is not None:
            fail_if(
                {
                    ("forbidden_sequences", i, "sequence", j): undeclared_tool(glob, tools)
                    for i, seq in enumerate(interrupts.forbidden_sequences)
                    for j, glob in enumerate(seq.sequence)
                    if not names_a_tool(glob, tools)
                }
            )
        return interrupts

    @model_validator(mode="after")
    def _one_model_source(self, info: ValidationInfo) -> Self:
        """`model:` alone, or `models:` with `routing:` — and every name they use declared."""
        snapshot = from_snapshot(info)
        written = "model" in self.model_fields_set and self.model is not None
        problems: dict[FieldPath, str] = {}
        if self.models and written and not snapshot:
            problems[("model",)] = (
                "expected either `model:` or `models:` with `routing:`, not both; move this "
                "model under `models:` and name it in `routing.default`"
            )
        elif not self.models and self.model is None:
            problems[("model",)] = (
                "required key 'model' is missing (or give `models:` and `routing:`)"
            )
        if self.models and self.routing is None:
            problems[("routing",)] = (
                "required key 'routing' is missing: with `models:`, `routing.default` names "
                "the model used when no rule matches"
            )
        if self.routing is not None and not self.models:
            problems[("routing",)] = "expected `models:` to route between; got none"
        if self.routing is not None and self.models:
            names = list(self.models)
            uses = [(("routing", "default"), self.routing.default)]
            uses += [
                (("routing", "rules", i, "use"), r.use) for i, r in enumerate(self.routing.rules)
            ]
            for at, name in uses:
                if name not in self.models:
                    problems[at] = _unknown_model(name, names)
            problems.update(_duplicate_rule_ids(self.routing))
        summary = self.compaction.summary_model if self.compaction else None
        if summary is not None and summary not in self.models:
            problems[("compaction", "summary_model")] = _unknown_model(summary, list(self.models))
        for name in self.budgets.per_model:
            if name not in self.models:
                problems[("budgets", "per_model", name)] = _unknown_model(name, list(self.models))
        fail_if(problems)
        if self.model is None and self.routing is not None and self.routing.default in self.models:
            object.__setattr__(self, "model", self.models[self.routing.default])
        return self

    @model_validator(mode="after")
    def _forced_tools_declared(self) -> Self:
        """A `tool_choice` that forces a tool must name one the model is shown."""
        names = {tool.name for tool in self.tools if not tool.is_pattern}
        patterns = [tool for tool in self.tools if tool.is_pattern]
        configs = [(("model",), self.model)] if "model" in self.model_fields_set else []
        configs += [(("models", name), cfg) for name, cfg in self.models.items()]
        problems: dict[FieldPath, str] = {}
        for at, cfg in configs:
            choice = cfg.params.tool_choice if cfg is not None else None
            if isinstance(choice, ForcedTool):
                name = choice.function.name
                if name not in names and not any(t.matches(name) for t in patterns):
                    path = (*at, "params", "tool_choice", "function", "name")
                    problems[path] = undeclared_tool(name, self.tools, globs=False)
        fail_if(problems)
        return self

    @model_validator(mode="after")
    def _tools_reach_the_copy(self, info: ValidationInfo) -> Self:
        """A tool rooted above the workspace template would reach the template itself,
        which a run never changes: refused, naming the root."""
        if self.workspace is None or from_snapshot(info):
            return self
        folder = base_dir(info)
        template = lexical(folder / self.workspace.template)
        problems: dict[FieldPath, str] = {}
        for i, tool in enumerate(self.tools):
            named = [(("roots", j), r) for j, r in enumerate(tool.scope.roots or [])]
            named += [(("cwd",), tool.scope.cwd)] if tool.scope.cwd else []
            for at, path in named:
                normal = lexical(folder / path)
                if normal != template and template.is_relative_to(normal):
                    problems[("tools", i, "scope", *at)] = (
                        f"expected a folder inside the workspace template "
                        f"{show(self.workspace.template)} or beside it; got {show(path)}, which "
                        "contains it, so the tool would reach the template rather than the "
                        "run's copy"
                    )
        fail_if(problems)
        return self

    def model_config_for(self, name: str | None) -> ModelConfig:
        """A named model's configuration; the default model for None."""
        return self.models[name] if name is not None else self.model

    @property
    def source_file(self) -> Path | None:
        """The file this manifest was read from (None for a recorded snapshot)."""
        return Path(self._source[0]) if self._source is not None else None

    @property
    def base_dir(self) -> Path:
        """The manifest's folder (absolute); relative paths in the manifest resolve against it."""
        return self._base_dir

    def resolve_path(self, path: str | Path) -> Path:
        """A path from the manifest (roots, cwd, folders, check paths) made absolute: in the
        run's workspace copy when it names the workspace template or something inside it."""
        full = self._base_dir / path
        return full if self._workspace_copy is None else self._workspace_copy.place(full)

    @property
    def workspace_copy(self) -> WorkspaceCopy | None:
        """Where this run's copy of the workspace is (None without `workspace:`, or before a
        run attached one with :meth:`with_workspace`)."""
        return self._workspace_copy

    def with_workspace(self, folder: Path) -> Manifest:
        """This manifest for a run whose workspace copy is in ``folder`` (``TRACE.workspace``);
        unchanged without `workspace:`. The copy itself is made by the run."""
        if self.workspace is None:
            return self
        attached = self.model_copy()
        template = lexical(self._base_dir / self.workspace.template)
        attached._workspace_copy = WorkspaceCopy(template, lexical(folder.absolute()))
        return attached

    def tool(self, name: str) -> ToolSpec | None:
        """The declared tool called ``name``, or None (an unknown tool)."""
        return next((tool for tool in self.tools if tool.name == name), None)

    def tools_for(self, rule: PolicyRule) -> list[ToolSpec]:
        """The declared tools a rule can apply to: named by its ``tools`` globs, of a risk
        it lists."""
        from govrun.runtime.manifest.sections import tool_risk

        return [
            tool
            for tool in self.tools
            if any(tool.matches(glob) for glob in rule.tools)
            and (rule.risk is None or tool_risk(tool) in rule.risk)
        ]

    def tools_matching(self, pattern: str) -> list[ToolSpec]:
        """Declared tools a policy/interrupt glob names (by tool name or builtin)."""
        return [tool for tool in self.tools if tool.matches(pattern)]

    def secret_env_names(self) -> set[str]:
        """Env var names whose values must never be written: `secrets`, the API key var, and
        every ${VAR} an MCP server's `env:`, `headers:` or `url` uses (tokens, as a rule)."""
        names = set(self.secrets)
        for cfg in (self.model, *self.models.values()):
            if cfg is not None and cfg.api_key_env:
                names.add(cfg.api_key_env)
        for path, template in self._templates.items():
            if path[:1] == ("mcp_servers",) and len(path) > 2 and path[2] in _MCP_SECRET_KEYS:
                names |= template.names
        return names

    def short_secrets(self, env: Mapping[str, str] | None = None) -> list[str]:
        """Secret env vars whose value is too short to redact safely (under
        :data:`MIN_SECRET_CHARS`): replacing ``x`` or ``none`` wherever it occurs would
        rewrite ordinary text. A run refuses them before it starts."""
        source = os.environ if env is None else env
        return sorted(
            name
            for name in self.secret_env_names()
            if (value := source.get(name)) and len(value) < MIN_SECRET_CHARS
        )

    def secret_values(self, env: Mapping[str, str] | None = None) -> set[str]:
        """The non-empty values of the secret env vars (os.environ by default), for redaction."""
        source = os.environ if env is None else env
        return {value for name in self.secret_env_names() if (value := source.get(name))}

    def canonical_dict(self) -> dict[str, Any]:
        """JSON-able snapshot for the trace and hashing: keys as in YAML, defaults in, no nulls.

        A string interpolated from a secret env var keeps its ``${VAR}`` text, so the snapshot
        never holds the secret and its hash does not change when the secret rotates.
        """
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        if not data.get("mcp_servers"):  # a section newer than most records: absent if unused
            data.pop("mcp_servers", None)
        secret = self.secret_env_names()
        restore = {t.value: t.text for t in self._templates.values() if t.names & secret}
        return _replace_strings(data, restore) if restore else data


_MCP_SECRET_KEYS = ("env", "headers", "url")
"""Where an MCP server's settings carry credentials: their ${VAR}s are secrets."""


def _unknown_server(name: str, names: list[str]) -> str:
    close = did_you_mean(name, names)
    hint = f" — did you mean {close!r}?" if close else ""
    declared = ", ".join(names) or "none"
    return (
        f"expected SERVER/TOOL with a server under `mcp_servers:` ({declared}); got {name!r}{hint}"
    )


def _unknown_model(name: str, names: list[str]) -> str:
    close = did_you_mean(name, names)
    hint = f" — did you mean {close!r}?" if close else ""
    declared = ", ".join(names) or "none"
    return f"expected a name under `models:` ({declared}); got {name!r}{hint}"


def _duplicate_rule_ids(routing: Routing) -> dict[FieldPath, str]:
    found = duplicates([r.id for r in routing.rules], "id", "rules")
    return {("routing", "rules", *path): text for path, text in found.items()}


def names_a_tool(glob: str, tools: Iterable[ToolSpec]) -> bool:
    """Whether a tools glob (``*`` always) names at least one of ``tools``."""
    return glob == "*" or any(tool.matches(glob) for tool in tools)


def undeclared_tool(glob: str, tools: Sequence[ToolSpec], *, globs: bool = True) -> str:
    """The problem text for a glob (or, ``globs=False``, a name) naming no declared tool."""
    kind = "a declared tool name or a glob matching one" if globs else "a declared tool name"
    names = [tool.name for tool in tools]
    if not names:
        return f"expected {kind}; got {glob!r}, but `tools:` declares none"
    choices = names + ([tool.uses for tool in tools if tool.uses] if globs else [])
    suggestion = did_you_mean(glob, choices)
    text = f"expected {kind} ({', '.join(names)}); got {glob!r}"
    return f"{text} — did you mean {suggestion!r}?" if suggestion else text


def _replace_strings(value: Any, replacements: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: _replace_strings(item, replacements) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_strings(item, replacements) for item in value]
    if isinstance(value, str):
        return replacements.get(value, value)
    return value


# --- loading -----------------------------------------------------------------------------------


def load_manifest(path: str | Path, *, env: Mapping[str, str] | None = None) -> Manifest:
    """Read and validate a manifest file; relative paths in it resolve against its folder."""
    file = Path(path)
    text = read_text(path, MANIFEST)
    return parse_manifest(text, source=str(path), base_dir=file.resolve().parent, env=env)


def parse_manifest(
    text: str,
    *,
    source: str = "<string>",
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Manifest:
    """Validate manifest YAML. ``source`` names it in messages, ``base_dir`` (default: the
    current folder) anchors relative paths, ``env`` (default: os.environ) feeds ``${VAR}``."""
    folder = Path(base_dir or Path.cwd()).resolve()
    loaded = load_yaml(text, source)
    data, unsupported = _without_unsupported(loaded.data, loaded.source_map)
    expanded = interpolate(data, loaded.source_map, os.environ if env is None else env)
    early = loaded.problems + unsupported + expanded.problems
    try:
        manifest = Manifest.model_validate(expanded.data, context={"base_dir": folder})
    except ValidationError as exc:
        late = translate(exc, expanded.data, loaded.source_map, Manifest, PATTERN_WORDS)
        late = [_as_written(problem, expanded.templates) for problem in late]
        reported = {problem.path for problem in early}  # e.g. an unset ${VAR} is said once
        raise _invalid(source, early + [p for p in late if p.path not in reported]) from None
    if early:
        raise _invalid(source, early)
    manifest._base_dir = folder
    manifest._templates = expanded.templates
    manifest._source = (source, loaded.source_map)
    return manifest


def invalid(manifest: Manifest, problems: Mapping[FieldPath, str]) -> ManifestError:
    """A :class:`ManifestError` for problems found after loading, each at its field's
    file:line when the manifest was read from a file."""
    if manifest._source is None:
        lines = [f"{format_path(path)}: {text}" for path, text in problems.items()]
        return ManifestError(
            f"the manifest is not runnable ({len(lines)} problem{'s' * (len(lines) != 1)})",
            problems=lines,
        )
    source, positions = manifest._source
    return _invalid(source, [positions.problem(path, text) for path, text in problems.items()])


def manifest_from_snapshot(snapshot: Mapping[str, Any], *, base_dir: Path) -> Manifest:
    """The manifest a run recorded in ``run_started``, rebuilt for replay: the original file
    is not needed. ``base_dir`` anchors relative paths (tool roots, check paths)."""
    try:
        manifest = Manifest.model_validate(
            snapshot, context={"base_dir": base_dir, "snapshot": True}
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in (*e['loc'], *at)) or 'manifest'}: {message}"
            for e in exc.errors()[:3]
            for at, message in e.get("ctx", {}).get("problems") or [((), e["msg"])]
        )
        raise ManifestError(
            f"the manifest recorded in the trace does not validate with this govrun: {problems}"
        ) from None
    manifest._base_dir = base_dir
    return manifest


def manifest_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the manifest, keys sorted so the output is stable."""
    schema = Manifest.model_json_schema(by_alias=True, mode="validation")
    schema.update({"$schema": SCHEMA_DIALECT, "title": "govrun manifest"})
    # `model:`, or `models:` with `routing:` (the validator says which is missing)
    schema["anyOf"] = [{"required": ["model"]}, {"required": ["models", "routing"]}]
    schema["properties"]["model"].pop("default", None)
    return json.loads(json.dumps(schema, sort_keys=True))


def _as_written(problem: Problem, templates: Mapping[FieldPath, Template]) -> Problem:
    """Quote an interpolated value as its ``${VAR}`` text: the value may be a secret."""
    template = templates.get(problem.path)
    if template is None:
        return problem
    text = problem.message.replace(show(template.value), show(template.text))
    return dataclasses.replace(problem, message=text)


def _invalid(source: str, problems: list[Problem]) -> ManifestError:
    count = len(problems)
    return ManifestError(
        f"{source} is not a valid govrun manifest ({count} problem{'s' if count != 1 else ''})",
        problems=[problem.render(source) for problem in sorted(problems)],
        hint="`govrun schema manifest` prints every key with its meaning.",
    )


def _without_unsupported(
    data: dict[str, Any], source_map: SourceMap
) -> tuple[dict[str, Any], list[Problem]]:
    """Drop NOT_SUPPORTED_YET keys, reporting each (so none is also an 'unknown key')."""
    data = dict(data)
    problems: list[Problem] = []
    for key, text in NOT_SUPPORTED_YET.items():
        if key.startswith("tools[]."):
            problems += _drop_from_tools(data, key.removeprefix("tools[]."), text, source_map)
        elif key in data:
            del data[key]
            problems.append(source_map.problem((key,), text))
    return data, problems


def _drop_from_tools(
    data: dict[str, Any], key: str, text: str, source_map: SourceMap
) -> list[Problem]:
    if not isinstance(data.get("tools"), list):
        return []
    tools = data["tools"] = list(data["tools"])
    problems: list[Problem] = []
    for index, tool in enumerate(tools):
        if isinstance(tool, dict) and key in tool:
            tools[index] = {k: v for k, v in tool.items() if k != key}
            problems.append(source_map.problem(("tools", index, key), text))
    return problems


__all__ = [
    "CHECK_KINDS",
    "NOT_SUPPORTED_YET",
    "PROVIDERS",
    "SUPPORTED_BUILTINS",
    "Approvals",
    "ArgumentSize",
    "Budgets",
    "Check",
    "CommandRule",
    "ExitCodeCheck",
    "FileContainsCheck",
    "FileExistsCheck",
    "FileSha256Check",
    "FinalAnswerMatchesCheck",
    "ForbiddenSequence",
    "Interrupts",
    "Manifest",
    "ModelConfig",
    "ModelParams",
    "OnTimeout",
    "Otlp",
    "OutputMatchesCheck",
    "OutputSchemaCheck",
    "Policy",
    "PolicyRule",
    "Predicate",
    "Pricing",
    "PythonCheck",
    "RepeatCall",
    "Telemetry",
    "ToolScope",
    "ToolSpec",
    "Workspace",
    "load_manifest",
    "manifest_json_schema",
    "names_a_tool",
    "parse_manifest",
    "undeclared_tool",
]
