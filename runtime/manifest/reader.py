"""YAML text -> plain Python data that remembers where every field came from.

PyYAML's constructed objects forget their source position and silently keep the last of two
duplicate keys. We compose nodes and convert them ourselves so every manifest problem can say
``FILE:LINE:COL`` and duplicates are reported. ``${ENV}`` interpolation runs on the converted
data (after parsing, so positions stay right; before validation, so values are checked).

Every YAML file a user hands govrun (manifests, approval rules, model scripts) goes through
:func:`parse_yaml`, within the limits of :mod:`govrun.runtime.manifest.limits`: converting
counts every value it visits, aliases each time they are used, so an alias bomb stops after
:data:`~govrun.runtime.manifest.limits.MAX_VALUES` instead of filling the memory; and only
values the trace can record pass (integers of 64 bits, finite numbers), since the manifest
is recorded in it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from govrun.runtime.errors import ManifestError
from govrun.runtime.manifest.limits import (
    MAX_DEPTH,
    MAX_TEXT,
    MAX_VALUES,
    TOO_DEEP,
    LimitExceeded,
    compose,
)

FieldPath = tuple[str | int, ...]
"""A field's address in the data: ``("tools", 2, "risk")`` is ``tools[2].risk``."""

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Dates and binary would construct to non-JSON types; the manifest only wants their text.
_TEXT_TAGS = frozenset({"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"})
_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_INT_RANGE = (-(2**63), 2**63)
"""Integers the trace can record: orjson writes 64 bits (and reads them back as signed)."""


def format_path(path: FieldPath) -> str:
    """``("tools", 2, "risk")`` -> ``tools[2].risk``; odd keys are quoted so paths stay readable."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _SIMPLE_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "(top level)"


def show(value: Any, limit: int = 60) -> str:
    """Render a user's value for a ``got ...`` clause: YAML words, quoted strings, short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an empty mapping" if not value else "a mapping"
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "..." + text[-1]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a manifest, at a 1-based line and column. Sorts by position."""

    line: int
    col: int
    path: FieldPath = field(compare=False)
    message: str

    def render(self, source: str) -> str:
        return f"{source}:{self.line}:{self.col} {format_path(self.path)}: {self.message}"


@dataclass
class SourceMap:
    """Field path -> (line, col) of its key (mapping entries) or item start (list items)."""

    positions: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: FieldPath) -> tuple[int, int]:
        """Position of ``path``, or of its nearest ancestor that exists (e.g. for a missing key)."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.positions:
                return self.positions[path[:end]]
        return (1, 1)

    def problem(self, path: FieldPath, message: str) -> Problem:
        line, col = self.locate(path)
        return Problem(line, col, path, message)


@dataclass
class ParsedYaml:
    """Plain data (dict/list/str/int/float/bool/None) plus positions and conversion problems."""

    data: Any
    source_map: SourceMap
    problems: list[Problem]


@dataclass
class LoadedYaml(ParsedYaml):
    """A document whose top level is a mapping."""

    data: dict[str, Any]


@dataclass(frozen=True)
class Document:
    """What kind of file is being read, for the messages about its top level."""

    name: str
    """``govrun manifest``: completes "X is not a valid ..."."""
    keys: str
    """Its top-level keys, in words: ``manifest keys (name, model, tools, ...)``."""
    required: str
    """The least a file of this kind must hold."""
    hint: str
    """Where to start when the file is empty."""


MANIFEST = Document(
    name="govrun manifest",
    keys="manifest keys (name, model, tools, ...)",
    required="`name` and `model`",
    hint="Start from fixtures/agents/quickstart.yaml, or see `govrun schema manifest`.",
)


