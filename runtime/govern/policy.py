"""Policy: decide each proposed tool call ``allow``, ``deny`` or ``ask``.

The manifest's rules are tried in order and the first one that matches decides; when none
matches, ``policy.default`` decides (deny unless the manifest says otherwise). A rule
matches when the tool is named by one of its ``tools`` globs (by name or builtin, e.g.
``fs.*``), the tool's risk is in its ``risk`` list (if it has one), and every ``when``
predicate holds for the call's arguments.

Deciding is pure and deterministic: no clock, no environment, no randomness. The only I/O
is ``Path.resolve()`` for ``inside``/``not_inside``, which must follow symlinks exactly as
the fs tools will.

**Fail closed.** The model is hostile, so a predicate that *cannot be evaluated* never
helps it. A value of the wrong type, a path with control characters or Unicode look-alikes
(text whose NFKC normalization differs), a path that cannot be resolved, a URL that does
not parse, has userinfo (``http://allowed.com@evil.com``), a scheme other than http(s) or
an unusual IP spelling — each makes its predicate *undecidable*, and an undecidable
predicate takes whichever outcome is safest for the rule that tests it:

- in an ``allow`` rule it counts as not holding, so it can never let a call through;
- in a ``deny`` or ``ask`` rule it counts as holding, so it always stops the call.

A predicate that is definitely false still makes its rule not match (``a and False`` is
false whatever ``a`` is). An argument the call does not have makes the rule not match:
nothing is acted on, and a missing argument can never satisfy an allow rule.
"""

from __future__ import annotations

import ipaddress
import math
import posixpath
import re
import shlex
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from fnmatch import translate
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from govrun.runtime.manifest.fields import Effect, Risk
from govrun.runtime.manifest.patterns import Pattern, cached_pattern
from govrun.runtime.manifest.schema import Manifest, PolicyRule, Predicate, ToolSpec
from govrun.runtime.manifest.sections import BUILTIN_RISK, PYTHON_RISK, tool_risk
from govrun.runtime.tools import http
from govrun.runtime.tools.base import ArgKind, Kinds, ScopeViolation, builtin_kinds
from govrun.runtime.tools.fs import validate_path_text
from govrun.runtime.tools.http import HostRule, parse_host_rule
from govrun.runtime.trace.canonical import canonical, sha256_hex

UNKNOWN_TOOL_RISK: Risk = "high"

_VERB: dict[str, str] = {"allow": "allowed", "deny": "denied", "ask": "approval required"}
_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")
_SHOW_LIMIT = 60
_STATIC_KEYS = frozenset({"glob", "regex", "name", "under", "min", "max", "equals", "one_of"})
"""Predicate keys whose 'held' text names only the predicate, never the value."""

_Check = Callable[[Any, Path], bool | None]
"""One compiled predicate key: ``check(value, base)`` -> held True/False, or None when it
cannot be evaluated."""

_Holds = Callable[[Mapping[str, Any], Path], bool | None]
"""A compiled ``when:`` as one function: ``holds(arguments, base)`` (see :func:`_all_hold`)."""


@dataclass(slots=True)  # built per call: frozen dataclasses cost ~1 µs each
class Decision:
    """Policy's verdict on one call."""

    effect: Effect
    rule: str | None
    """Id of the rule that decided; None when the default (or a fail-closed guard) did."""
    reason: str
    """Short and specific, for people and for the model."""
    risk: Risk


@dataclass(frozen=True)
class RuleTrace:
    """How one rule fared against one call, for ``govrun policy explain``."""

    rule: str
    effect: Effect
    matched: bool
    decided: bool
    """True for the one rule that decided the call (the first that matched)."""
    why: str
    """What held when matched; the first condition that failed when not."""
    fail_closed: bool
    """The outcome came from a condition that could not be evaluated (see module doc)."""


@dataclass(frozen=True)
class _Test:
    """One evaluated condition: held True/False, or None when it cannot be evaluated."""

    held: bool | None
    make_text: Callable[[], str]
    on_argument: bool = True

    @property
    def text(self) -> str:
        """Formatted only when asked for: deciding a call needs none of it."""
        return self.make_text()


