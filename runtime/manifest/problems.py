"""Turn a pydantic ValidationError into manifest problems a person can act on.

Pydantic speaks in its own terms (``literal_error``, ``('tools', 0, 'file_exists', 'path')``,
"Input should be ..."). Users wrote YAML, so each error becomes ``FIELD: expected ...; got ...``
at the YAML position, with pydantic-internal location parts hidden and a did-you-mean where a
close spelling exists. Validators add problems of their own through ``fail_if()``.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from govrun.runtime.manifest.reader import FieldPath, Problem, SourceMap, show

MESSAGE = "govrun"  # a custom error whose message is already in govrun's words
PROBLEMS = "govrun_problems"  # several custom errors at sub-paths of the failing value

_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_COMPARISONS = {
    "greater_than": ("greater than", "gt"),
    "greater_than_equal": ("at least", "ge"),
    "less_than": ("less than", "lt"),
    "less_than_equal": ("at most", "le"),
}


def message(text: str) -> PydanticCustomError:
    """A validation error whose text is shown as is (it already says expected/got)."""
    return PydanticCustomError(MESSAGE, "{message}", {"message": text})


def fail_if(problems: Mapping[FieldPath, str]) -> None:
    """Raise several problems from one validator, each at a path below the validated value."""
    if problems:
        raise PydanticCustomError(
            PROBLEMS,
            "{count} problem(s)",
            {"problems": list(problems.items()), "count": len(problems)},
        )


def did_you_mean(word: object, choices: Iterable[str]) -> str | None:
    """The closest choice to ``word`` (case-insensitive), if any is close enough."""
    if not isinstance(word, str):
        return None
    by_lower = {choice.lower(): choice for choice in choices}
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


def expected_one_of(choices: Sequence[str], got: object) -> str:
    """``expected one of a, b, c; got 'x' — did you mean 'a'?``"""
    head = (
        f"expected {choices[0]}" if len(choices) == 1 else f"expected one of {', '.join(choices)}"
    )
    text = f"{head}; got {show(got)}"
    suggestion = did_you_mean(got, choices)
    return f"{text} — did you mean {suggestion!r}?" if suggestion else text


def translate(
    error: ValidationError,
    data: Any,
    source_map: SourceMap,
    root: type[BaseModel],
    patterns: Mapping[str, str],
) -> list[Problem]:
    """All problems in ``error``; ``patterns`` maps regexes used in fields to plain words."""
    problems: list[Problem] = []
    for detail in error.errors(include_url=False):
        problems.extend(_problems(detail, data, source_map, root, patterns))
    return problems


def _problems(
    detail: ErrorDetails,
    data: Any,
    source_map: SourceMap,
    root: type[BaseModel],
    patterns: Mapping[str, str],
) -> list[Problem]:
    raw = tuple(detail["loc"])
    path = clean_path(raw, data, keep_last_missing=detail["type"] == "missing")
    ctx = detail.get("ctx") or {}
    if detail["type"] == PROBLEMS:
        return [source_map.problem(path + tuple(sub), text) for sub, text in ctx["problems"]]
    if detail["type"].startswith("union_tag_"):
        discriminator = str(ctx.get("discriminator", "")).strip("'")
        tags = _union_tags(_type_at(root, raw), discriminator)
        path += (discriminator,)
        if detail["type"] == "union_tag_not_found":
            text = f"required key {discriminator!r} is missing (one of {', '.join(tags)})"
            return [source_map.problem(path, text)]
        return [source_map.problem(path, expected_one_of(tags, ctx.get("tag")))]
    return [source_map.problem(path, _describe(detail, raw, path, root, patterns))]


def clean_path(loc: tuple[str | int, ...], data: Any, *, keep_last_missing: bool) -> FieldPath:
    """Keep only the parts of pydantic's ``loc`` that exist in the user's data.

    Union tags and validator names (``file_exists``, ``function-after[...]``) are pydantic's
    bookkeeping, not keys the user wrote. The last part of a missing-key error is kept.
    """
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if (
            isinstance(node, dict)
            and isinstance(part, str)
            and (part in node or (last and keep_last_missing))
        ):
            path.append(part)
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
    return tuple(path)


def _describe(
    detail: ErrorDetails,
    raw: tuple[str | int, ...],
    path: FieldPath,
    root: type[BaseModel],
    patterns: Mapping[str, str],
) -> str:
    kind, value = detail["type"], detail.get("input")
    ctx = detail.get("ctx") or {}
    key = path[-1] if path else ""
    if kind == MESSAGE:
        return str(ctx["message"])
    if kind == "missing":
        return f"required key {key!r} is missing"
    if kind == "extra_forbidden":
        return _unknown_key(str(key), _keys_at(root, raw[:-1]))
    if kind == "literal_error":
        return expected_one_of(_quoted(str(ctx.get("expected", ""))), value)
    if kind in _TYPE_WORDS:
        hint = " (list items start with '- ')" if kind == "list_type" and value else ""
        return f"expected {_TYPE_WORDS[kind]}; got {show(value)}{hint}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return f"expected {patterns.get(pattern, f'text matching {pattern}')}; got {show(value)}"
    if kind in _COMPARISONS:
        words, bound = _COMPARISONS[kind]
        return f"expected a number {words} {_number(ctx.get(bound))}; got {show(value)}"
    if kind == "too_short":
        return f"expected at least {_count(ctx.get('min_length', 1), 'entry', 'entries')}; got " + (
            _count(ctx.get("actual_length", 0), "entry", "entries")
        )
    if kind == "string_too_short":
        return (
            f"expected at least {_count(ctx.get('min_length', 1), 'character')}; got {show(value)}"
        )
    text = re.sub(r"^(Value|Assertion) error, ", "", detail["msg"])
    return f"{text[:1].lower()}{text[1:]}; got {show(value)}"


def _number(value: object) -> object:
    """Bounds arrive as floats; ``0.0`` reads better as ``0``."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _count(number: object, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else plural or singular + 's'}"


