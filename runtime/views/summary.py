"""A run's one-screen summary, computed from its events.

Computed from the events themselves rather than trusting ``run_finished`` totals, so it
works the same on a torn or unfinished trace (a crash) as on a complete one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from govrun.runtime.trace.events import (
    ApprovalDecided,
    CallDecision,
    Compaction,
    Event,
    Interrupt,
    ModelRequest,
    ModelResponse,
    PolicyDecision,
    ReplyRefused,
    Route,
    RunFinished,
    RunStarted,
    StepStarted,
    ToolCall,
    ToolFinished,
    Verification,
)
from govrun.runtime.trace.reader import TornTail


@dataclass(frozen=True)
class Denial:
    step: int
    tool: str
    rule: str | None
    reason: str


@dataclass
class RunSummary:
    """What ``govrun show`` prints."""

    agent: str = "?"
    run_id: str = "?"
    input: str = ""
    workspace: str | None = None
    """The folder holding the run's copy of its workspace template, if it had one."""
    status: str = "unfinished"
    failure_class: str | None = None
    reason: str = ""
    started: str = ""
    ended: str = ""
    steps: int = 0
    events: int = 0
    model_calls: int = 0
    model_errors: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    approvals: Counter[str] = field(default_factory=Counter)
    denials: list[Denial] = field(default_factory=list)
    interrupts: list[str] = field(default_factory=list)
    verifications_failed: int = 0
    verifications_passed: int = 0
    tools_used: Counter[str] = field(default_factory=Counter)
    final_answer: str | None = None
    head: str = ""
    torn: TornTail | None = None
    routes: list[str] = field(default_factory=list)
    """Model changes: "step 2 → strong (rule escalate: …)"."""
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Usage per name under `models:` (from run_finished)."""
    compactions: list[str] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    """Replies that were no answer, by kind (length, empty, text_tool_call, …)."""
    estimated: bool = False
    """Some reply reported no usage: the token counts include govrun's estimate."""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def duration_s(self) -> float | None:
        try:
            start = datetime.fromisoformat(self.started.replace("Z", "+00:00"))
            end = datetime.fromisoformat(self.ended.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (end - start).total_seconds()


def summarize(events: list[Event], torn: TornTail | None = None) -> RunSummary:
    """Fold a trace's events into a :class:`RunSummary`."""
    s = RunSummary(torn=torn, events=len(events))
    if events:
        s.started, s.ended, s.head = events[0].ts, events[-1].ts, events[-1].hash
        s.run_id = events[0].run_id
    for e in events:
        _fold(s, e)
    return s


def _fold(s: RunSummary, e: Event) -> None:
    match e:
        case RunStarted():
            s.agent, s.input, s.workspace = e.agent, e.input, e.workspace
        case StepStarted():
            s.steps = max(s.steps, e.step)
        case ModelRequest():  # schema 2 has no step_started: a step begins with its request
            s.steps = max(s.steps, e.step)
        case ModelResponse():
            s.model_calls += 1
            if e.error:
                s.model_errors += 1
            s.estimated = s.estimated or bool(e.estimated_usage)
            s.prompt_tokens += e.usage.get("prompt_tokens", 0)
            s.completion_tokens += e.usage.get("completion_tokens", 0)
            s.cost_usd += e.cost_usd
        case ReplyRefused():
            s.refused[e.kind] += 1
        case PolicyDecision(effect="deny"):
            s.denials.append(Denial(e.step, e.tool, e.rule, e.reason))
        case ToolCall(decision=CallDecision(effect="deny") as d):
            s.denials.append(Denial(e.step, e.tool, d.rule, d.reason))
        case ApprovalDecided():
            s.approvals[f"{e.decision} ({e.via})"] += 1
        case ToolFinished():
            s.tool_calls += 1
            s.tools_used[e.tool] += 1
            if not e.ok:
                s.tool_errors += 1
        case Verification():
            if e.passed:
                s.verifications_passed += 1
            else:
                s.verifications_failed += 1
        case Interrupt():
            s.interrupts.append(f"step {e.step}: {e.rule} → {e.action} ({e.reason})")
        case Route():
            s.routes.append(f"step {e.step} → {e.model} ({e.reason})")
        case Compaction():
            s.compactions.append(
                f"step {e.step}: {e.strategy}, ~{e.tokens_before:,} → ~{e.tokens_after:,} tokens"
            )
        case RunFinished():
            s.models = dict(e.totals.get("models") or {})
            s.status, s.failure_class, s.reason = e.status, e.failure_class, e.reason
            s.final_answer = e.final_answer
            s.steps = max(s.steps, e.steps)