@dataclass(frozen=True)
class _Predicate:
    """A manifest predicate with its regex compiled and its folders resolved: the parts
    that do not depend on which tool's argument it tests."""

    spec: Predicate
    keys: tuple[str, ...]
    regex: Pattern | None
    inside: tuple[tuple[str, Path], ...]
    not_inside: tuple[tuple[str, Path], ...]
    hosts: tuple[HostRule, ...]
    under: tuple[str, ...]
    """``under`` folders, normalized root-relative paths (``.`` is the whole root)."""


@dataclass(frozen=True)
class _Argument:
    """One argument's predicate, bound to the kind of that argument in one tool and to the
    polarity of the rule: its checks, in ``keys`` order, and how to read its subject."""

    name: str
    predicate: _Predicate
    read: Callable[[Mapping[str, Any]], Any]
    checks: dict[str, _Check]
    each: frozenset[str] = frozenset()
    """Keys tested on each value of a multi-valued argument (a command's words, paths)."""
    closes: bool = True
    """Whether the rule stops calls (each-value keys need any value) or allows them (every
    value)."""
    noun: str = "value"


@dataclass(frozen=True)
class Bound:
    """A ``when:`` bound to one tool's argument kinds and one rule's polarity: what deciding
    a call evaluates (:meth:`holds`) and what ``policy explain`` walks (``arguments``)."""

    arguments: tuple[_Argument, ...]
    holds: _Holds


@dataclass(frozen=True)
class When:
    """A ``when:`` mapping (argument name -> :class:`Predicate`), compiled once. Policy rules
    and standing approval rules (``govrun.runtime.govern.approval_rules``) evaluate canonical
    arguments through it, so a predicate means exactly the same thing in both."""

    predicates: dict[str, _Predicate]

    @classmethod
    def compile(cls, when: Mapping[str, Predicate], resolve: Callable[[str], Path]) -> When:
        """Compile regexes and resolve ``inside``/``not_inside`` folders with ``resolve``
        (the manifest's :meth:`~govrun.runtime.manifest.schema.Manifest.resolve_path`)."""
        return cls({arg: _compile(pred, resolve) for arg, pred in when.items()})

    def bind(self, kinds: Kinds | None, *, closes: bool) -> Bound:
        """The checks for one tool (``kinds``: its canonical arguments' kinds; None when
        unknown) in a rule that ``closes`` (deny, ask, reject: an undecidable or
        multi-valued subject is read the way that stops the call) or not (allow, approve).
        """
        bound = tuple(
            _bind(arg, pred, (kinds or {}).get(arg, _ANY), closes)
            for arg, pred in self.predicates.items()
        )
        return Bound(bound, _matcher(bound))

    def holds(
        self, arguments: Mapping[str, Any], base: Path, *, closes: bool = True
    ) -> bool | None:
        """Kleene AND over every predicate key for an argument of unknown kind (see
        :func:`_all_hold`); ``base`` anchors relative path arguments."""
        return self.bind(None, closes=closes).holds(arguments, base)


_ANY: frozenset[ArgKind] = frozenset({"any"})


def _matcher(plan: tuple[_Argument, ...]) -> _Holds:
    """``_all_hold`` over ``plan``; for the commonest shape, one argument with one key,
    without its loops."""
    if len(plan) != 1 or len(plan[0].checks) != 1:
        return partial(_all_hold, plan)
    (only,) = plan
    arg, read = only.name, only.read
    (check,) = only.checks.values()

    def holds(arguments: Mapping[str, Any], base: Path) -> bool | None:
        if arg not in arguments:
            return False
        held = check(read(arguments), base)
        return held if held is False or held is None else True

    return holds


def _all_hold(plan: tuple[_Argument, ...], arguments: Mapping[str, Any], base: Path) -> bool | None:
    """Kleene AND over every predicate key: False if an argument is missing or a key is
    definitely false; None if none is false but one cannot be evaluated (the caller fails
    closed, see the module doc); else True."""
    undecidable = False
    for argument in plan:
        if argument.name not in arguments:
            return False
        value = argument.read(arguments)
        for check in argument.checks.values():
            held = check(value, base)
            if held is False:
                return False
            if held is None:
                undecidable = True
    return None if undecidable else True


@dataclass(slots=True)
class _RulePlan:
    """One rule as it applies to one declared tool whose name and risk it already matches:
    only its argument predicates are left to evaluate per call."""

    rule: PolicyRule
    holds: _Holds
    closes: bool
    """An undecidable predicate makes it match (deny and ask rules): fail closed."""
    static: bool
    """Its explanation cannot depend on argument values, so its reason is cached."""
    reason: str | None = None
    """The cached reason of a static rule, once a call has needed it."""


