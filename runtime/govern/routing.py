"""Which named model handles a step: `routing:` rules over what the record already holds.

A rule looks only at the previous step's outcome, the step number and the prompt's size,
all pure functions of the run so far, so replay makes the same choices. When no rule
matches the default model answers: an escalated model that just had a successful step is
left, which is how de-escalation happens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from govrun.runtime.manifest.routing import Routing, RoutingRule


@dataclass
class StepOutcome:
    """What a step did, as routing sees it."""

    failures: set[str] = field(default_factory=set)
    """verification_failed, tool_error, policy_denied, approval_rejected."""
    tools: list[str] = field(default_factory=list)
    """Tools it called (proposed and allowed or not)."""


class Router:
    def __init__(self, routing: Routing) -> None:
        self.routing = routing

    def choose(
        self, step: int, previous: StepOutcome | None, prompt_tokens: Callable[[], int]
    ) -> tuple[str, str]:
        """The model for ``step`` and why (recorded in the `route` event)."""
        for rule in self.routing.rules:
            why = _holds(rule, step, previous, prompt_tokens)
            if why is not None:
                return rule.use, f"rule {rule.id}: {why}"
        if previous is not None and not previous.failures:
            return self.routing.default, f"default (step {step - 1} succeeded)"
        return self.routing.default, "default"


def _holds(
    rule: RoutingRule, step: int, previous: StepOutcome | None, prompt_tokens: Callable[[], int]
) -> str | None:
    """Why every condition of ``rule`` holds, or None when one does not."""
    why: list[str] = []
    if rule.after:
        seen = sorted(previous.failures.intersection(rule.after)) if previous else []
        if not seen:
            return None
        why.append(f"step {step - 1} had {', '.join(seen)}")
    if rule.after_tools:
        called = [
            t
            for t in (previous.tools if previous else [])
            if any(fnmatchcase(t, g) for g in rule.after_tools)
        ]
        if not called:
            return None
        why.append(f"step {step - 1} called {', '.join(dict.fromkeys(called))}")
    if rule.from_step is not None:
        if step < rule.from_step:
            return None
        why.append(f"step {step} ≥ {rule.from_step}")
    if rule.prompt_tokens_over is not None:
        tokens = prompt_tokens()
        if tokens <= rule.prompt_tokens_over:
            return None
        why.append(f"prompt ~{tokens:,} tokens > {rule.prompt_tokens_over:,}")
    return "; ".join(why)
