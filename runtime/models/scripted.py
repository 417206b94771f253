"""The offline model adapter: replies come from a YAML script, one turn per call.

A real adapter, not a test double: demos run without a network, tests drive the loop with it,
and error turns let retries be shown offline. A script is a YAML list; each turn is one of::

    - content: "text"
    - tool_calls: [{name: fs_write, arguments: {path: a.txt, content: hi}}]
    - tool_calls: [{name: fs_write, arguments: '{"path": "a.txt"'}]   # raw, even malformed
    - error: {status: 429, message: rate limited, retry_after_s: 0.5}
    - error: {timeout: true}

with optional ``usage: {prompt_tokens, completion_tokens}`` and ``finish_reason``. Turns are
numbered from 0 like list indices: call ids are ``call_<turn>_<i>`` unless given. Everything is
validated and precomputed at load, so ``complete()`` only counts prompt bytes.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from govrun.runtime.errors import GovrunError
from govrun.runtime.manifest.inputs import SCRIPT, read_text
from govrun.runtime.manifest.reader import Document, ParsedYaml, SourceMap, parse_yaml
from govrun.runtime.models.estimate import estimate_prompt_tokens, tokens
from govrun.runtime.models.prompt_size import PromptSizer
from govrun.runtime.ports import Model, ModelCallError, ModelReply, ToolCallRequest, Usage

__all__ = ["ScriptedModel", "estimate_prompt_tokens"]

RETRYABLE_STATUSES = frozenset({408, 409, 429})
"""Besides 5xx: statuses an error turn is retryable for by default (as over HTTP)."""

SCRIPT_DOCUMENT = Document(
    name="model script",
    keys="turns",
    required="one turn",
    hint=SCRIPT.hint,
)

_HINT = (
    "Each turn is a mapping with `content:` and/or `tool_calls: [{name, arguments}]`, or "
    "`error: {status: 429}` / `error: {timeout: true}`; `usage:` and `finish_reason:` are "
    "optional."
)


# --- the script format -----------------------------------------------------------------------


def _mapping_or_text(value: Any) -> Any:
    """One clear message instead of pydantic's two union branches."""
    if not isinstance(value, dict | str):
        raise ValueError("expected a mapping (sent as JSON) or a raw string (sent as is)")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScriptToolCall(_Strict):
    name: str = Field(min_length=1, description="Tool name, as the model would send it.")
    arguments: Annotated[dict[str, Any] | str, BeforeValidator(_mapping_or_text)] = Field(
        default_factory=dict,
        description="A mapping (sent as JSON with sorted keys) or a raw string (sent unparsed).",
    )
    id: str | None = Field(None, min_length=1, description="Call id; call_<turn>_<i> if absent.")


class ScriptError(_Strict):
    status: int | None = Field(None, ge=100, le=599, description="HTTP status to simulate.")
    timeout: bool = Field(False, description="Simulate a timeout instead of a status.")
    message: str | None = Field(None, description="Error message; a default names the status.")
    retry_after_s: float | None = Field(None, ge=0, description="Server's retry-after hint.")
    retryable: bool | None = Field(
        None, description="Override: by default 408/409/429/5xx and timeouts are retryable."
    )

    @model_validator(mode="after")
    def _status_or_timeout(self) -> Self:
        if (self.status is None) == (not self.timeout):
            raise ValueError("expected exactly one of `status: <code>` or `timeout: true`")
        return self


class ScriptUsage(_Strict):
    prompt_tokens: int | None = Field(None, ge=0, description="Estimated when absent.")
    completion_tokens: int | None = Field(None, ge=0, description="Estimated when absent.")


class ScriptTurn(_Strict):
    """One scripted model reply (or failed attempt)."""

    content: str | None = None
    tool_calls: list[ScriptToolCall] | None = None
    error: ScriptError | None = None
    usage: ScriptUsage | None = None
    finish_reason: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        has_reply = self.content is not None or self.tool_calls is not None
        if self.error is not None and (has_reply or self.usage or self.finish_reason):
            raise ValueError("an `error` turn cannot also have content, tool_calls or usage")
        if self.error is None and not has_reply:
            raise ValueError("expected `content`, `tool_calls` or `error`")
        return self


_SECTIONS: dict[str, type[BaseModel]] = {
    "tool_calls": ScriptToolCall,
    "error": ScriptError,
    "usage": ScriptUsage,
}


# --- the adapter -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A turn ready to answer: the reply minus what depends on the prompt, or an error."""

    reply: ModelReply | None
    prompt_tokens: int | None
    completion_tokens: int
    error: dict[str, Any] | None