@dataclass(frozen=True, slots=True)
class _ToolPlan:
    """What deciding one declared tool's calls needs, resolved once per engine."""

    spec: ToolSpec
    risk: Risk
    base: Path
    rules: tuple[_RulePlan, ...]
    """In policy order: the rules that name the tool and accept its risk."""


class PolicyEngine:
    """Decides calls by one manifest's policy. Build once per run; ``decide`` is pure."""

    def __init__(self, manifest: Manifest, *, policy_hash: str | None = None) -> None:
        """``policy_hash``: the hash a run recorded for this same policy (replay under the
        recorded manifest): a default a newer govrun adds to the section is not a change."""
        self._manifest = manifest
        self._tool_base = {spec.name: argument_base(manifest, spec) for spec in manifest.tools}
        self._when = {
            rule.id: When.compile(rule.when, manifest.resolve_path)
            for rule in manifest.policy.rules
        }
        self._bindings: dict[tuple[str, str], Bound] = {}
        # Rules whose explanation cannot depend on argument values: their reason is cached.
        self._static = {
            rule.id
            for rule in manifest.policy.rules
            if all(
                k in _STATIC_KEYS for p in self._when[rule.id].predicates.values() for k in p.keys
            )
        }
        # Per declared tool, the rules that can match it: tool globs and risk lists are
        # resolved once here, never per call.
        self._plans = {spec.name: self._plan(spec) for spec in manifest.tools}
        default = manifest.policy.default
        self._default = (default, f"no rule matched; default is {default}")
        in_force: dict[str, Any] = manifest.policy.model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        gated = sorted(t.name for t in manifest.tools if t.approval == "always")
        if gated:  # per-tool gates change decisions too; absent, older hashes stay valid
            in_force = {**in_force, "tool_approval_always": gated}
        self._hash = policy_hash or sha256_hex(canonical(in_force))

    @property
    def policy_hash(self) -> str:
        """SHA-256 of the policy section as canonical JSON (sorted keys, no nulls)."""
        return self._hash

    def _plan(self, spec: ToolSpec) -> _ToolPlan:
        risk = tool_risk(spec)
        rules = tuple(
            _RulePlan(
                rule,
                self._bound(rule, spec).holds,
                rule.effect != "allow",
                rule.id in self._static,
            )
            for rule in self._manifest.policy.rules
            if any(spec.matches(g) for g in rule.tools) and (rule.risk is None or risk in rule.risk)
        )
        return _ToolPlan(spec, risk, self._tool_base[spec.name], rules)

    def _bound(self, rule: PolicyRule, spec: ToolSpec) -> Bound:
        """``rule``'s ``when:`` bound to ``spec``'s argument kinds, once per engine."""
        key = (rule.id, spec.name)
        bound = self._bindings.get(key)
        if bound is None:
            bound = self._bindings[key] = self._when[rule.id].bind(
                tool_kinds(spec), closes=rule.effect != "allow"
            )
        return bound

    def decide(self, tool: str, arguments: Mapping[str, Any]) -> Decision:
        """The first matching rule's effect, else the default. Unknown tools are denied."""
        plan = self._plans.get(tool)
        if plan is None:
            return Decision("deny", None, f"unknown tool {tool!r}", UNKNOWN_TOOL_RISK)
        risk = plan.risk
        if type(arguments) is not dict and not isinstance(arguments, Mapping):
            return Decision("deny", None, "arguments are not a JSON object", risk)
        base = plan.base
        for r in plan.rules:
            held = r.holds(arguments, base)
            if held is False or (held is None and not r.closes):
                continue  # no match: an allow rule never matches on what it cannot evaluate
            if held is True and r.static:
                reason = r.reason
                if reason is None:
                    reason = r.reason = self._explained(r.rule, plan.spec, arguments)
            else:
                reason = self._explained(r.rule, plan.spec, arguments)
            return Decision(r.rule.effect, r.rule.id, reason, risk)
        effect, reason = self._default
        return Decision(effect, None, reason, risk)

    def explain(self, tool: str, arguments: Mapping[str, Any]) -> list[RuleTrace]:
        """Every rule in order: whether it matched, and what held or which condition failed."""
        spec = self._manifest.tool(tool)
        rules = self._manifest.policy.rules
        if spec is None or not isinstance(arguments, Mapping):
            why = f"tool {tool!r} is not declared" if spec is None else "arguments not an object"
            return [RuleTrace(r.id, r.effect, False, False, why, False) for r in rules]
        traces = [self._evaluate(rule, spec, arguments) for rule in rules]
        first = next((i for i, t in enumerate(traces) if t.matched), None)
        return [replace(t, decided=i == first) for i, t in enumerate(traces)]

    # --- evaluation -------------------------------------------------------------------

    def _explained(self, rule: PolicyRule, spec: ToolSpec, arguments: Mapping[str, Any]) -> str:
        """The reason of a rule that decided the call. ``decide`` finds the rule without
        building any text (the per-call hot path); ``_evaluate`` tests the same conditions
        in the same Kleene AND, and says why."""
        return _reason(rule, self._evaluate(rule, spec, arguments))

    def _evaluate(
        self, rule: PolicyRule, spec: ToolSpec, arguments: Mapping[str, Any]
    ) -> RuleTrace:
        """Kleene AND of the rule's conditions; an undecidable one resolves by effect."""
        held: list[_Test] = []
        undecidable: _Test | None = None
        for test in self._tests(rule, spec, arguments):
            if test.held is False:
                return RuleTrace(rule.id, rule.effect, False, False, test.text, False)
            if test.held is None:
                undecidable = undecidable or test
            else:
                held.append(test)
        if undecidable is not None:
            matched = rule.effect != "allow"
            closed = "treated as matching" if matched else "an allow rule never matches on it"
            why = f"{undecidable.text} — fail closed: {closed}"
            return RuleTrace(rule.id, rule.effect, matched, False, why, True)
        shown = [t for t in held if t.on_argument] or held
        return RuleTrace(rule.id, rule.effect, True, False, ", ".join(t.text for t in shown), False)

    def _tests(
        self, rule: PolicyRule, spec: ToolSpec, arguments: Mapping[str, Any]
    ) -> Iterator[_Test]:
        """Conditions in a fixed order: tools, risk, then each argument predicate key."""
        glob = next((g for g in rule.tools if spec.matches(g)), None)
        if glob is None:
            name = f"{spec.name!r}" + (f" ({spec.uses})" if spec.uses else "")
            yield _Test(False, lambda: f"tools: {name} does not match {list(rule.tools)}", False)
            return
        yield _Test(True, lambda: f"tool {spec.name} matches {glob!r}", False)
        if rule.risk is not None:
            risk = tool_risk(spec)
            if risk in rule.risk:
                yield _Test(True, lambda: f"risk {risk} in {list(rule.risk)}", False)
            else:
                yield _Test(False, lambda: f"risk: {risk!r} is not in {list(rule.risk)}", False)
        base = self._tool_base[spec.name]
        for argument in self._bound(rule, spec).arguments:
            arg = argument.name
            if arg not in arguments:
                yield _Test(False, lambda arg=arg: f"when.{arg}: argument missing")
                continue
            value = argument.read(arguments)
            for key, check in argument.checks.items():
                yield _check(key, check, argument, value, base)


