"""Tool calls a model wrote as text instead of through the tools interface.

Small local models, and servers without native tool calling, often answer
``{"name": "read_file", "arguments": {"path": "notes.txt"}}`` — bare, in a fenced code
block, or in a Hermes ``<tool_call>…</tool_call>`` block. Such text is never a final
answer. :func:`find_text_calls` recognises the common forms; the loop refuses the reply, or,
with ``model.tool_call_format``, turns the calls of that form into real ones. Pure
functions of the text, so replay finds exactly what the run found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson

TextFormat = Literal["json", "hermes"]

_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.DOTALL)
_FENCE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n(.*?)\n?```", re.DOTALL)
_CALL_KEYS = frozenset({"name", "arguments", "parameters", "id", "type"})


@dataclass(frozen=True, slots=True)
class TextCall:
    """One call found in text: the tool name and its arguments as JSON text."""

    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class TextCalls:
    """The calls a reply's text holds, and the form they were written in."""

    format: TextFormat
    calls: tuple[TextCall, ...]

    def describe(self) -> dict[str, Any]:
        """As recorded in ``reply_refused.detected``."""
        return {
            "format": self.format,
            "calls": [{"name": c.name, "arguments": c.arguments} for c in self.calls],
        }

    @property
    def names(self) -> str:
        return ", ".join(dict.fromkeys(c.name for c in self.calls))


def find_text_calls(content: str | None) -> TextCalls | None:
    """The tool calls written in ``content``: Hermes blocks first (their tags are
    unambiguous), else the whole text or a fenced block as one JSON call object (or a list
    of them). None when the text is an ordinary answer."""
    if not content or not content.strip():
        return None
    if "<tool_call>" in content:
        calls = [_call(_json(body)) for body in _HERMES.findall(content)]
        if calls and all(c is not None for c in calls):
            return TextCalls("hermes", tuple(c for c in calls if c is not None))
    for text in (content.strip(), *_FENCE.findall(content)):
        found = _calls(_json(text.strip()))
        if found:
            return TextCalls("json", found)
    return None


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _calls(value: Any) -> tuple[TextCall, ...]:
    items = value if isinstance(value, list) and value else [value]
    calls = [_call(item) for item in items]
    return tuple(c for c in calls if c is not None) if all(calls) else ()


def _call(value: Any) -> TextCall | None:
    """A call object: a string ``name`` and ``arguments`` (or ``parameters``), an object or
    JSON text, and nothing else but an ``id`` or a ``type``."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    if not value["name"].strip() or not set(value) <= _CALL_KEYS:
        return None
    args = value.get("arguments", value.get("parameters", {}))
    if isinstance(args, dict):
        return TextCall(value["name"], orjson.dumps(args, option=orjson.OPT_SORT_KEYS).decode())
    if isinstance(args, str):
        return TextCall(value["name"], args)
    return None
