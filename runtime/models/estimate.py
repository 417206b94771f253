"""Deterministic token estimates, for a reply that reports no usage (the scripted model's
turns, and servers that leave ``usage`` out): UTF-8 bytes / 4, rounded up. Token budgets
then still hold, and the estimate is recorded as one."""

from __future__ import annotations

from typing import Any

import orjson


def estimate_prompt_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
    """The canonical JSON prompt (messages and tool definitions), in tokens."""
    canonical = orjson.dumps({"messages": messages, "tools": tools}, option=orjson.OPT_SORT_KEYS)
    return tokens(len(canonical))


def tokens(size: int) -> int:
    """``size`` bytes in tokens: a quarter, rounded up."""
    return -(-size // 4)