# --- compiling ------------------------------------------------------------------------


def argument_base(manifest: Manifest, spec: ToolSpec) -> Path:
    """Where a relative path argument of ``spec`` resolves: the tool's first root, else the
    manifest folder — the same anchor the fs tools use."""
    roots = spec.scope.roots
    return manifest.resolve_path(roots[0]).resolve() if roots else manifest.base_dir.resolve()


def _compile(pred: Predicate, resolve: Callable[[str], Path]) -> _Predicate:
    keys = tuple(k for k in Predicate.model_fields if getattr(pred, k) is not None)

    def folders(paths: list[str] | None) -> tuple[tuple[str, Path], ...]:
        return tuple((p, resolve(p).resolve()) for p in paths or ())

    return _Predicate(
        spec=pred,
        keys=keys,
        regex=cached_pattern(pred.regex) if pred.regex is not None else None,
        inside=folders(pred.inside),
        not_inside=folders(pred.not_inside),
        hosts=tuple(parse_host_rule(h) for h in pred.host_in or ()),
        under=tuple(posixpath.normpath(u.strip("/") or ".") for u in pred.under or ()),
    )


PATH_KEYS = frozenset({"glob", "regex", "name", "under", "inside", "not_inside"})
"""Keys that test each path of a ``paths`` argument (a command's files)."""