def load_yaml(text: str, source: str, document: Document = MANIFEST) -> LoadedYaml:
    """Parse one YAML document whose top level must be a mapping; raise ManifestError if not."""
    parsed = parse_yaml(text, source, document)
    if parsed is None:
        raise ManifestError(
            f"{source} is empty",
            problems=[
                f"{source}:1:1 (top level): expected a mapping with at least "
                f"{document.required}; got an empty document"
            ],
            hint=document.hint,
        )
    if not isinstance(parsed.data, dict):
        line, col = parsed.source_map.locate(())
        raise ManifestError(
            f"{source} is not a valid {document.name} (1 problem)",
            problems=[
                f"{source}:{line}:{col} (top level): expected a mapping of {document.keys}; "
                f"got {show(parsed.data)}"
            ],
        )
    return LoadedYaml(parsed.data, parsed.source_map, parsed.problems)


def parse_yaml(text: str, source: str, document: Document) -> ParsedYaml | None:
    """Any one YAML document as plain data (None when it is empty), within the limits.
    Raises ManifestError for text that is not YAML or a document over a limit."""
    try:
        composed = compose(text)
    except yaml.MarkedYAMLError as exc:
        if "maximum nesting depth" in (exc.problem or ""):  # libyaml's own limit, at 1000
            raise _over_limit(source, document, exc.problem_mark, TOO_DEEP) from None
        raise _not_yaml(source, _syntax_problem(exc, source, text)) from None
    except yaml.YAMLError as exc:  # unmarked: an unacceptable character
        raise _not_yaml(source, _reader_problem(exc, source, text)) from None
    except UnicodeEncodeError as exc:  # libyaml, given a lone surrogate (never from a file)
        problem = f"{source}: YAML syntax error: {exc.reason} at character {exc.start}"
        raise _not_yaml(source, problem) from None
    except LimitExceeded as exc:
        raise _over_limit(source, document, exc.mark, exc.message) from None
    except RecursionError:  # the limits keep far from Python's stack; unless it was nearly full
        raise _over_limit(source, document, None, "nests too deeply to read") from None
    if composed.root is None:
        return None
    converter = _Converter()
    try:
        data = converter.convert(composed.root, ())
    except _Expansion as exc:
        mark = composed.first_alias
        raise _over_limit(source, document, mark, exc.message, aliases=True) from None
    except RecursionError:
        raise _over_limit(source, document, None, "nests too deeply to read") from None
    return ParsedYaml(data, converter.source_map, converter.problems)


def _not_yaml(source: str, problem: str) -> ManifestError:
    return ManifestError(f"{source} is not valid YAML (1 problem)", problems=[problem])


def _over_limit(
    source: str, document: Document, mark: Mark | None, message: str, *, aliases: bool = False
) -> ManifestError:
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    hint = (
        f"Each *alias repeats the whole value of its &anchor: govrun reads at most "
        f"{MAX_VALUES:,} values and {MAX_TEXT >> 20} MiB of text from a YAML file, aliases "
        "included."
        if aliases
        else None
    )
    return ManifestError(
        f"{source} is not a valid {document.name} (1 problem)",
        problems=[Problem(line, col, (), message).render(source)],
        hint=hint,
    )


