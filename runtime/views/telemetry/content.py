"""Message content in the GenAI conventions' shapes (``gen_ai.input.messages``,
``gen_ai.output.messages``): only exported when asked (``--content``,
``telemetry.capture_content``), from the trace as it holds them, so redacted as it is."""

from __future__ import annotations

from typing import Any

import orjson

from govrun.runtime.trace import events as ev


def text_message(role: str, content: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": content}]}


def input_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages a request added, in the conventions' message shape."""
    out = []
    for message in messages:
        role = str(message.get("role", "user"))
        parts: list[dict[str, Any]] = []
        if message.get("content"):
            kind = "tool_call_response" if role == "tool" else "text"
            key = "response" if role == "tool" else "content"
            part: dict[str, Any] = {"type": kind, key: message["content"]}
            if role == "tool":
                part["id"] = message.get("tool_call_id")
            parts.append(part)
        for call in message.get("tool_calls") or []:
            function = call.get("function", {})
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments"),
                }
            )
        out.append({"role": role, "parts": parts})
    return out


def output_message(e: ev.ModelResponse) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if e.content:
        parts.append({"type": "text", "content": e.content})
    for call in e.tool_calls:
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": call.get("name"),
                "arguments": call.get("arguments"),
            }
        )
    return {"role": "assistant", "parts": parts, "finish_reason": e.finish_reason or "stop"}


def as_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