WORD_KEYS = frozenset({"glob", "regex"})
"""Keys that test each word of an ``argv`` argument (and the paths its words name)."""

WHOLE_KEYS = frozenset({"equals", "one_of", "max_bytes"})
"""Keys that test a multi-valued argument as one value (the whole list)."""


def tool_kinds(spec: ToolSpec) -> Kinds | None:
    """The canonical arguments' kinds of a builtin tool (None for a Python tool: its
    arguments are typed JSON values, judged by their type)."""
    return builtin_kinds(spec.uses) if spec.uses else None


def _bind(arg: str, pred: _Predicate, kinds: frozenset[ArgKind], closes: bool) -> _Argument:
    """The predicate's keys as checks for an argument of ``kinds``. A command (``argv``)
    and a list of paths (``paths``) hold several values: a key that tests each of them
    must hold for any value in a rule that closes and for every value in one that allows,
    the reading that is safe for the rule (see the module doc)."""
    if kinds == {"argv"}:
        read: Callable[[Mapping[str, Any]], Any] = partial(_words, arg)
        checks = {
            key: _each(_compile_check(key, pred), closes, lambda w: w.subjects)
            if key in WORD_KEYS
            else _on_argv(_compile_check(key, _as_argv(pred)))
            if key in WHOLE_KEYS
            else _never
            for key in pred.keys
        }
        return _Argument(arg, pred, read, checks, WORD_KEYS & set(pred.keys), closes, "word")
    read = itemgetter(arg)
    if kinds == {"paths"}:
        checks = {
            key: _each(_compile_check(key, pred), closes, _path_list)
            if key in PATH_KEYS
            else _compile_check(key, pred)
            if key in WHOLE_KEYS
            else _never
            for key in pred.keys
        }
        return _Argument(arg, pred, read, checks, PATH_KEYS & set(pred.keys), closes, "path")
    is_path = kinds == {"path"}
    checks = {
        key: _compile_check(key, pred) if key not in ("name", "under") or is_path else _never
        for key in pred.keys
    }
    return _Argument(arg, pred, read, checks)


@dataclass(frozen=True, slots=True)
class _Words:
    """A command's words as a subject: the argv itself (for ``equals``), and every word,
    every ``--flag=value``'s value and every path the words name (for word keys)."""

    argv: Any
    subjects: tuple[str, ...] | None
    """None when the value is not a list of words (the check cannot be evaluated)."""

    def __repr__(self) -> str:
        return repr(self.argv)


def _words(arg: str, arguments: Mapping[str, Any]) -> _Words:
    argv = arguments[arg]
    if not isinstance(argv, list) or not all(isinstance(w, str) for w in argv):
        return _Words(argv, None)
    values = [w.partition("=")[2] for w in argv if w.startswith("-") and "=" in w]
    paths = arguments.get("paths")
    named = [p for p in paths if isinstance(p, str)] if isinstance(paths, list) else []
    return _Words(argv, (*argv, *values, *named))


def _path_list(value: Any) -> tuple[Any, ...] | None:
    return tuple(value) if isinstance(value, list) else None


def _each(
    element: _Check, closes: bool, subjects: Callable[[Any], tuple[Any, ...] | None]
) -> _Check:
    """``element`` over every subject of a multi-valued value: any for a rule that closes,
    all for one that allows; None (undecidable) when no subject decides it."""

    def check(value: Any, base: Path) -> bool | None:
        items = subjects(value)
        if items is None:
            return None
        unknown = False
        for item in items:
            held = element(item, base)
            if held is None:
                unknown = True
            elif held is closes:  # a closing rule needs one hit; an allow rule one miss
                return held
        return None if unknown else not closes

    return check


def _as_argv(pred: _Predicate) -> _Predicate:
    """``equals``/``one_of`` on a command: a string is a command line, compared as the
    words it splits into (``"git status"`` is ``[git, status]``), so quoting cannot make
    the same command look different."""

    def words(value: Any) -> Any:
        if isinstance(value, str):
            try:
                return shlex.split(value)
            except ValueError:
                return value  # never equal to an argv
        return value

    spec = pred.spec.model_copy(
        update={
            "equals": words(pred.spec.equals),
            "one_of": [words(v) for v in pred.spec.one_of] if pred.spec.one_of else None,
        }
    )
    return replace(pred, spec=spec)


