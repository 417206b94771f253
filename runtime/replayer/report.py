"""What a counterfactual replay changed: every call whose fate differs, in words.

A call's *fate* is what governance did with it — the policy effect and rule, the approval
decision, whether it ran and how its verification went. Two runs are compared call by call
(keyed by step and the model's call id, which come from the same recorded model replies),
plus the interrupts that fired and how each run ended. This is the report a team reads
before deploying a policy change: "step 4 fs_write: allowed → denied by rule
no-writes-outside-tmp".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CallFate:
    """What happened to one proposed call."""

    step: int
    call_id: str
    tool: str
    effect: str | None = None
    rule: str | None = None
    failure_class: str | None = None
    approval: str | None = None
    approver: str | None = None
    ran: bool = False
    ok: bool | None = None
    tool_failure: str | None = None
    failed_checks: tuple[str, ...] = ()

    @property
    def decision(self) -> tuple[Any, ...]:
        """What is compared: who decided is not (a replay re-signs as itself)."""
        return (
            self.effect,
            self.rule,
            self.failure_class,
            self.approval,
            self.ran,
            self.ok,
            self.failed_checks,
        )

    def describe(self) -> str:
        if self.effect is None:
            return "not reached"
        if self.effect == "deny":
            text = "denied " + (
                f"by rule {self.rule}"
                if self.rule
                else f"({self.failure_class})"
                if self.failure_class not in (None, "policy_denied")
                else "by default"
            )
            return text
        text = "allowed" + (f" by rule {self.rule}" if self.rule else "")
        if self.effect == "ask":
            text = "asked" + (f" by rule {self.rule}" if self.rule else "")
            if self.approval is not None:
                text += f", {_PAST.get(self.approval, self.approval)}"
                if self.approver:
                    text += f" by {self.approver}"
        if self.ran and self.ok is False:
            text += f", failed ({self.tool_failure or 'tool_error'})"
        elif self.failed_checks:
            text += f", verification failed ({', '.join(self.failed_checks)})"
        elif not self.ran and self.approval in (None, "approve"):
            text += ", not run"
        return text


_PAST = {"approve": "approved", "reject": "rejected", "stop": "stopped"}


@dataclass(frozen=True)
class Interruption:
    step: int
    kind: str
    rule: str
    action: str

    def describe(self) -> str:
        return f"{self.kind} {self.rule} → {self.action}"


@dataclass(frozen=True)
class RunEnd:
    status: str
    failure_class: str | None
    steps: int
    reason: str

    def describe(self) -> str:
        text = f"{self.status} after {self.steps} step{'s' if self.steps != 1 else ''}"
        return text + (f" ({self.failure_class})" if self.failure_class else "")


@dataclass(frozen=True)
class Change:
    """One decision that differs between the record and the replay."""

    step: int
    what: str
    """The call (``fs_write``) or ``interrupt`` / ``run``."""
    before: str
    after: str
    call_id: str | None = None

    def describe(self) -> str:
        where = f"step {self.step} " if self.step else ""
        return f"{where}{self.what}: {self.before} → {self.after}"


@dataclass(frozen=True)
class Trajectory:
    """The fates of one run."""

    calls: dict[tuple[int, str], CallFate]
    interrupts: list[Interruption]
    end: RunEnd | None
    models: dict[int, str]
    """step -> the name under `models:` that answered it (runs with `routing:`)."""


def fold(events: Iterable[dict[str, Any]]) -> Trajectory:
    """Fates of every call, the interrupts and the end of a run, from its stored events."""
    calls: dict[tuple[int, str], dict[str, Any]] = {}
    interrupts: list[Interruption] = []
    end: RunEnd | None = None
    routes: dict[int, str] = {}
    last_step = 0
    paused = False
    for e in events:
        kind, step = e["type"], e["step"]
        last_step = max(last_step, step)
        cid = e.get("call_id")
        fate = calls.setdefault((step, cid), {"step": step, "call_id": cid}) if cid else None
        if kind == "tool_call" and fate is not None:
            decision = e.get("decision") or {}
            fate.update(
                tool=e.get("tool", ""),
                effect=decision.get("effect"),
                rule=decision.get("rule"),
                failure_class=decision.get("failure_class"),
            )
        elif kind == "tool_call_proposed" and fate is not None:
            fate["tool"] = e.get("tool", "")
        elif kind == "policy_decision" and fate is not None:
            fate.update(
                effect=e.get("effect"), rule=e.get("rule"), failure_class=e.get("failure_class")
            )
        elif kind == "approval_decided" and fate is not None:
            fate.update(approval=e.get("decision"), approver=e.get("approver"))
        elif kind == "tool_finished" and fate is not None:
            fate.update(ran=True, ok=e.get("ok"), tool_failure=e.get("failure_class"))
        elif kind == "verification" and fate is not None and e.get("failure_class"):
            fate["failed_checks"] = (
                *fate.get("failed_checks", ()),
                e.get("check_id") or e["check"],
            )
        elif kind == "interrupt" and not (paused and e.get("kind") == "operator"):
            interrupts.append(Interruption(step, e["kind"], e["rule"], e["action"]))
        elif kind == "route":
            routes[step] = e.get("model", "")
        elif kind == "run_finished":
            end = RunEnd(
                e["status"], e.get("failure_class"), e.get("steps", 0), e.get("reason", "")
            )
        paused = kind == "interrupt" and e.get("action") == "pause"
    models: dict[int, str] = {}
    current = ""
    for step in range(1, last_step + 1):  # a route holds until the next one
        current = routes.get(step, current)
        if current:
            models[step] = current
    return Trajectory(
        {key: CallFate(**{"tool": "", **fate}) for key, fate in calls.items()},
        interrupts,
        end,
        models,
    )


def changes(recorded: Trajectory, replayed: Trajectory) -> list[Change]:
    """Every call whose fate differs, then interrupts that fire in only one run, then the
    end of the run if it differs; in step order."""
    out: list[Change] = []
    for key in sorted(recorded.calls.keys() | replayed.calls.keys()):
        a, b = recorded.calls.get(key), replayed.calls.get(key)
        if a is not None and b is not None and a.decision == b.decision:
            continue
        some = a or b
        assert some is not None
        out.append(
            Change(
                step=key[0],
                what=some.tool,
                before=a.describe() if a else "not reached",
                after=b.describe() if b else "not reached",
                call_id=key[1],
            )
        )
    for step in sorted(recorded.models.keys() & replayed.models.keys()):
        if recorded.models[step] != replayed.models[step]:
            out.append(Change(step, "model", recorded.models[step], replayed.models[step]))
    before, after = set(recorded.interrupts), set(replayed.interrupts)
    for i in sorted(before ^ after, key=lambda i: (i.step, i.rule)):
        fired = "fires" if i in after else "no longer fires"
        out.append(Change(i.step, "interrupt", i.describe(), fired))
    if recorded.end != replayed.end and (recorded.end or replayed.end):
        out.append(
            Change(
                0,
                "run",
                recorded.end.describe() if recorded.end else "unfinished",
                replayed.end.describe() if replayed.end else "unfinished",
            )
        )
    out.sort(key=lambda c: (c.step == 0, c.step))
    return out
