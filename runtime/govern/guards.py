"""Budgets and anomaly detectors: the declarative interrupts of a manifest.

Pure functions of the run's counters and the calls seen so far, so counterfactual replay
can re-evaluate them under a new manifest. A check returns a :class:`Trip` (or None); the
loop records it and pauses or stops.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

import orjson

from govrun.runtime.manifest.schema import Manifest, ToolSpec


@dataclass
class Counters:
    """What a run has used so far."""

    steps: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    per_tool: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    denials: int = 0
    approvals: int = 0
    per_model: dict[str, ModelUsage] = field(default_factory=dict)
    """Usage per name under `models:` (empty without routing)."""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class ModelUsage:
    """What one named model has used."""

    model_calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class Trip:
    """A budget or detector that fired."""

    kind: Literal["budget", "anomaly"]
    rule: str
    action: Literal["pause", "stop"]
    reason: str
    detail: dict[str, Any]

    @property
    def failure_class(self) -> str:
        return "budget_exceeded" if self.kind == "budget" else "anomaly"


def _budget(rule: str, limit: float, used: float, what: str) -> Trip:
    return Trip(
        "budget",
        rule,
        "stop",
        f"{what}: used {used:g} of {limit:g}",
        {"limit": limit, "used": used},
    )


class Guards:
    """Evaluates the manifest's budgets and interrupts at the loop's checkpoints."""

    def __init__(self, manifest: Manifest) -> None:
        self.budgets = manifest.budgets
        self.interrupts = manifest.interrupts
        self._specs = {t.name: t for t in manifest.tools}
        self._repeats: Counter[tuple[str, bytes | str]] = Counter()
        self._executed: list[str] = []

    def before_step(self, c: Counters) -> Trip | None:
        """Checked before a step begins (``c.steps`` is the number of steps already taken)."""
        b = self.budgets
        if c.steps >= b.max_steps:
            return _budget("max_steps", b.max_steps, c.steps, "step budget exhausted")
        return self._spend(c)

    def before_model_call(self, c: Counters, model: str | None = None) -> Trip | None:
        """``model``: the name under `models:` about to be called, for its own budget."""
        b = self.budgets
        if b.max_model_calls is not None and c.model_calls >= b.max_model_calls:
            return _budget(
                "max_model_calls", b.max_model_calls, c.model_calls, "model call budget exhausted"
            )
        limits = b.per_model.get(model) if model is not None else None
        if limits is not None:
            used = c.per_model.get(model) or ModelUsage()
            for key, value, what in (
                ("max_model_calls", used.model_calls, "model call"),
                ("max_tokens", used.tokens, "token"),
                ("max_cost_usd", round(used.cost_usd, 6), "cost"),
            ):
                limit = getattr(limits, key)
                if limit is not None and value >= limit:
                    return _budget(
                        f"per_model.{model}.{key}",
                        limit,
                        value,
                        f"{what} budget of {model} exhausted",
                    )
        return self._spend(c)

    def before_tool_call(self, c: Counters, tool: str) -> Trip | None:
        b = self.budgets
        if b.max_tool_calls is not None and c.tool_calls >= b.max_tool_calls:
            return _budget(
                "max_tool_calls", b.max_tool_calls, c.tool_calls, "tool call budget exhausted"
            )
        limit = b.max_tool_calls_per_tool.get(tool)
        if limit is not None and c.per_tool[tool] >= limit:
            return _budget(
                f"max_tool_calls_per_tool.{tool}",
                limit,
                c.per_tool[tool],
                f"call budget for {tool} exhausted",
            )
        return self._spend(c)

    def _spend(self, c: Counters) -> Trip | None:
        b = self.budgets
        if b.max_tokens is not None and c.tokens >= b.max_tokens:
            return _budget("max_tokens", b.max_tokens, c.tokens, "token budget exhausted")
        if b.max_cost_usd is not None and c.cost_usd >= b.max_cost_usd:
            return _budget(
                "max_cost_usd", b.max_cost_usd, round(c.cost_usd, 6), "cost budget exhausted"
            )
        if b.max_wall_time_s is not None and c.elapsed_s >= b.max_wall_time_s:
            return _budget(
                "max_wall_time_s",
                b.max_wall_time_s,
                round(c.elapsed_s, 3),
                "wall time budget exhausted",
            )
        return None

    def on_proposed(self, tool: str, arguments: Any, raw_size: int) -> Trip | None:
        """Anomalies visible in a proposed call, before policy lets it run: oversized
        arguments, the same call again and again, a forbidden order of tools."""
        i = self.interrupts
        if i.argument_size is not None and raw_size > i.argument_size.max_bytes:
            return Trip(
                "anomaly",
                "argument_size",
                i.argument_size.action,
                f"{tool} arguments are {raw_size} bytes; the limit is {i.argument_size.max_bytes}",
                {"bytes": raw_size, "limit": i.argument_size.max_bytes},
            )
        if i.repeat_call is not None:
            key = (tool, _canonical_text(arguments))
            self._repeats[key] += 1
            if self._repeats[key] >= i.repeat_call.max_repeats:
                return Trip(
                    "anomaly",
                    "repeat_call",
                    i.repeat_call.action,
                    f"{tool} was proposed {self._repeats[key]} times with the same arguments",
                    {"tool": tool, "count": self._repeats[key]},
                )
        for seq in i.forbidden_sequences:
            if self._completes(seq.sequence, tool):
                return Trip(
                    "anomaly",
                    f"forbidden_sequences.{seq.id}",
                    seq.action,
                    f"{' → '.join(seq.sequence)} is a forbidden sequence "
                    f"({tool} would complete it)",
                    {"sequence": list(seq.sequence), "tool": tool},
                )
        return None

    def on_executed(self, tool: str) -> None:
        self._executed.append(tool)

    def _completes(self, sequence: list[str], tool: str) -> bool:
        """Whether running ``tool`` now would complete ``sequence`` as a subsequence of
        the executed calls (not necessarily adjacent)."""
        if not self._matches(sequence[-1], tool):
            return False
        want = 0
        for done in self._executed:
            if want < len(sequence) - 1 and self._matches(sequence[want], done):
                want += 1
        return want == len(sequence) - 1

    def _matches(self, pattern: str, tool: str) -> bool:
        spec: ToolSpec | None = self._specs.get(tool)
        return spec.matches(pattern) if spec is not None else fnmatchcase(tool, pattern)


def _canonical_text(value: Any) -> bytes | str:
    """What makes two proposals the same call: canonical JSON bytes (repr for a value that
    is not JSON)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return repr(value)