def _on_argv(whole: _Check) -> _Check:
    def check(value: Any, base: Path) -> bool | None:
        return whole(value.argv, base)

    return check


def _never(value: Any, base: Path) -> bool | None:
    """A key that does not apply to the argument's kind: it cannot be evaluated (and
    ``govrun validate`` reports it)."""
    return None


def _compile_check(key: str, pred: _Predicate) -> _Check:
    """One predicate key as a check of one value. The key is dispatched here, once per
    manifest, so deciding a call compares no key names."""
    p = pred.spec
    if key == "glob":
        return _glob_check(p.glob or "")
    if key == "regex":
        return _regex_check(pred.regex)
    if key == "name":
        return _name_check(list(p.name or ()))
    if key == "under":
        return _under_check(pred.under)
    if key == "min":
        return _at_least(p.min if p.min is not None else -math.inf)
    if key == "max":
        return _at_most(p.max if p.max is not None else math.inf)
    if key in ("inside", "not_inside"):
        return _folder_check(pred.inside if key == "inside" else pred.not_inside, key == "inside")
    if key == "host_in":
        return lambda value, base: _host_listed(pred, value)
    if key == "equals":
        return lambda value, base: _same(value, p.equals)
    if key == "one_of":
        options = p.one_of or []
        return lambda value, base: any(_same(value, option) for option in options)
    if key == "max_bytes":
        return _size_check(p.max_bytes or 0)
    raise AssertionError(f"unhandled predicate key {key!r}")  # pragma: no cover


def _name_check(patterns: list[str]) -> _Check:
    matches = [re.compile(translate(pattern)).match for pattern in patterns]

    def check(value: Any, base: Path) -> bool | None:
        if not isinstance(value, str):
            return None
        name = posixpath.basename(value)
        return any(match(name) is not None for match in matches)

    return check


def _under_check(folders: tuple[str, ...]) -> _Check:
    def check(value: Any, base: Path) -> bool | None:
        if not isinstance(value, str):
            return None
        return any(f == "." or value == f or value.startswith(f + "/") for f in folders)

    return check


def _glob_check(pattern: str) -> _Check:
    # Exactly ``fnmatchcase`` (which caches this same compiled pattern), minus its lookup.
    match = re.compile(translate(pattern)).match

    def check(value: Any, base: Path) -> bool | None:
        return match(value) is not None if isinstance(value, str) else None

    return check


def _regex_check(regex: Pattern | None) -> _Check:
    search = regex.search if regex is not None else None

    def check(value: Any, base: Path) -> bool | None:
        if not isinstance(value, str) or search is None:
            return None
        return search(value) is not None

    return check


def _at_least(bound: float) -> _Check:
    def check(value: Any, base: Path) -> bool | None:
        return value >= bound if type(value) is int or _comparable(value) else None

    return check


def _at_most(bound: float) -> _Check:
    def check(value: Any, base: Path) -> bool | None:
        return value <= bound if type(value) is int or _comparable(value) else None

    return check


def _comparable(value: Any) -> bool:
    """Whether ``min``/``max`` can judge ``value``: a number that is neither a bool nor NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not (isinstance(value, float) and math.isnan(value))


def _folder_check(folders: tuple[tuple[str, Path], ...], inside: bool) -> _Check:
    def check(value: Any, base: Path) -> bool | None:
        hit = _folder_hit(folders, value, base)
        if isinstance(hit, _Unknown):
            return None
        return hit is not None if inside else hit is None

    return check


def _size_check(limit: int) -> _Check:
    def check(value: Any, base: Path) -> bool | None:
        size = _json_size(value)
        return None if size is None else size <= limit

    return check


# --- predicates -----------------------------------------------------------------------


def _check(key: str, check: _Check, argument: _Argument, value: Any, base: Path) -> _Test:
    """Evaluate one bound predicate key on one argument value — the same check deciding a
    call runs, the single source of truth; the text is built only if read."""
    held = check(value, base)
    if key in argument.each:
        return _Test(held, lambda: _describe_each(key, argument, value, held))
    return _Test(held, lambda: _describe(key, argument.predicate, argument.name, value, base, held))


def _describe_each(key: str, argument: _Argument, value: Any, held: bool | None) -> str:
    """A key tested on each value of a command's words or paths, for people."""
    arg, noun, what = argument.name, argument.noun, _wanted(key, argument.predicate)
    if held is None:
        return f"when.{arg}: cannot check {key}: a {noun} could not be evaluated ({_show(value)})"
    if argument.closes:
        return (
            f"{arg}: a {noun} {what}" if held else f"when.{arg}: no {noun} of {_show(value)} {what}"
        )
    return (
        f"{arg}: every {noun} {what}"
        if held
        else f"when.{arg}: not every {noun} of {_show(value)} {what}"
    )