def _unknown_key(key: str, allowed: list[str]) -> str:
    suggestion = did_you_mean(key, allowed)
    if suggestion:
        return f"unknown key {key!r}; did you mean {suggestion!r}?"
    if allowed:
        return f"unknown key {key!r}; expected one of {', '.join(allowed)}"
    return f"unknown key {key!r}"


def _quoted(expected: str) -> list[str]:
    """``"'low', 'medium' or 'high'"`` -> ``['low', 'medium', 'high']``."""
    return re.findall(r"'([^']*)'", expected) or [expected]


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``| None`` so the interesting type is left."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [arg for arg in get_args(tp) if arg is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _type_at(root: Any, loc: tuple[str | int, ...]) -> Any:
    """The declared type at pydantic's raw ``loc`` (walks models, lists, dicts, tagged unions)."""
    tp = root
    for part in loc:
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = {(info.alias or name): info for name, info in tp.model_fields.items()}
            if part not in fields:
                return None
            tp = fields[part].annotation
        elif origin is list:
            tp = get_args(tp)[0]
        elif origin is dict:
            tp = get_args(tp)[1]
        elif origin in (Union, types.UnionType):
            tp = next((m for m in get_args(tp) if part in _literals(m)), None)
        else:
            return None
    return _unwrap(tp)


def _literals(model: Any) -> set[object]:
    """Every literal value a model's fields are pinned to (its union tag, in practice)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return set()
    found: set[object] = set()
    for info in model.model_fields.values():
        if get_origin(info.annotation) is Literal:
            found.update(get_args(info.annotation))
    return found


def _keys_at(root: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    tp = _type_at(root, loc)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [info.alias or name for name, info in tp.model_fields.items()]
    return []


def _union_tags(tp: Any, discriminator: str) -> list[str]:
    tags: list[str] = []
    for member in get_args(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            info = member.model_fields.get(discriminator)
            if info is not None:
                tags.extend(str(tag) for tag in get_args(info.annotation))
    return tags
