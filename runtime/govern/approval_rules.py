"""Standing approval rules: decisions written down in advance, for runs nobody watches (CI).

``govrun run --approvals rules.yaml`` puts a :class:`RulesApprover` in front of the chosen
approver. The file is an ordered list; the first rule that matches an ``ask`` call decides
it, and a call no rule matches goes to the fallback approver (``deny`` without a terminal)::

    rules:
      - id: docs-ok
        tools: [write_file]
        when: {path: {glob: "docs/*.md"}}
        decision: approve
        reason: docs changes are pre-approved
      - {id: no-deletes, tools: ["fs.delete"], decision: reject, reason: deletes need a person}

A rule matches like a policy rule: ``tools`` globs name a tool by its name or its builtin,
``risk`` (optional) lists the risk levels it applies to, and every ``when`` predicate must
hold — the same :class:`~govrun.runtime.manifest.schema.Predicate` model, evaluated by the same
code as policy (:class:`govrun.runtime.govern.policy.When`), with folders relative to the
*manifest* folder.

**Fail closed.** A condition that cannot be evaluated (a path that cannot be resolved, a
value of the wrong type, ...) never approves: an ``approve`` rule does not match on it, and
a ``reject`` rule does. Every decision is recorded with ``via: rule``, the approver
``rules:FILE#RULE-ID`` and the rule's reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, field_validator

from govrun.runtime.errors import ManifestError
from govrun.runtime.govern.policy import Bound, When, argument_base, tool_kinds
from govrun.runtime.manifest.fields import (
    PATTERN_WORDS,
    Answer,
    Identifier,
    Risk,
    Section,
    TextList,
)
from govrun.runtime.manifest.inputs import RULES, read_text
from govrun.runtime.manifest.problems import fail_if, translate
from govrun.runtime.manifest.reader import Document, Problem, load_yaml
from govrun.runtime.manifest.schema import (
    Manifest,
    Predicate,
    ToolSpec,
    names_a_tool,
    undeclared_tool,
)
from govrun.runtime.manifest.sections import duplicates
from govrun.runtime.ports import ApprovalDecision, ApprovalRequest, Approver

_PAST = {"approve": "approved", "reject": "rejected"}

RULES_DOCUMENT = Document(
    name="approval rules file",
    keys="approval rules keys (version, rules)",
    required="`rules`",
    hint="An approval rules file holds `rules:`, a list of {id, tools, when, decision: "
    "approve|reject, reason}.",
)


class StandingRule(Section):
    """One standing decision; the first rule that matches an `ask` call decides it."""

    id: Identifier = Field(description="Unique rule id, recorded as rules:FILE#ID.")
    tools: TextList = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        description="Tool name globs; a tool also matches by its builtin (e.g. 'fs.*').",
    )
    risk: list[Risk] | None = Field(
        None, min_length=1, description="Match only calls whose risk is listed."
    )
    when: dict[str, Predicate] = Field(
        default_factory=dict,
        description="Argument name -> predicate, as in policy rules; all must hold. A condition "
        "that cannot be evaluated never approves.",
    )
    decision: Answer = Field(description="approve or reject.")
    reason: str | None = Field(None, description="Why; recorded, and told the model on reject.")

    @field_validator("tools")
    @classmethod
    def _name_declared_tools(cls, globs: list[str], info: ValidationInfo) -> list[str]:
        """With the manifest's tools as context, a glob naming none of them is a typo."""
        tools = info.context.get("tools") if isinstance(info.context, dict) else None
        if tools is not None:
            fail_if(
                {
                    (j,): undeclared_tool(glob, tools)
                    for j, glob in enumerate(globs)
                    if not names_a_tool(glob, tools)
                }
            )
        return globs


class ApprovalRules(Section):
    """A standing approval rules file (`govrun run --approvals FILE`)."""

    version: Literal[1] = Field(1, description="File format version; only 1 exists.")
    rules: list[StandingRule] = Field(min_length=1, description="Ordered rules.")

    _source: str = PrivateAttr(default="<string>")

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: list[StandingRule]) -> list[StandingRule]:
        fail_if(duplicates([rule.id for rule in rules], "id", "rules"))
        return rules

    @property
    def source(self) -> str:
        """The file as it was named when loaded; part of every decision's approver."""
        return self._source


# --- loading ---------------------------------------------------------------------------------


def load_approval_rules(path: str | Path, *, manifest: Manifest | None = None) -> ApprovalRules:
    """Read and validate a rules file. With ``manifest``, every ``tools`` glob must name one
    of its tools (a typo would otherwise silently never match)."""
    text = read_text(path, RULES)
    return parse_approval_rules(
        text, source=str(path), tools=manifest.tools if manifest else None, manifest=manifest
    )