def _wanted(key: str, pred: _Predicate) -> str:
    p = pred.spec
    if key == "glob":
        return f"matches {p.glob!r}"
    if key == "regex":
        return f"matches /{p.regex}/"
    if key == "name":
        return f"is named {' or '.join(map(repr, p.name or ()))}"
    if key == "under":
        return f"is under {' or '.join(pred.under)}"
    folders = pred.inside if key == "inside" else pred.not_inside
    names = " or ".join(name for name, _ in folders)
    return f"is inside {names}" if key == "inside" else f"is not inside {names}"


def _describe(
    key: str, pred: _Predicate, arg: str, value: Any, base: Path, held: bool | None
) -> str:
    """``path inside ws`` when it held, ``when.path: '/x' is not inside ws`` when not."""
    p, shown = pred.spec, _show(value)
    if held is None:
        return f"when.{arg}: cannot check {key}: {_why_unknown(key, pred, value, base)}"
    if key == "glob":
        ok, bad = f"matches {p.glob!r}", f"{shown} does not match {p.glob!r}"
    elif key == "regex":
        ok, bad = f"matches /{p.regex}/", f"{shown} does not match /{p.regex}/"
    elif key in ("name", "under"):
        ok, bad = _wanted(key, pred), f"{shown} {_wanted(key, pred).replace('is', 'is not', 1)}"
    elif key == "min":
        ok, bad = f">= {p.min:g}", f"{shown} is less than min {p.min:g}"
    elif key == "max":
        ok, bad = f"<= {p.max:g}", f"{shown} is more than max {p.max:g}"
    elif key in ("inside", "not_inside"):
        folders = pred.inside if key == "inside" else pred.not_inside
        hit = _folder_hit(folders, value, base)
        names = " or ".join(name for name, _ in folders)
        if key == "inside":
            ok, bad = f"inside {hit}", f"{shown} is not inside {names}"
        else:
            ok, bad = f"not inside {names}", f"{shown} is inside {hit}"
    elif key == "host_in":
        target = _url_target(value)
        host = target[0] if isinstance(target, tuple) else shown
        allowed = list(p.host_in or [])
        ok, bad = f"host {host!r} is in {allowed}", f"host {host!r} is not in {allowed}"
    elif key == "equals":
        ok, bad = f"equals {_show(p.equals)}", f"{shown} does not equal {_show(p.equals)}"
    elif key == "one_of":
        want = _show(p.one_of or [])
        ok, bad = f"is one of {want}", f"{shown} is not one of {want}"
    else:  # max_bytes
        size = _json_size(value)
        ok, bad = f"is {size} bytes", f"{size} bytes is more than max_bytes {p.max_bytes}"
    return f"{arg} {ok}" if held else f"when.{arg}: {bad}"


def _why_unknown(key: str, pred: _Predicate, value: Any, base: Path) -> str:
    """Why a check could not answer, for people."""
    if key in ("glob", "regex"):
        return f"expected a string, got {_type(value)}"
    if key in ("name", "under"):
        return f"{key} tests a canonical path, and this argument is {_type(value)}"
    if key in ("min", "max"):
        return f"expected a number, got {_show(value)}"
    if key in ("inside", "not_inside"):
        resolved = _resolve_path(value, base)
        return resolved if isinstance(resolved, str) else "path cannot be resolved"
    if key == "host_in":
        target = _url_target(value)
        if isinstance(target, str):
            return target
        host, port, scheme = target
        return f"host {host!r} is listed, but not port {port or _DEFAULT_PORTS[scheme]}"
    if key == "max_bytes":
        return "not JSON-serializable"
    return "cannot be evaluated"


class _Unknown:
    """Marker: a path whose location cannot be known."""


_UNKNOWN = _Unknown()


def _folder_hit(
    folders: tuple[tuple[str, Path], ...], value: Any, base: Path
) -> str | _Unknown | None:
    """The name of the first listed folder the path is inside, None, or unknown."""
    resolved = _resolve_path(value, base)
    if isinstance(resolved, str):
        return _UNKNOWN
    return next((name for name, root in folders if resolved.is_relative_to(root)), None)