def _syntax_problem(exc: yaml.MarkedYAMLError, source: str, text: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or exc.context or "unreadable YAML"
    if exc.context and exc.problem and exc.context_mark:
        where = exc.context_mark
        problem += f" ({exc.context} at {where.line + 1}:{where.column + 1})"
    lines = text.splitlines()
    here = lines[line - 1] if line <= len(lines) else ""
    if "'\\t'" in problem or here[col - 1 : col] == "\t":  # PyYAML says the tab; libyaml not
        problem += "; indent with spaces, not tabs"
    elif "${" in here:
        problem += "; quote values that use ${VAR} inside [ ] or { }"
    return f"{source}:{line}:{col}: YAML syntax error: {problem}"


def _reader_problem(exc: yaml.YAMLError, source: str, text: str) -> str:
    """A character YAML does not allow (a control character), at its line and column."""
    position = getattr(exc, "position", None)
    character = getattr(exc, "character", None)
    if not isinstance(position, int) or not isinstance(character, int):
        return f"{source}: YAML syntax error: {exc}"
    line = text.count("\n", 0, position) + 1
    col = position - (text.rfind("\n", 0, position) + 1) + 1
    return (
        f"{source}:{line}:{col}: YAML syntax error: unacceptable character #x{character:04x} "
        "(YAML allows no control characters in a file)"
    )


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def _pos(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Expansion(Exception):
    """Converting went past a limit through aliases: the message says which."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class _Budget:
    """What converting may still visit: values (aliases counted each time), characters of
    text, and levels of nesting."""

    values: int = MAX_VALUES
    text: int = MAX_TEXT
    depth: int = MAX_DEPTH


class _Converter:
    """Turns composed nodes into plain data, recording positions and structural problems."""

    def __init__(self, budget: _Budget | None = None, active: set[int] | None = None) -> None:
        self.source_map = SourceMap()
        self.problems: list[Problem] = []
        self._constructor = SafeConstructor()
        self._budget = budget or _Budget()
        self._active = set() if active is None else active  # guards recursive aliases

    def convert(self, node: Node, path: FieldPath) -> Any:
        if not path:
            self.source_map.positions[()] = _pos(node)
        budget = self._budget
        budget.values -= 1
        if budget.values < 0:
            raise _Expansion(
                f"expands to more than {MAX_VALUES:,} values (an alias/anchor bomb?); its "
                "first alias is here"
            )
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._active:
            self._report(
                path, "expected a finite value; got a recursive alias (*name inside &name)"
            )
            return None
        if budget.depth == 0:
            raise _Expansion(
                f"nests lists and mappings more than {MAX_DEPTH} levels deep through its "
                "aliases; its first alias is here"
            )
        self._active.add(id(node))
        budget.depth -= 1
        try:
            if node.tag not in (_MAP_TAG, _SEQ_TAG):
                message = f"expected a plain mapping or list; got YAML tag {_short_tag(node.tag)!r}"
                self._report(path, message)
            if isinstance(node, SequenceNode):
                return [self._child(item, (*path, i), item) for i, item in enumerate(node.value)]
            assert isinstance(node, MappingNode)
            return self._mapping(node, path)
        finally:
            budget.depth += 1
            self._active.discard(id(node))

    def _child(self, node: Node, path: FieldPath, anchor: Node) -> Any:
        self.source_map.positions[path] = _pos(anchor)
        return self.convert(node, path)

    def _scalar(self, node: ScalarNode, path: FieldPath) -> Any:
        self._budget.text -= len(node.value)
        if self._budget.text < 0:
            raise _Expansion(
                f"expands to more than {MAX_TEXT >> 20} MiB of text (an alias/anchor bomb?); "
                "its first alias is here"
            )
        if node.tag in _TEXT_TAGS:
            return node.value
        try:
            value = self._constructor.construct_object(node, deep=True)
        except ConstructorError:
            message = (
                f"expected a plain value (text, number, true/false, null); got YAML tag "
                f"{_short_tag(node.tag)!r} (use ${{VAR}} for environment values)"
            )
        except (ValueError, KeyError, TypeError):  # e.g. `!!int abc`
            message = f"expected a value of type {_short_tag(node.tag)}; got {show(node.value)}"
        else:
            message = _unrecordable(value)
            if message is None:
                return value
        self._report(path, message)
        return None

    def _mapping(self, node: MappingNode, path: FieldPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, tuple[int, int]] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                self._report(
                    path,
                    "expected plain text keys; got a list or mapping as a key",
                    at=_pos(key_node),
                )
                continue
            key = str(key_node.value)
            if key in first_seen:
                line, col = first_seen[key]
                self._report(
                    (*path, key),
                    f"duplicate key {key!r} (first at line {line}:{col}); "
                    "YAML keeps only the last one, so remove or rename one",
                    at=_pos(key_node),
                )
            first_seen[key] = _pos(key_node)
            result[key] = self._child(value_node, (*path, key), key_node)
        for source in merges:
            self._merge(source, path, result)
        return result

    def _merge(self, source: Node, path: FieldPath, result: dict[str, Any]) -> None:
        """``<<: *defaults``: copy keys the mapping does not set itself (earlier sources win)."""
        sources = source.value if isinstance(source, SequenceNode) else [source]
        for item in sources:
            if not isinstance(item, MappingNode):
                self._report(path, "expected `<<:` to merge a mapping; got a plain value")
                continue
            sub = _Converter(self._budget, self._active)
            merged = sub.convert(item, path)
            self.problems.extend(sub.problems)
            copied = {key for key in merged if key not in result}
            for key in copied:
                result[key] = merged[key]
            depth = len(path)
            for sub_path, position in sub.source_map.positions.items():
                if len(sub_path) > depth and sub_path[depth] in copied:
                    self.source_map.positions[sub_path] = position

    def _report(self, path: FieldPath, message: str, at: tuple[int, int] | None = None) -> None:
        line, col = at or self.source_map.locate(path)
        self.problems.append(Problem(line, col, path, message))


def _unrecordable(value: Any) -> str | None:
    """Why the trace cannot record ``value`` (the manifest is recorded in it), or None."""
    if type(value) is int and not _INT_RANGE[0] <= value < _INT_RANGE[1]:
        return (
            f"{show(value)} is outside what the trace can record: integers from -2**63 to 2**63-1"
        )
    if type(value) is float and not math.isfinite(value):
        shown = "nan" if math.isnan(value) else ("-inf" if value < 0 else "inf")
        return f"{shown} is outside what the trace can record: a number must be finite"
    return None


# --- ${ENV} interpolation -----------------------------------------------------------------

_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_REFERENCE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


@dataclass(frozen=True)
class Template:
    """A string interpolation changed: as written, as expanded, and the variables it used."""

    text: str
    value: str
    names: frozenset[str]


@dataclass
class Interpolated:
    """Result of interpolation: new data, problems, and the templates per changed field."""

    data: Any
    problems: list[Problem]
    templates: dict[FieldPath, Template]


def interpolate(data: Any, source_map: SourceMap, env: Mapping[str, str]) -> Interpolated:
    """Expand ``${VAR}``, ``${VAR:-default}`` and ``$${`` in every string value (never keys)."""
    result = Interpolated(None, [], {})
    result.data = _walk(data, (), source_map, env, result)
    return result


def _walk(
    value: Any, path: FieldPath, source_map: SourceMap, env: Mapping[str, str], result: Interpolated
) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v, (*path, k), source_map, env, result) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, (*path, i), source_map, env, result) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    expanded, names, errors = expand(value, env)
    result.problems.extend(source_map.problem(path, error) for error in errors)
    if expanded != value:
        result.templates[path] = Template(value, expanded, frozenset(names))
    return expanded


def expand(text: str, env: Mapping[str, str]) -> tuple[str, set[str], list[str]]:
    """Interpolate one string. Returns (value, variable names used, error messages)."""
    out: list[str] = []
    names: set[str] = set()
    errors: list[str] = []
    end = 0
    for match in _TOKEN.finditer(text):
        out.append(text[end : match.start()])
        end = match.end()
        token, body = match.group(0), match.group(1)
        if token == "$${":
            out.append("${")
        elif body is None:
            errors.append(
                f"expected '}}' to close '${{'; got {show(text)} (write $${{ for a literal '${{')"
            )
            out.append(token)
        else:
            out.append(_substitute(body, env, names, errors, text))
    out.append(text[end:])
    return "".join(out), names, errors


def _substitute(
    body: str, env: Mapping[str, str], names: set[str], errors: list[str], text: str
) -> str:
    reference = _REFERENCE.fullmatch(body)
    if reference is None or "${" in (reference.group(2) or ""):
        errors.append(
            f"expected ${{NAME}} or ${{NAME:-default}} with NAME made of letters, "
            f"digits and _; got {show('${' + body + '}')}"
        )
        return "${" + body + "}"
    name, default = reference.groups()
    names.add(name)
    value = env.get(name)
    if default is not None:
        return value or default
    if value is None:
        errors.append(
            f"expected environment variable {name} to be set; got {show(text)} "
            f"(set it, or give a default: ${{{name}:-value}})"
        )
        return "${" + body + "}"
    return value
