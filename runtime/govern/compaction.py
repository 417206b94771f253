"""Context compaction: keep the prompt under `compaction.max_context_tokens`.

The system prompt, the task and the last K turns stay verbatim; older turns (an assistant
message and the tool results that answer it) become one message: a truncation summary —
one line per call, tool outputs elided with their size and sha256 — or a summary a model
wrote, which the trace records so replay reuses it instead of asking again. Everything
here is a pure function of the messages, so replay compacts at the same points.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from govrun.runtime.ports import Model, ModelReply

COMPACTED = "[compacted"
"""How a compaction message starts: a later compaction folds it into the new one."""

SHOWN = 160


@dataclass(frozen=True)
class Plan:
    """Which messages a compaction keeps and which it replaces."""

    head: list[dict[str, Any]]
    """System prompt and task."""
    old: list[dict[str, Any]]
    """Turns (and an earlier compaction message) to replace."""
    kept: list[dict[str, Any]]
    """The last turns, verbatim."""
    turns_replaced: int


def plan(messages: list[dict[str, Any]], keep_last_turns: int) -> Plan | None:
    """Split ``messages``; None when there is nothing older than the turns to keep."""
    head_end = 0
    while head_end < len(messages) and messages[head_end].get("role") == "system":
        head_end += 1
    if head_end < len(messages) and messages[head_end].get("role") == "user":
        head_end += 1  # the task
    starts = [i for i in range(head_end, len(messages)) if messages[i].get("role") == "assistant"]
    if len(starts) <= keep_last_turns:
        return None
    cut = starts[-keep_last_turns]
    old = messages[head_end:cut]
    return Plan(messages[:head_end], old, messages[cut:], len(starts) - keep_last_turns)


def truncation_summary(old: list[dict[str, Any]]) -> str:
    """One line per earlier message: what the agent said and called, what tools returned
    (elided, with size and hash so the content can be found in the trace)."""
    lines: list[str] = []
    for message in old:
        content = message.get("content")
        role = message.get("role")
        if role == "user" and isinstance(content, str) and content.startswith(COMPACTED):
            lines.extend(content.splitlines()[1:])  # an earlier compaction, folded in
        elif role == "assistant":
            for call in message.get("tool_calls") or []:
                function = call.get("function", {})
                lines.append(
                    f"- called {function.get('name')}({_clip(function.get('arguments', ''))})"
                )
            if content:
                lines.append(f"- said: {_clip(content)}")
        elif role == "tool":
            text = content if isinstance(content, str) else orjson.dumps(content).decode()
            data = text.encode()
            lines.append(
                f"  → result elided: {len(data):,} bytes, sha256 "
                f"{hashlib.sha256(data).hexdigest()[:16]}"
            )
        elif isinstance(content, str):
            lines.append(f"- {role}: {_clip(content)}")
    return "\n".join(lines)


def compaction_message(text: str, turns: int, strategy: str) -> dict[str, Any]:
    how = "summarised" if strategy == "summarize" else "truncated"
    return {
        "role": "user",
        "content": f"{COMPACTED}: {turns} earlier turn{'s' if turns != 1 else ''} {how}]\n{text}",
    }


def transcript(old: list[dict[str, Any]]) -> str:
    """The replaced messages as text for a summary model."""
    parts = []
    for message in old:
        role = message.get("role")
        content = message.get("content") or ""
        if message.get("tool_calls"):
            calls = ", ".join(
                f"{c.get('function', {}).get('name')}({c.get('function', {}).get('arguments')})"
                for c in message["tool_calls"]
            )
            content = f"{content}\n[calls: {calls}]".strip()
        parts.append(f"{role}: {content}")
    return "\n\n".join(parts)


def _clip(text: str) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= SHOWN else flat[: SHOWN - 1] + "…"


class LiveSummarizer:
    """The live ``Summarizer`` port: ask the model, with no tools."""

    def summarize(self, model: Model, instructions: str, transcript: str) -> ModelReply:
        return model.complete(
            [{"role": "system", "content": instructions}, {"role": "user", "content": transcript}],
            [],
        )
