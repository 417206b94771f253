"""How big a prompt is, offline: the bytes of its canonical JSON, counted incrementally."""

from __future__ import annotations

import math
from typing import Any

import orjson


class PromptSizer:
    """The byte size of ``{"messages": ..., "tools": ...}`` as canonical JSON, computed
    incrementally: the loop only appends messages, so re-serializing the whole prompt on
    every call would make each step cost more than the last. A new list (compaction
    replaces the messages) starts the count again."""

    _OPEN = len(b'{"messages":[')
    _MIDDLE = len(b'],"tools":')

    def __init__(self) -> None:
        self._messages: list[dict[str, Any]] | None = None
        self._count = 0
        self._bytes = 0
        self._tools: list[dict[str, Any]] | None = None
        self._tools_bytes = 0

    def size(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
        if messages is not self._messages or len(messages) < self._count:
            self._messages, self._count, self._bytes = messages, 0, 0
        for message in messages[self._count :]:
            self._bytes += len(orjson.dumps(message, option=orjson.OPT_SORT_KEYS))
        self._count = len(messages)
        if tools is not self._tools:
            self._tools = tools
            self._tools_bytes = len(orjson.dumps(tools, option=orjson.OPT_SORT_KEYS))
        commas = max(self._count - 1, 0)
        return self._OPEN + self._bytes + commas + self._MIDDLE + self._tools_bytes + 1

    def tokens(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], bytes_per_token: float
    ) -> int:
        """The estimate a manifest declares: bytes of canonical JSON per token."""
        return math.ceil(self.size(messages, tools) / bytes_per_token)
