"""The decision a proposed call gets before anything runs: validation, the canonical call
(scope), policy on that canonical call, then the tool's own approval setting.

One function for the loop, ``govrun policy explain`` and counterfactual replay, so what a
user tests is exactly what a run does. Scope comes before the rules: a call outside its
tool's scope is never allowed, whatever the rules say. A tool declared ``approval: always``
sends every call the policy allows to the approval gate (``ask``, rule ``tool-approval``);
it never turns a denial into a question. An MCP tool whose definition differs from its pin
(rule ``mcp-pin``) is denied before policy, or — with ``on_change: ask`` — asked about
unless policy denies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from govrun.runtime.govern.policy import PolicyEngine
from govrun.runtime.govern.toolbox import PreparedCall, RejectedCall
from govrun.runtime.ports import ToolCallRequest

SCOPE_RULE = "scope"
"""Rule id recorded when a tool's own scope denied the call."""

PIN_RULE = "mcp-pin"
"""Rule id recorded when an MCP tool's definition differs from its pin (`on_change`)."""

TOOL_APPROVAL_RULE = "tool-approval"
"""Rule id recorded when an allowed call goes to the gate because its tool says
``approval: always``."""


@dataclass(slots=True)  # built per call: frozen dataclasses cost ~1 µs each
class Verdict:
    """allow, deny or ask, with the rule that decided and the failure class of a denial."""

    call: PreparedCall | RejectedCall
    effect: str
    rule: str | None
    reason: str
    failure_class: str | None
    risk: str | None


class Preparer(Protocol):
    """Turns a proposed call into the canonical call its tool would execute (or a
    classified rejection): a :class:`~govrun.runtime.govern.toolbox.Toolbox` live; in replay, the
    record answers, since a canonical path depends on the filesystem the run saw."""

    def prepare(self, step: int, request: ToolCallRequest) -> PreparedCall | RejectedCall: ...


def decide_call(
    preparer: Preparer, policy: PolicyEngine, step: int, request: ToolCallRequest
) -> Verdict:
    call = preparer.prepare(step, request)
    if isinstance(call, RejectedCall):
        return Verdict(call, "deny", None, call.reason, call.failure_class, None)
    if call.scope_error is not None:
        denial = call.scope_error
        return Verdict(call, "deny", SCOPE_RULE, denial.message, denial.failure_class, call.risk)
    changed: str | None = getattr(call.tool, "pin_change", None)
    if changed is not None and getattr(call.tool, "on_change", "deny") == "deny":
        reason = f"{changed}; its calls are denied until it is reviewed and pinned again"
        return Verdict(call, "deny", PIN_RULE, reason, "policy_denied", call.risk)
    d = policy.decide(call.name, call.arguments)
    if changed is not None and d.effect != "deny":
        reason = f"{changed}; a person decides whether to call it anyway"
        return Verdict(call, "ask", PIN_RULE, reason, None, call.risk)
    if d.effect == "allow" and call.spec.approval == "always":
        reason = f"tool {call.name} requires approval (approval: always)"
        return Verdict(call, "ask", TOOL_APPROVAL_RULE, reason, None, call.risk)
    failure = "policy_denied" if d.effect == "deny" else None
    return Verdict(call, d.effect, d.rule, d.reason, failure, call.risk)
