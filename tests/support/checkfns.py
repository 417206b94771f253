"""Predicates loaded by ``python`` checks in ``tests/test_checks.py``.

Each takes the one dict a python check passes: tool, arguments, output, data, evidence,
final_answer.
"""

from __future__ import annotations

from typing import Any


def output_says_ok(ev: dict[str, Any]) -> bool:
    """Plain bool."""
    return ev["output"] == "ok"


def counted_lines(ev: dict[str, Any]) -> tuple[bool, str]:
    """(bool, detail)."""
    lines = (ev["output"] or "").splitlines()
    return len(lines) >= 2, f"output has {len(lines)} lines; need at least 2"


def wrote_markdown(ev: dict[str, Any]) -> dict[str, Any]:
    """A dict with passed, detail and evidence."""
    path = ev["arguments"].get("path", "")
    return {
        "passed": path.endswith(".md"),
        "detail": f"{path} is {'' if path.endswith('.md') else 'not '}markdown",
        "evidence": {"suffix": path.rpartition(".")[2], "tool": ev["tool"]},
    }


def explode(ev: dict[str, Any]) -> bool:
    raise ValueError("the predicate could not decide")


def answer_mentions_tool(ev: dict[str, Any]) -> bool:
    """Success-check predicate: sees the final answer, and no call."""
    return ev["tool"] is None and "report" in (ev["final_answer"] or "")


def returns_number(ev: dict[str, Any]) -> int:
    return 1


def misspelled_key(ev: dict[str, Any]) -> dict[str, Any]:
    return {"passed": True, "detial": "typo"}


def unserializable_evidence(ev: dict[str, Any]) -> dict[str, Any]:
    return {"passed": True, "evidence": {"handle": object()}}


def vandal(ev: dict[str, Any]) -> bool:
    """Mutates everything it was given; the call it inspects must not change."""
    ev["data"]["exit_code"] = 99
    ev["evidence"].clear()
    ev["arguments"]["path"] = "elsewhere"
    return True


def exits(ev: dict[str, Any]) -> bool:
    raise SystemExit(3)


NOT_CALLABLE = 42