def _json_size(value: Any) -> int | None:
    try:
        return len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return None


def _resolve_path(value: Any, base: Path) -> Path | str:
    """The path the fs tools would act on, or why it cannot be known (a str)."""
    if not isinstance(value, str):
        return f"expected a path string, got {_type(value)}"
    try:
        validate_path_text(value)
    except ScopeViolation as exc:
        return exc.message
    candidate = Path(value)
    if not candidate.is_absolute():
        candidate = base / candidate
    try:
        return candidate.resolve(strict=False)
    except (OSError, RuntimeError, ValueError) as exc:  # symlink loops, overlong names
        return f"path {_show(value)} cannot be resolved: {exc}"


def _host_listed(pred: _Predicate, value: Any) -> bool | None:
    """Whether the URL's host (as the http tool will connect) is listed. A listed host on
    another port is unknown: an allow rule must not let it through, and a deny rule
    written for the host must still stop it."""
    target = _url_target(value)
    if isinstance(target, str):
        return None
    host, port, scheme = target
    listed = [
        r for r in pred.hosts if (host.endswith("." + r.host) if r.wildcard else host == r.host)
    ]
    if not listed:
        return False
    effective = port or _DEFAULT_PORTS[scheme]
    return True if any(effective == (r.port or _DEFAULT_PORTS[scheme]) for r in listed) else None


def _url_target(value: Any) -> tuple[str, int | None, str] | str:
    """(host, port, scheme) as the http tool's client will connect, or why not (a str)."""
    if not isinstance(value, str):
        return f"expected a URL string, got {_type(value)}"
    if (bad := _bad_char(value)) is not None:
        return f"URL {_show(value)} contains {bad}"
    try:
        url = http.httpx.URL(value)  # the client's own parser, imported on first use
    except (http.httpx.InvalidURL, UnicodeError, ValueError) as exc:
        return f"URL {_show(value)} is not valid: {exc}"
    if url.scheme not in _SCHEMES:
        return f"URL {_show(value)} is not http(s)"
    if url.userinfo or "@" in _authority(value):
        return f"URL {_show(value)} contains userinfo ('@' before the host)"
    spelled = url.raw_host.decode("ascii").lower()
    host = spelled.rstrip(".")
    if not host or "%" in host:
        return f"URL {_show(value)} has no usable host"
    is_ip = ":" in host or _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1])
    if is_ip and not _canonical_ip(spelled):
        return f"URL {_show(value)} spells an IP address unusually"
    return host, url.port, url.scheme


def _bad_char(text: str) -> str | None:
    """Why ``text`` cannot be trusted to mean what it shows, or None."""
    for ch in text:
        if ch == "\\" or unicodedata.category(ch)[0] in "CZ":
            return f"character U+{ord(ch):04X}"
    if unicodedata.normalize("NFKC", text) != text:
        return "look-alike characters (not NFKC-normalized)"
    return None


def _authority(raw: str) -> str:
    rest = raw.split("://", 1)[-1]
    return re.split(r"[/?#]", rest, maxsplit=1)[0]


def _canonical_ip(spelled: str) -> bool:
    """Whether an IP host is spelled the one way every parser agrees on."""
    try:
        ip = ipaddress.ip_address(spelled)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and (ip.ipv4_mapped or ip.sixtofour or ip.teredo):
        return False
    return ip.compressed == spelled


# --- small helpers ----------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` is ``1.0``, containers compare deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _reason(rule: PolicyRule, trace: RuleTrace) -> str:
    head = f"{_VERB[rule.effect]} by rule {rule.id}"
    if rule.reason and not trace.fail_closed:
        return f"{head}: {rule.reason}"
    if rule.reason:
        return f"{head}: {rule.reason} ({trace.why})"
    return f"{head} ({trace.why})"


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int past Python's digit limit
        return f"<{_type(value)} too large to show>"
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 1] + "…"


def _type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        type(None): "null",
        bool: "a boolean",
        str: "a string",
        int: "a number",
        float: "a number",
    }
    return names.get(type(value), type(value).__name__)


__all__ = [
    "BUILTIN_RISK",
    "PYTHON_RISK",
    "Decision",
    "PolicyEngine",
    "RuleTrace",
    "When",
    "argument_base",
    "tool_risk",
]
