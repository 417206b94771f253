"""Whether a reply without tool calls is a final answer (DESIGN section 2, step 3).

A reply cut off by the token limit, stopped by a content filter, refused, empty, or holding
a tool call written as text is no answer: the loop records why (``reply_refused``), tells
the model what to do instead, and asks again, up to ``model.max_refused_replies`` in a row.
With ``model.tool_call_format`` the calls written in that form are parsed into real ones
instead. Everything the model is told is a pure function of the reply and the tools, so
replay reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from govrun.runtime.models.text_calls import TextCalls, TextFormat, find_text_calls
from govrun.runtime.ports import ModelReply, ToolCallRequest

_QUOTED = 160
"""Characters of a refusal quoted back to the model."""

_WHAT: dict[str, str] = {
    "length": "cut off by the token limit",
    "content_filter": "stopped by the server's content filter",
    "refusal": "a refusal",
    "empty": "empty",
    "text_tool_call": "a tool call written as text",
}


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a reply is no final answer, and what the model is told."""

    kind: str
    told: str
    detected: dict[str, Any] | None = None

    @property
    def what(self) -> str:
        """The kind in words, for the run's reason (``cut off by the token limit``)."""
        return _WHAT[self.kind]


@dataclass(frozen=True, slots=True)
class Parsed:
    """Tool calls parsed from the text (``model.tool_call_format``)."""

    format: TextFormat
    calls: list[ToolCallRequest]


def judge_reply(
    reply: ModelReply, step: int, *, tool_call_format: str | None, shapes: str
) -> Refused | Parsed | None:
    """None when ``reply`` (which carries no native tool calls) is a final answer. ``shapes``
    lists the tools' call shapes, told to a model that wrote a call as text."""
    content = reply.content or ""
    if reply.finish_reason == "length":
        return Refused(
            "length",
            f"Your reply was cut off by the token limit (finish_reason length) after "
            f"{len(content):,} characters, so it is not a final answer. Continue in a shorter "
            "reply: call a tool, or give the final answer in a few sentences.",
        )
    if reply.finish_reason == "content_filter":
        return Refused(
            "content_filter",
            "Your reply was stopped by the server's content filter (finish_reason "
            "content_filter), so it is not a final answer. Answer again, without the "
            "filtered content.",
        )
    if reply.refusal:
        quoted = _clip(" ".join(reply.refusal.split()))
        return Refused(
            "refusal",
            f"Your reply was a refusal ({quoted!r}), not a final answer. If the task cannot "
            "be done with the tools given, answer in plain text saying why.",
        )
    found = find_text_calls(content)
    if found is not None:
        if found.format == tool_call_format:
            return Parsed(found.format, _requests(found, step))
        return Refused("text_tool_call", _use_the_tools(found, shapes), found.describe())
    if not content.strip():
        return Refused(
            "empty",
            "Your reply was empty: no text and no tool calls. Call a tool, or give the final "
            "answer in plain text.",
        )
    return None


def _use_the_tools(found: TextCalls, shapes: str) -> str:
    return (
        f"Your reply wrote a tool call as text ({found.names}); it was not run, and it is not "
        "a final answer. Call tools through the tools interface (tool_calls), not in the "
        f"message text. The tools: {shapes}. When the task is done, answer in plain text."
    )


def _requests(found: TextCalls, step: int) -> list[ToolCallRequest]:
    """The parsed calls, with ids a replay gives them again: ``text_<step>_<i>``."""
    return [
        ToolCallRequest(id=f"text_{step}_{i}", name=c.name, arguments=c.arguments)
        for i, c in enumerate(found.calls)
    ]


def _clip(text: str) -> str:
    return text if len(text) <= _QUOTED else text[: _QUOTED - 1] + "…"
