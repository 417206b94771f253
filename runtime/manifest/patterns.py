"""Regular expressions from the manifest, compiled by a linear-time engine.

A manifest's regex meets model-chosen input (arguments, tool output, the final answer). A
backtracking engine lets a pattern like ``(a+)+$`` take exponential time on one crafted
argument and stall a decision forever. RE2 (the ``google-re2`` wheel) matches in time
linear in the input and never backtracks; the price is that it refuses what it cannot do in
linear time — backreferences (``\\1``) and lookaround (``(?=…)``, ``(?<!…)``) — and those
patterns are refused when the manifest is validated, with the reason.

One difference people notice: ``$`` matches only at the very end of the text (Python's
``re`` also matches before a final newline). Write ``\\n?$`` where that matters.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Protocol

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print parse errors on stderr; the message is ours


class Pattern(Protocol):
    """The part of a compiled pattern govrun uses (RE2's and ``re``'s alike)."""

    pattern: str

    def search(self, text: str) -> Any: ...


class PatternError(ValueError):
    """A pattern RE2 cannot compile: a syntax error, or a construct it refuses to run in
    linear time. The message says which."""


def compile_pattern(pattern: str, *, legacy: bool = False) -> Pattern:
    """Compile ``pattern`` with RE2, or raise :class:`PatternError` saying why not.

    ``legacy`` accepts what Python's ``re`` compiles: manifests recorded in traces written
    before regexes ran on RE2 may hold such a pattern, and their replay must still work. A
    manifest that is validated (every live run) never gets here with one: validation
    refuses it. So the fallback below only ever serves those recorded manifests.
    """
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        refused = exc
    try:
        python = re.compile(pattern)
    except re.error as exc:  # not a regex at all: Python's message says where
        raise PatternError(str(exc)) from None
    if legacy:
        return python
    raise PatternError(_unsupported(refused))


def _unsupported(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else str(exc)
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return (
        f"{str(detail).strip()}: regexes run on RE2, which matches in linear time so a "
        "pattern can never stall a decision, and has no lookahead or lookbehind, "
        "backreferences, atomic groups or \\Z (use \\z)"
    )


@functools.lru_cache(maxsize=512)
def cached_pattern(pattern: str) -> Pattern:
    """:func:`compile_pattern` once per pattern text (checks compile at each call). A
    pattern RE2 refuses reached a check only through a recorded manifest (see above)."""
    return compile_pattern(pattern, legacy=True)


__all__ = ["Pattern", "PatternError", "cached_pattern", "compile_pattern"]
