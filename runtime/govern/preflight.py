"""What a run checks before its first step — and ``govrun validate`` checks the same way:
every tool builds (a Python tool's module imports and has its callable) and every policy
predicate fits what it tests. A manifest that passes here does not fail later for a reason
that was knowable now, and a run it refuses creates no trace.

Predicates judge the canonical call (:mod:`govrun.runtime.tools.base`): a path relative to its
root, a command's words, typed values. A predicate that cannot fit — ``min`` on a path, a
string ``equals`` on an integer argument, ``name`` on a plain string — would silently
never match (or always, failing closed); it is a problem at its line instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from govrun.runtime.errors import GovrunError
from govrun.runtime.govern.toolbox import Toolbox, build_tool, importable_from_manifest_folder
from govrun.runtime.manifest.problems import did_you_mean
from govrun.runtime.manifest.reader import FieldPath, show
from govrun.runtime.manifest.schema import Manifest, PolicyRule, ToolSpec, invalid
from govrun.runtime.tools.base import ArgKind, Kinds, Tool
from govrun.runtime.tools.mcp.sources import McpSources, open_sources

TEXT: frozenset[ArgKind] = frozenset({"path", "paths", "argv", "url", "string"})
FITS: dict[str, frozenset[ArgKind]] = {
    "glob": TEXT,
    "regex": TEXT,
    "name": frozenset({"path", "paths"}),
    "under": frozenset({"path", "paths"}),
    "inside": frozenset({"path", "paths", "string"}),
    "not_inside": frozenset({"path", "paths", "string"}),
    "host_in": frozenset({"url", "string"}),
    "min": frozenset({"integer", "number"}),
    "max": frozenset({"integer", "number"}),
}
"""Predicate key -> the argument kinds it can test (``max_bytes`` tests any; ``equals``
and ``one_of`` depend on the value given)."""

_KIND_WORDS: dict[str, str] = {
    "path": "a canonical path",
    "paths": "the paths a command names",
    "argv": "a command (its words)",
    "url": "a URL",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "a list",
    "object": "an object",
    "null": "null",
}


def check_runnable(
    manifest: Manifest, *, scripts: bool = True, mcp_tools: Mapping[str, Tool] | None = None
) -> Toolbox:
    """Build the manifest's tools and check its policy against them; raise a
    :class:`~govrun.runtime.errors.ManifestError` listing every problem at its file:line.
    ``scripts=False`` when the caller has its models already (a run builds them first, or is
    given them): a scripted model's script is then not read a second time. ``mcp_tools``:
    the MCP tools, from the servers the caller started (the manifest's `SERVER/*` entries
    expanded into them)."""
    tools, problems = _build_tools(manifest, mcp_tools or {})
    kinds = {name: tool.argument_kinds() for name, tool in tools.items()}
    problems.update(policy_problems(manifest, kinds))
    problems.update(root_problems(manifest))
    problems.update(approval_problems(manifest))
    if problems:
        raise invalid(manifest, problems)
    if scripts:
        _check_scripts(manifest)
    return Toolbox(manifest, tools=tools)


@contextlib.contextmanager
def servers_started(manifest: Manifest, lock_file: Path | None = None) -> Iterator[McpSources]:
    """The manifest's MCP servers, started and listed for a check (`validate`, `policy
    explain`) and stopped after it; one that cannot be used is a problem at its line."""
    sources = open_sources(manifest, lock_file=lock_file)
    try:
        if sources.error is not None:
            raise invalid(manifest, {sources.error_at: sources.error})
        yield sources
    finally:
        sources.close()


def tool_kinds_of(
    manifest: Manifest, mcp_tools: Mapping[str, Tool] | None = None
) -> dict[str, Kinds]:
    """Every declared tool's canonical argument kinds (building the tools: a Python tool's
    come from its signature). A tool that does not build has none (an MCP tool without
    its server)."""
    tools, _ = _build_tools(manifest, mcp_tools or {})
    return {name: tool.argument_kinds() for name, tool in tools.items()}


def root_problems(manifest: Manifest) -> dict[FieldPath, str]:
    """A scope folder that does not exist: a run would fail its first call there (or, for
    a write, create files under a path nobody meant), so it is a problem now."""
    problems: dict[FieldPath, str] = {}
    for index, spec in enumerate(manifest.tools):
        folders = [("roots", j, root) for j, root in enumerate(spec.scope.roots or [])]
        if spec.scope.cwd is not None:
            folders.append(("cwd", None, spec.scope.cwd))
        for key, j, folder in folders:
            path = manifest.base_dir / folder  # as written: a run's workspace copy is made later
            if path.is_dir():
                continue
            at: FieldPath = ("tools", index, "scope", key) + ((j,) if j is not None else ())
            what = "is a file, not a folder" if path.exists() else "does not exist"
            problems[at] = f"expected an existing folder; {show(folder)} {what} ({path})"
    return problems


def approval_problems(manifest: Manifest) -> dict[FieldPath, str]:
    """`approvals.trusted_keys` names a file of keys a run can read: a missing or broken
    one would refuse every decision sent from elsewhere, so it is a problem now."""
    path = manifest.approvals.trusted_keys
    if path is None:
        return {}
    from govrun.runtime.trace.signing import load_trusted_keys

    try:
        keys = load_trusted_keys(manifest.resolve_path(path))
    except GovrunError as exc:
        return {("approvals", "trusted_keys"): exc.message}
    if not keys:
        return {("approvals", "trusted_keys"): f"expected at least one key in {show(path)}"}
    return {}


def _check_scripts(manifest: Manifest) -> None:
    """A scripted model's script is read as the run would read it: a misspelt key or a
    turn that is not an answer is a problem at its file:line now, not at the first call."""
    from govrun.runtime.models.scripted import ScriptedModel

    configs = [manifest.model, *manifest.models.values()]
    for config in configs:
        if config is not None and config.provider == "scripted" and config.script:
            ScriptedModel.from_file(manifest.resolve_path(config.script))


def _build_tools(
    manifest: Manifest, mcp_tools: Mapping[str, Tool]
) -> tuple[dict[str, Tool], dict[FieldPath, str]]:
    importable_from_manifest_folder(manifest)
    tools: dict[str, Tool] = {}
    problems: dict[FieldPath, str] = {}
    for index, spec in enumerate(manifest.tools):
        if spec.mcp is not None:
            if spec.name in mcp_tools:
                tools[spec.name] = mcp_tools[spec.name]
            continue
        try:
            tools[spec.name] = build_tool(spec, manifest)
        except GovrunError as exc:
            field = "python" if spec.python else "uses"
            problems[("tools", index, field)] = exc.message.removeprefix(f"tool {spec.name!r}: ")
    return tools, problems


def policy_problems(manifest: Manifest, kinds: Mapping[str, Kinds]) -> dict[FieldPath, str]:
    """Every ``when:`` predicate of the policy that names an argument none of its tools
    has, or tests it with a key that cannot fit its kind."""
    problems: dict[FieldPath, str] = {}
    for index, rule in enumerate(manifest.policy.rules):
        problems.update(
            rule_problems(("policy", "rules", index), rule, manifest.tools_for(rule), kinds)
        )
    return problems


def rule_problems(
    at: FieldPath, rule: PolicyRule | Any, tools: Iterable[ToolSpec], kinds: Mapping[str, Kinds]
) -> dict[FieldPath, str]:
    """The problems of one rule's ``when:`` (a policy rule or a standing approval rule)."""
    named = [spec for spec in tools if spec.name in kinds]
    problems: dict[FieldPath, str] = {}
    for arg, pred in rule.when.items():
        having = [spec for spec in named if arg in kinds[spec.name]]
        if not having:
            if named:
                problems[(*at, "when", arg)] = _no_such_argument(arg, named, kinds)
            continue
        for key in pred.model_fields_set:
            for spec in having:
                problem = _misfit(key, getattr(pred, key), kinds[spec.name][arg], spec.name, arg)
                if problem is not None:
                    problems[(*at, "when", arg, key)] = problem
                    break
    return problems


def _no_such_argument(arg: str, tools: list[ToolSpec], kinds: Mapping[str, Kinds]) -> str:
    have = sorted({name for spec in tools for name in kinds[spec.name]})
    which = ", ".join(spec.name for spec in tools)
    close = did_you_mean(arg, have)
    hint = f" — did you mean {close!r}?" if close else ""
    return f"expected an argument of {which} ({', '.join(have) or 'none'}); got {arg!r}{hint}"


def _misfit(key: str, value: Any, kinds: frozenset[ArgKind], tool: str, arg: str) -> str | None:
    """Why ``key: value`` cannot test argument ``arg`` of ``tool`` (of ``kinds``), or None."""
    if "any" in kinds or key == "max_bytes":
        return None
    is_what = " or ".join(_KIND_WORDS.get(k, k) for k in sorted(kinds))
    if key in FITS:
        if kinds & FITS[key]:
            return None
        return f"{key} cannot test {arg} of {tool}, which is {is_what}{_advice(key, kinds)}"
    values = value if key == "one_of" else [value]
    for item in values:
        if not kinds & _literal_kinds(item):
            return (
                f"expected {is_what} to compare with {arg} of {tool}; got {show(item)} — "
                "calls are judged on their canonical, typed values, so it could never match"
            )
    return None


def _literal_kinds(value: Any) -> frozenset[ArgKind]:
    if isinstance(value, bool):
        return frozenset({"boolean"})
    if isinstance(value, int | float):
        return frozenset({"integer", "number"})
    if isinstance(value, str):
        return frozenset({"string", "path", "url", "argv"})
    if isinstance(value, list):
        return frozenset({"array", "argv", "paths"})
    if isinstance(value, dict):
        return frozenset({"object"})
    return frozenset({"null"})


def _advice(key: str, kinds: frozenset[ArgKind]) -> str:
    if key in ("name", "under") and "string" in kinds:
        return " (a Python tool's string is not resolved as a path: use glob, regex or inside)"
    if key in ("min", "max"):
        return " (min and max compare numbers)"
    return ""


__all__ = [
    "FITS",
    "check_runnable",
    "policy_problems",
    "root_problems",
    "rule_problems",
    "tool_kinds_of",
]