def parse_approval_rules(
    text: str,
    *,
    source: str = "<string>",
    tools: Sequence[ToolSpec] | None = None,
    manifest: Manifest | None = None,
) -> ApprovalRules:
    """Validate rules YAML; every problem at once as ``FILE:LINE:COL FIELD: expected ...``.
    With ``manifest``, each rule's ``when:`` must fit the tools it names, as policy
    predicates must (:func:`govrun.runtime.govern.preflight.rule_problems`)."""
    loaded = load_yaml(text, source, RULES_DOCUMENT)
    try:
        rules = ApprovalRules.model_validate(loaded.data, context={"tools": tools})
    except ValidationError as exc:
        late = translate(exc, loaded.data, loaded.source_map, ApprovalRules, PATTERN_WORDS)
        reported = {problem.path for problem in loaded.problems}
        problems = loaded.problems + [p for p in late if p.path not in reported]
        raise _invalid(source, problems) from None
    if loaded.problems:
        raise _invalid(source, loaded.problems)
    if manifest is not None:
        from govrun.runtime.govern.preflight import rule_problems, tool_kinds_of

        kinds = tool_kinds_of(manifest)
        found = {
            path: text
            for index, rule in enumerate(rules.rules)
            for path, text in rule_problems(
                ("rules", index), rule, manifest.tools_for(rule), kinds
            ).items()
        }
        if found:
            positions = loaded.source_map
            raise _invalid(source, [positions.problem(p, t) for p, t in found.items()])
    rules._source = source
    return rules


def _invalid(source: str, problems: list[Problem]) -> ManifestError:
    count = len(problems)
    return ManifestError(
        f"{source} is not a valid {RULES_DOCUMENT.name} ({count} problem{'s' * (count != 1)})",
        problems=[problem.render(source) for problem in sorted(problems)],
        hint=RULES_DOCUMENT.hint,
    )


# --- deciding --------------------------------------------------------------------------------


class RulesApprover:
    """Decides ``ask`` calls by standing rules; a call no rule matches goes to ``fallback``."""

    def __init__(self, rules: ApprovalRules, *, manifest: Manifest, fallback: Approver) -> None:
        self.rules = rules
        self.fallback = fallback
        self._specs: dict[str, ToolSpec] = {spec.name: spec for spec in manifest.tools}
        self._bases = {spec.name: argument_base(manifest, spec) for spec in manifest.tools}
        self._when = [When.compile(rule.when, manifest.resolve_path) for rule in rules.rules]
        self._bound: dict[tuple[int, str], Bound] = {}

    def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        for index, (rule, when) in enumerate(zip(self.rules.rules, self._when, strict=True)):
            held = self._matches(index, rule, when, request)
            if held is False or (held is None and rule.decision == "approve"):
                continue  # an undecidable condition never approves
            reason = rule.reason or f"{_PAST[rule.decision]} by standing rule {rule.id}"
            if held is None:
                reason += " (fail closed: a `when` condition could not be evaluated)"
            return ApprovalDecision(
                decision=rule.decision,
                approver=f"rules:{self.rules.source}#{rule.id}",
                via="rule",
                reason=reason,
            )
        return self.fallback.decide(request)

    def _expanded(self, name: str) -> ToolSpec | None:
        """A tool an `mcp: SERVER/*` entry exposed under ``name`` when the run started (the
        rules were loaded with the manifest as written): that entry, named ``name``."""
        entry = next(
            (s for s in self._specs.values() if s.is_pattern and fnmatchcase(name, s.name)), None
        )
        if entry is None:
            return None
        spec = self._specs[name] = entry.model_copy(update={"name": name})
        self._bases[name] = self._bases[entry.name]
        return spec

    def _matches(
        self, index: int, rule: StandingRule, when: When, request: ApprovalRequest
    ) -> bool | None:
        """True, False, or None when a condition cannot be evaluated. The conditions see
        the canonical call, bound to the tool's argument kinds exactly as policy binds
        them; an ``approve`` rule reads a command's words as an allow rule does."""
        spec = self._specs.get(request.tool) or self._expanded(request.tool)
        if spec is None:  # not a declared tool: its builtin and risk are unknown
            named = any(fnmatchcase(request.tool, glob) for glob in rule.tools)
            return None if named else False
        if not any(spec.matches(glob) for glob in rule.tools):
            return False
        if rule.risk is not None and request.risk not in rule.risk:
            return False
        key = (index, spec.name)
        bound = self._bound.get(key)
        if bound is None:
            closes = rule.decision != "approve"
            bound = self._bound[key] = when.bind(tool_kinds(spec), closes=closes)
        try:
            return bound.holds(request.arguments, self._bases[spec.name])
        except Exception:  # a predicate that broke: fail closed, like policy
            return None


__all__ = [
    "ApprovalRules",
    "RulesApprover",
    "StandingRule",
    "load_approval_rules",
    "parse_approval_rules",
]