class ScriptedModel(Model):
    """Answers each call with the next scripted turn; raises when the script runs out."""

    def __init__(
        self,
        turns: Sequence[ScriptTurn | Mapping[str, Any]],
        *,
        name: str = "scripted",
        source: str = "<turns>",
    ) -> None:
        self.name = name
        self.source = source
        validated = _validate(turns, source, parsed=None)
        self._turns = [_prepare(turn, index, name) for index, turn in enumerate(validated)]
        self._next = 0
        self._sizer = PromptSizer()

    @classmethod
    def from_file(cls, path: str | Path, *, name: str = "scripted") -> ScriptedModel:
        """Load and validate a YAML script; problems raise GovrunError naming file:line."""
        source = str(path)
        parsed = parse_yaml(read_text(path, SCRIPT), source, SCRIPT_DOCUMENT)
        turns = _validate(parsed.data if parsed else None, source, parsed=parsed)
        return cls(turns, name=name, source=source)

    def __repr__(self) -> str:
        return f"ScriptedModel(name={self.name!r}, source={self.source!r})"

    @property
    def remaining(self) -> int:
        """Turns not answered yet."""
        return len(self._turns) - self._next

    def skip(self, turns: int) -> None:
        """Move past ``turns`` answers: a forked run continues the script where the calls
        it replayed from a trace left off."""
        self._next = min(self._next + turns, len(self._turns))

    def reset(self) -> None:
        """Start again from the first turn (benchmarks reuse one model)."""
        self._next = 0

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
        if self._next >= len(self._turns):
            raise ModelCallError(
                f"scripted model: script exhausted after {len(self._turns)} turns; "
                "the agent asked for more",
                retryable=False,
            )
        turn = self._turns[self._next]
        self._next += 1
        if turn.error is not None:
            raise ModelCallError(**turn.error)
        assert turn.reply is not None
        if turn.prompt_tokens is not None:
            return turn.reply
        prompt = tokens(self._sizer.size(messages, tools))
        usage = Usage(
            prompt_tokens=prompt,
            completion_tokens=turn.completion_tokens,
            total_tokens=prompt + turn.completion_tokens,
        )
        return turn.reply.model_copy(update={"usage": usage})


def _prepare(turn: ScriptTurn, index: int, name: str) -> _Prepared:
    if turn.error is not None:
        return _Prepared(None, None, 0, _error_kwargs(turn.error))
    calls = [_call(call, index, i) for i, call in enumerate(turn.tool_calls or [])]
    text = (turn.content or "") + "".join(call.arguments for call in calls)
    usage = turn.usage or ScriptUsage()
    completion = usage.completion_tokens
    if completion is None:
        completion = tokens(len(text.encode()))
    reply = ModelReply(
        model=name,
        content=turn.content,
        tool_calls=calls,
        finish_reason=turn.finish_reason or ("tool_calls" if calls else "stop"),
        usage=Usage(
            prompt_tokens=usage.prompt_tokens or 0,
            completion_tokens=completion,
            total_tokens=(usage.prompt_tokens or 0) + completion,
        ),
    )
    return _Prepared(reply, usage.prompt_tokens, completion, None)


def _call(call: ScriptToolCall, turn: int, index: int) -> ToolCallRequest:
    arguments = call.arguments
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, sort_keys=True, ensure_ascii=False)
    call_id = call.id or f"call_{turn}_{index}"
    return ToolCallRequest(id=call_id, name=call.name, arguments=arguments)


def _error_kwargs(error: ScriptError) -> dict[str, Any]:
    if error.timeout:
        return {
            "message": error.message or "scripted timeout: no response",
            "retryable": True if error.retryable is None else error.retryable,
            "failure_class": "timeout",
        }
    status = error.status or 0
    retryable = status >= 500 or status in RETRYABLE_STATUSES
    return {
        "message": error.message or f"scripted error: HTTP {status}",
        "retryable": retryable if error.retryable is None else error.retryable,
        "status": status,
        "retry_after_s": error.retry_after_s,
    }


# --- loading and validation ---------------------------------------------------------------


def _validate(data: Any, source: str, *, parsed: ParsedYaml | None) -> list[ScriptTurn]:
    """Every problem at once, one line each: ``FILE:LINE:COL turns[2].error: ...``.
    ``parsed`` (a script read from a file) places them and adds the YAML reader's own."""
    if not isinstance(data, list | tuple) or not data:
        got = "nothing" if data is None else _show(data)
        raise GovrunError(
            f"{source}: expected a YAML list of at least one turn; got {got}", hint=_HINT
        )
    positions = parsed.source_map if parsed else None
    early = parsed.problems if parsed else []
    reported = {problem.path for problem in early}
    problems = [f"{source}:{p.line}:{p.col} {_path(p.path)}: {p.message}" for p in sorted(early)]
    turns: list[ScriptTurn] = []
    for index, item in enumerate(data):
        try:
            turns.append(ScriptTurn.model_validate(item))
        except ValidationError as exc:
            problems.extend(
                _problem(source, positions, index, error)
                for error in exc.errors()
                if (index, *error["loc"]) not in reported
            )
    if problems:
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        lines = "\n".join(f"  {p}" for p in problems)
        raise GovrunError(f"{source} is not a valid model script ({count}):\n{lines}", hint=_HINT)
    return turns


def _problem(source: str, positions: SourceMap | None, index: int, error: Any) -> str:
    loc = (index, *error["loc"])
    where = source
    if positions is not None:
        line, col = positions.locate(loc)
        where = f"{source}:{line}:{col}"
    return f"{where} {_path(loc)}: {_explain(error)}"


def _explain(error: Any) -> str:
    loc, kind = error["loc"], error["type"]
    if kind == "missing":
        return f"required key {loc[-1]!r} is missing"
    if kind == "extra_forbidden":
        return _unknown_key(str(loc[-1]), loc[:-1])
    if kind == "model_type":
        return f"expected a mapping; got {_show(error['input'])}"
    text = error["msg"].removeprefix("Value error, ")
    return text if kind == "value_error" else f"{text}; got {_show(error['input'])}"


def _unknown_key(key: str, parent: tuple[Any, ...]) -> str:
    section = next((p for p in reversed(parent) if isinstance(p, str)), None)
    allowed = list(_SECTIONS.get(section or "", ScriptTurn).model_fields)
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; expected one of {', '.join(allowed)}"
    return f"unknown key {key!r}{hint}"


def _path(loc: tuple[Any, ...]) -> str:
    return "turns" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def _show(value: Any, limit: int = 60) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = "null" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
