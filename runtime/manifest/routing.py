"""Manifest sections for several models: `routing:` picks one per step, `compaction:` keeps
the prompt under a size. Both are decided by the loop from the record alone (the previous
step's outcome, the step number, the prompt's estimated size), so replay reproduces them."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from govrun.runtime.manifest.fields import (
    Identifier,
    PositiveInt,
    PositiveNumber,
    Section,
    Text,
    TextList,
)
from govrun.runtime.manifest.problems import fail_if

StepFailure = Literal[
    "verification_failed", "tool_error", "policy_denied", "approval_rejected", "model_error"
]


class RoutingRule(Section):
    """Use model `use` for a step when every condition given holds (first rule wins)."""

    id: Identifier = Field(description="Rule id, recorded in the `route` event's reason.")
    use: Identifier = Field(description="A name under `models:`.")
    after: list[StepFailure] = Field(
        default_factory=list,
        description="The previous step had one of these: verification_failed, tool_error, "
        "policy_denied, approval_rejected, model_error (a reply that was no answer: "
        "escalate after a failure).",
    )
    after_tools: TextList = Field(
        default_factory=list,
        description="The previous step called one of these tools (names or globs).",
    )
    from_step: PositiveInt | None = Field(None, description="This step number or later.")
    prompt_tokens_over: PositiveInt | None = Field(
        None,
        description="The prompt's estimated size exceeds this many tokens "
        "(`compaction.bytes_per_token`, default 4 bytes of canonical JSON per token).",
    )

    @model_validator(mode="after")
    def _has_a_condition(self) -> Self:
        if not (self.after or self.after_tools or self.from_step or self.prompt_tokens_over):
            fail_if(
                {
                    (): "expected at least one condition (after, after_tools, from_step, "
                    "prompt_tokens_over); for the model used when no rule matches, set "
                    "`routing.default`"
                }
            )
        return self


class Routing(Section):
    """Which named model handles each step. Evaluated before every step; when no rule
    matches, the default — so a step that succeeded on an escalated model de-escalates."""

    default: Identifier = Field(description="The model for steps no rule claims.")
    rules: list[RoutingRule] = Field(default_factory=list, description="First match wins.")


class Compaction(Section):
    """Keep the prompt under a size: the system prompt, the task and the last turns stay;
    older turns are replaced by a truncation summary or a model-written one."""

    max_context_tokens: PositiveInt = Field(
        description="Compact when the estimated prompt exceeds this many tokens."
    )
    keep_last_turns: PositiveInt = Field(
        4, description="Turns (an assistant message and its tool results) kept verbatim."
    )
    strategy: Literal["truncate", "summarize"] = Field(
        "truncate",
        description="truncate: older turns become one line each, tool outputs elided with "
        "their sha256; summarize: a model writes the summary (recorded, so replay reuses it).",
    )
    bytes_per_token: PositiveNumber = Field(
        4.0, description="Tokenizer estimate: bytes of canonical JSON prompt per token."
    )
    summary_model: Identifier | None = Field(
        None, description="summarize: a name under `models:` (default: the step's model)."
    )
    summary_instructions: Text = Field(
        "Summarise the earlier part of this agent run for the agent itself: what was asked, "
        "what was done, what was found, and what is still open. Be brief and factual.",
        description="summarize: the instructions the summary model gets.",
    )


class ModelBudget(Section):
    """Limits for one named model; reaching one stops the run with `budget_exceeded`."""

    max_model_calls: PositiveInt | None = Field(None, description="Most requests to it.")
    max_tokens: PositiveInt | None = Field(None, description="Most tokens through it.")
    max_cost_usd: PositiveNumber | None = Field(None, description="Most USD spent on it.")
