"""What each detail tab says about a step: pure functions from typed events to sections.

A section is one event (or one fact about the step): a one-line title and an optional body.
The detail pane draws the sections of the active tab and highlights the selected event's,
so stepping event by event reads like stepping through a debugger. Long values are clipped
here, never in the trace: the Raw tab shows the stored JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from govrun.cli.inspect.palette import Palette
from govrun.runtime.trace import events as ev

if TYPE_CHECKING:
    from govrun.runtime.trace.audit import ApprovalCheck
    from govrun.runtime.trace.verify import VerifyReport

TABS: tuple[tuple[str, str], ...] = (
    ("prompt", "Prompt"),
    ("reply", "Reply"),
    ("tools", "Tools"),
    ("policy", "Policy"),
    ("approval", "Approval"),
    ("checks", "Checks"),
    ("raw", "Raw"),
)
"""Tab id and label, in order (keys 1-7)."""

HOME_TAB: dict[str, str] = {
    "run_started": "prompt",
    "model_request": "prompt",
    "compaction": "prompt",
    "model_response": "reply",
    "reply_refused": "reply",
    "text_tool_calls": "reply",
    "route": "reply",
    "tool_call": "tools",
    "tool_call_proposed": "tools",
    "tool_started": "tools",
    "tool_finished": "tools",
    "rollback": "tools",
    "policy_decision": "policy",
    "interrupt": "policy",
    "approval_requested": "approval",
    "approval_decided": "approval",
    "verification": "checks",
}
"""The tab that shows an event type best. Stepping onto an event opens its tab; lifecycle
events (step_started, step_finished, run_finished) keep the tab the user is on."""

TEXT_CLIP = 4000
"""Characters shown of one text value (a message, an output)."""
JSON_CLIP = 20_000
"""Characters shown of one raw event."""


@dataclass(frozen=True, slots=True)
class Section:
    seq: int | None
    """The event it shows; None for a note about the whole step."""
    title: Text
    body: RenderableType | None = None


@dataclass(frozen=True)
class Signatures:
    """The approval audit, indexed for the Approval tab (computed in a worker thread, and
    again once the trace has grown)."""

    checks: dict[int, ApprovalCheck] = field(default_factory=dict)
    violations: dict[int, list[str]] = field(default_factory=dict)
    summary: str = ""

    @classmethod
    def of(cls, report: VerifyReport) -> Signatures:
        chain = (
            "chain intact"
            if report.intact
            else f"chain broken: {report.problem.message if report.problem else '?'}"
        )
        audit = report.approvals
        if audit is None:
            return cls(summary=f"{chain}; no approvals or seal to audit")
        violations: dict[int, list[str]] = {}
        for v in audit.violations:
            violations.setdefault(v.seq, []).append(v.message)
        seal = {"pinned": "sealed (pinned key)", "unpinned": "sealed (key not pinned)"}.get(
            audit.seal, f"seal {audit.seal}"
        )
        return cls(
            {a.seq: a for a in audit.approvals},
            violations,
            f"{chain}; {seal}; {len(audit.violations)} violation(s)",
        )


@dataclass(frozen=True)
class Step:
    """A row's events, typed (blobs inlined) and as stored, for the tabs to draw."""

    row: int
    events: tuple[tuple[int, ev.Event | None], ...]
    """(seq, event); None when the event could not be read."""
    stored: Callable[[int], dict[str, Any]]
    """The event as stored (for the Raw tab)."""
    problems: dict[int, str] = field(default_factory=dict)
    """seq -> why the event could not be read."""
    omitted: int = 0
    """Events of a very large step left out around the selection."""


Builder = Callable[[Step, Palette, Signatures | None], list[Section]]


def build(tab: str, step: Step, p: Palette, signatures: Signatures | None) -> list[Section]:
    """The sections of one tab for one step."""
    sections = _BUILDERS[tab](step, p, signatures)
    if step.omitted:
        note = f"{step.omitted:,} more events of this step are not shown; n/p reach them"
        sections.append(Section(None, Text(note, p.muted)))
    return sections or [Section(None, Text(_EMPTY[tab].format(step=_step_name(step)), p.muted))]


_EMPTY = {
    "prompt": "No model request in {step}.",
    "reply": "No model response in {step}.",
    "tools": "No tool call in {step}.",
    "policy": "No policy decision or interrupt in {step}.",
    "approval": "Nothing went to the approval gate in {step}.",
    "checks": "No verification in {step}.",
    "raw": "No events.",
}


def _step_name(step: Step) -> str:
    return "row 0 (before the first step)" if step.row == 0 else f"step {step.row}"


# --- building blocks ------------------------------------------------------------------------


def title(seq: int, kind: str, p: Palette, *rest: tuple[str, str]) -> Text:
    """``#seq kind · rest…``, each part of ``rest`` a (text, ink) pair."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"#{seq} ", p.muted)
    text.append(kind, p.heading)
    for part, ink in rest:
        if part:
            text.append(" · ", p.muted)
            text.append(part, p.ink(ink))
    return text


def grid(p: Palette, *rows: tuple[str, RenderableType | str | None]) -> Table:
    """Key/value rows; rows whose value is None or empty are left out."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style=p.key, no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        if value is None or value == "":
            continue
        table.add_row(key, value if not isinstance(value, str) else Text(value, p.base))
    return table


def clipped(value: Any, p: Palette, limit: int = TEXT_CLIP) -> Text:
    """A text value, clipped with a note saying how much was left out."""
    text = (value if isinstance(value, str) else compact_json(value)).rstrip()
    shown = Text(text[:limit], p.base)
    if len(text) > limit:
        shown.append(f"… (+{len(text) - limit:,} chars; the Raw tab holds all)", p.muted)
    return shown


def compact_json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


def pretty_json(value: Any, p: Palette, limit: int = TEXT_CLIP) -> Text:
    try:
        text = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        text = repr(value)
    return clipped(text, p, limit)


def _events(step: Step, *types: type[ev.Event]) -> list[tuple[int, Any]]:
    return [(seq, e) for seq, e in step.events if e is not None and isinstance(e, types)]


def _ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.1f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


# --- prompt ---------------------------------------------------------------------------------


def _prompt(step: Step, p: Palette, _: Signatures | None) -> list[Section]:
    sections: list[Section] = []
    for seq, e in _events(step, ev.RunStarted, ev.ModelRequest, ev.Compaction):
        if isinstance(e, ev.RunStarted):
            sections.append(_run_started(seq, e, p))
        elif isinstance(e, ev.ModelRequest):
            head = title(
                seq,
                "model_request",
                p,
                (e.model, "accent"),
                (f"{len(e.messages_added)} added, {e.message_count} in the prompt", "base"),
                (f"attempt {e.attempt}" if e.attempt > 1 else "", "warning"),
            )
            parts: list[RenderableType] = [_message(m, p) for m in e.messages_added]
            parts.append(Text(f"prompt hash {e.prompt_hash[:16]}…", p.muted))
            sections.append(Section(seq, head, Group(*parts)))
        else:
            head = title(seq, "compaction", p, (e.strategy, "accent"))
            body = grid(
                p,
                ("tokens", f"{e.tokens_before:,} → {e.tokens_after:,}"),
                ("removed", f"{e.messages_removed} messages"),
                ("summary", clipped(e.summary, p) if e.summary else None),
            )
            sections.append(Section(seq, head, body))
    return sections


def _run_started(seq: int, e: ev.RunStarted, p: Palette) -> Section:
    m = e.manifest
    model = m.get("model") if isinstance(m.get("model"), dict) else {}
    tools = [t.get("name", "?") for t in m.get("tools") or [] if isinstance(t, dict)]
    parent = e.parent or {}
    body = grid(
        p,
        ("task", clipped(e.input, p)),
        ("agent", e.agent),
        ("model", f"{model.get('provider', '?')}:{model.get('name') or '-'}"),
        ("tools", ", ".join(tools) or "none"),
        ("system", clipped(m.get("system") or "", p, 600) if m.get("system") else None),
        ("manifest", e.manifest_path or ""),
        ("by", "@".join(x for x in (e.user, e.host) if x)),
        ("govrun", e.govrun_version),
        ("parent", f"{parent.get('kind', '')} of {parent.get('trace', '?')}" if parent else None),
        (
            "hashes",
            Text(f"manifest {e.manifest_hash[:16]}… policy {(e.policy_hash or '')[:16]}…", p.muted),
        ),
    )
    return Section(seq, title(seq, "run_started", p, (e.agent, "accent")), body)


def _message(message: dict[str, Any], p: Palette) -> RenderableType:
    role = str(message.get("role", "?"))
    head = Text(role, p.key)
    if message.get("tool_call_id"):
        head.append(f" (result of {message['tool_call_id']})", p.muted)
    parts: list[RenderableType] = [head]
    content = message.get("content")
    if content:
        parts.append(clipped(content, p))
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict):
            fn = call.get("function") if isinstance(call.get("function"), dict) else call
            parts.append(Text(f"→ {fn.get('name')}({_args(fn.get('arguments'))})", p.accent))
    return Group(*parts)


def _args(raw: Any) -> str:
    text = raw if isinstance(raw, str) else compact_json(raw)
    return text if len(text) <= 400 else text[:399] + "…"


# --- reply ----------------------------------------------------------------------------------


def _reply(step: Step, p: Palette, _: Signatures | None) -> list[Section]:
    sections: list[Section] = []
    for seq, e in _events(step, ev.ModelResponse, ev.Route, ev.ReplyRefused, ev.TextToolCalls):
        if isinstance(e, ev.Route):
            head = title(seq, "route", p, (f"{e.previous or '-'} → {e.model}", "accent"))
            sections.append(Section(seq, head, grid(p, ("reason", e.reason))))
            continue
        if isinstance(e, ev.ReplyRefused):
            head = title(
                seq,
                "reply_refused",
                p,
                (e.kind, "error"),
                (f"{e.in_a_row} of {e.limit} in a row", "muted"),
                (e.failure_class, "error"),
            )
            calls = (e.detected or {}).get("calls") or []
            found = ", ".join(f"{c.get('name')}({_args(c.get('arguments'))})" for c in calls)
            body = grid(
                p,
                ("told", clipped(e.reason, p)),
                ("found", f"{(e.detected or {}).get('format')}: {found}" if calls else None),
            )
            sections.append(Section(seq, head, body))
            continue
        if isinstance(e, ev.TextToolCalls):
            head = title(seq, "text_tool_calls", p, (e.format, "accent"))
            parts = [
                Text(f"→ {c.get('name')}({_args(c.get('arguments'))}) {c.get('id')}", p.accent)
                for c in e.calls
            ]
            sections.append(Section(seq, head, Group(*parts) if parts else None))
            continue
        tokens = e.usage.get("total_tokens") or sum(
            e.usage.get(k, 0) for k in ("prompt_tokens", "completion_tokens")
        )
        head = title(
            seq,
            "model_response",
            p,
            (e.model, "accent"),
            (
                f"error ({e.failure_class})" if e.error else e.finish_reason or "",
                "error" if e.error else "base",
            ),
            (f"{tokens:,} tokens" if tokens else "", "muted"),
            (f"${e.cost_usd:.4f}" if e.cost_usd else "", "muted"),
            (_ms(e.duration_ms), "muted"),
        )
        parts: list[RenderableType] = []
        if e.error:
            retry = " (retryable)" if e.retryable else ""
            parts.append(Text(f"{e.error}{retry}", p.error))
        if e.content:
            parts.append(clipped(e.content, p))
        for call in e.tool_calls:
            parts.append(Text(f"→ {call.get('name')}({_args(call.get('arguments'))})", p.accent))
        if e.usage:
            usage = ", ".join(f"{k} {v:,}" for k, v in sorted(e.usage.items()))
            parts.append(Text(usage, p.muted))
        sections.append(Section(seq, head, Group(*parts) if parts else None))
    return sections


# --- tools ----------------------------------------------------------------------------------


def _tools(step: Step, p: Palette, _: Signatures | None) -> list[Section]:
    sections: list[Section] = []
    kinds = (ev.ToolCall, ev.ToolCallProposed, ev.ToolStarted, ev.ToolFinished, ev.Rollback)
    tools: dict[str, str] = {}
    for seq, e in _events(step, *kinds):
        if isinstance(e, ev.ToolCall | ev.ToolCallProposed):
            tools[e.call_id] = e.tool
            label, verdict = "proposed", []  # schema 1: the decision is its own event
            if isinstance(e, ev.ToolCall):
                label, verdict = "call", [(e.decision.effect, _EFFECT_INK[e.decision.effect])]
            head = title(seq, label, p, (e.tool, "accent"), *verdict, (e.call_id, "muted"))
            if e.arguments is not None and e.canonical is not None:
                body: RenderableType = grid(
                    p,
                    ("as sent", pretty_json(e.arguments, p)),
                    ("as it runs", pretty_json(e.canonical, p)),
                )
            elif e.arguments is not None:
                body = pretty_json(e.arguments, p)
            else:
                body = Text(f"arguments did not parse: {e.raw_arguments!r}", p.error)
            sections.append(Section(seq, head, body))
        elif isinstance(e, ev.ToolStarted):
            note = ("on disk before the call ran (write-ahead)", "muted")
            tool = e.tool or tools.get(e.call_id, e.call_id)
            sections.append(Section(seq, title(seq, "started", p, (tool, "accent"), note)))
        elif isinstance(e, ev.ToolFinished):
            verdict = ("✓ ok", "ok") if e.ok else (f"✗ failed ({e.failure_class})", "error")
            head = title(
                seq, "finished", p, (e.tool, "accent"), verdict, (_ms(e.duration_ms), "muted")
            )
            body = grid(
                p,
                ("output", clipped(e.output, p) if e.output else None),
                ("error", Text(e.error, p.error) if e.error else None),
                ("evidence", pretty_json(e.evidence, p, 1500) if e.evidence else None),
                ("data", pretty_json(e.data, p, 1500) if e.data else None),
            )
            sections.append(Section(seq, head, body))
        else:
            verdict = ("undone", "ok") if e.ok else ("refused", "error")
            head = title(seq, "rollback", p, (e.target, "accent"), verdict)
            sections.append(Section(seq, head, grid(p, ("reason", e.reason))))
    return sections


# --- policy ---------------------------------------------------------------------------------

_EFFECT_INK = {"allow": "ok", "deny": "error", "ask": "warning"}


def _policy(step: Step, p: Palette, _: Signatures | None) -> list[Section]:
    sections: list[Section] = []
    for seq, e in _events(step, ev.RunStarted, ev.ToolCall, ev.PolicyDecision, ev.Interrupt):
        if isinstance(e, ev.RunStarted):
            sections.append(_policy_in_force(seq, e, p))
        elif isinstance(e, ev.ToolCall | ev.PolicyDecision):
            d = e.decision if isinstance(e, ev.ToolCall) else e
            rule = f"rule {d.rule}" if d.rule else "default"
            head = title(
                seq,
                "policy",
                p,
                (e.tool, "accent"),
                (d.effect, _EFFECT_INK[d.effect]),
                (rule, "base"),
            )
            body = grid(
                p,
                ("reason", d.reason),
                ("risk", d.risk or ""),
                ("failure", Text(d.failure_class, p.error) if d.failure_class else None),
                ("call", Text(e.call_id, p.muted)),
            )
            sections.append(Section(seq, head, body))
        else:
            ink = "error" if e.action == "stop" else "warning" if e.action == "pause" else "ok"
            head = title(seq, "interrupt", p, (f"{e.kind} {e.rule}", "accent"), (e.action, ink))
            body = grid(
                p,
                ("reason", e.reason),
                ("by", e.by or ""),
                ("failure", Text(e.failure_class, p.error) if e.failure_class else None),
                ("detail", pretty_json(e.detail, p, 1500) if e.detail else None),
            )
            sections.append(Section(seq, head, body))
    return sections


def _policy_in_force(seq: int, e: ev.RunStarted, p: Palette) -> Section:
    policy = e.manifest.get("policy") if isinstance(e.manifest.get("policy"), dict) else {}
    rules = [r for r in policy.get("rules") or [] if isinstance(r, dict)]
    table = Table.grid(padding=(0, 1))
    table.add_column(style=p.key, no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for rule in rules:
        effect = str(rule.get("effect", "?"))
        when = compact_json(rule["when"]) if rule.get("when") else ""
        tools = ",".join(str(t) for t in rule.get("tools") or ["*"])
        table.add_row(
            str(rule.get("id", "?")),
            Text(effect, p.ink(_EFFECT_INK.get(effect, "base"))),
            f"{tools} {when}",
        )
    default = str(policy.get("default", "deny"))
    head = title(
        seq,
        "policy in force",
        p,
        (f"default {default}", _EFFECT_INK.get(default, "base")),
        (f"{len(rules)} rules", "muted"),
    )
    return Section(seq, head, table)


# --- approval -------------------------------------------------------------------------------

_STATUS_WORDS = {
    "pinned": ("✓ valid, signed by {owner}", "ok"),
    "unpinned": ("✓ valid; key not pinned: proves integrity, not identity", "ok"),
    "untrusted": ("✗ signed by a key that is not trusted", "error"),
    "invalid": ("✗ the signature does not verify", "error"),
    "unsigned": ("✗ unsigned", "error"),
}


def _approval(step: Step, p: Palette, signatures: Signatures | None) -> list[Section]:
    sections: list[Section] = []
    for seq, e in _events(step, ev.ApprovalRequested, ev.ApprovalDecided):
        if isinstance(e, ev.ApprovalRequested):
            timeout = f"times out in {e.timeout_s:g}s" if e.timeout_s else ""
            head = title(
                seq,
                "approval requested",
                p,
                (e.tool, "accent"),
                (f"risk {e.risk}" if e.risk else "", "warning"),
                (timeout, "muted"),
            )
            body = grid(
                p,
                ("rule", e.rule or ""),
                ("call", Text(f"{e.call_id} · {e.call_hash[:16]}…", p.muted)),
            )
            sections.append(Section(seq, head, body))
            continue
        ink = "ok" if e.decision == "approve" else "error"
        head = title(
            seq,
            "approval",
            p,
            (e.tool, "accent"),
            (e.decision, ink),
        )
        body = grid(
            p,
            ("by", f"{e.approver} via {e.via}"),
            ("reason", e.reason),
            ("decided", e.decided_at),
            ("signature", _signature(seq, p, signatures)),
            ("key", Text(f"{e.key_fingerprint or '-'} ({e.key_source or 'no key'})", p.muted)),
            ("call", Text(f"{e.call_id} · {e.call_hash[:16]}…", p.muted)),
        )
        sections.append(Section(seq, head, body))
    if sections and signatures is not None and signatures.summary:
        sections.append(Section(None, Text(f"trace: {signatures.summary}", p.muted)))
    return sections


def _signature(seq: int, p: Palette, signatures: Signatures | None) -> Text:
    if signatures is None:
        return Text("checking…", p.muted)
    check = signatures.checks.get(seq)
    if check is None:
        return Text("not checked yet", p.muted)  # the audit ran before this event was read
    words, ink = _STATUS_WORDS.get(check.status, (check.status, "warning"))
    text = Text(words.format(owner=check.owner or "?"), p.ink(ink))
    for message in signatures.violations.get(seq, []):
        text.append(f"\n✗ {message}", p.error)
    return text


# --- checks ---------------------------------------------------------------------------------


def _checks(step: Step, p: Palette, _: Signatures | None) -> list[Section]:
    sections: list[Section] = []
    for seq, e in _events(step, ev.Verification):
        verdict = ("✓ passed", "ok") if e.passed else (f"✗ {e.failure_class or 'failed'}", "error")
        name = f"{e.check} ({e.check_id})" if e.check_id else e.check
        target = f"call {e.call_id}" if e.call_id else "success check"
        head = title(seq, "check", p, (name, "accent"), verdict, (target, "muted"))
        body = grid(
            p,
            ("detail", e.detail),
            ("evidence", pretty_json(e.evidence, p, 1500) if e.evidence else None),
        )
        sections.append(Section(seq, head, body))
    return sections


# --- raw ------------------------------------------------------------------------------------


def _raw(step: Step, p: Palette, _: Signatures | None) -> list[Section]:
    """Every event of the step as a one-line summary; the selected one's stored JSON is
    drawn by the pane (see :func:`raw_body`)."""
    sections: list[Section] = []
    for seq, e in step.events:
        if e is None:
            head = title(seq, "unreadable", p, (step.problems.get(seq, ""), "error"))
        else:
            head = title(seq, e.type, p, (_gist(e), "base"))  # type: ignore[attr-defined]
        sections.append(Section(seq, head, None))
    return sections


def raw_body(stored: dict[str, Any], p: Palette) -> Text:
    return pretty_json(stored, p, JSON_CLIP)


def _gist(e: ev.Event) -> str:
    """A few words about an event for its one-line summary."""
    match e:
        case ev.ModelResponse():
            return (
                e.error
                or ", ".join(str(c.get("name")) for c in e.tool_calls)
                or (e.content or "")[:80]
            )
        case ev.ToolCall():
            return f"{e.tool} {e.decision.effect}"
        case ev.ReplyRefused():
            return f"{e.kind}, {e.in_a_row} of {e.limit} in a row"
        case ev.TextToolCalls():
            return f"{e.format}: " + ", ".join(str(c.get("name")) for c in e.calls)
        case ev.ToolStarted():
            return e.tool or e.call_id
        case ev.ToolCallProposed() | ev.ApprovalRequested():
            return e.tool
        case ev.PolicyDecision():
            return f"{e.tool} {e.effect}"
        case ev.ApprovalDecided():
            return f"{e.tool} {e.decision} by {e.approver}"
        case ev.ToolFinished():
            return f"{e.tool} {'ok' if e.ok else 'failed'}"
        case ev.Verification():
            return f"{e.check} {'passed' if e.passed else 'failed'}"
        case ev.Interrupt():
            return f"{e.rule} {e.action}"
        case ev.StepFinished():
            return f"{e.outcome}, {e.tokens:,} tokens"
        case ev.RunFinished():
            return f"{e.status}" + (f" ({e.failure_class})" if e.failure_class else "")
        case ev.ModelRequest():
            return f"{e.message_count} messages"
        case _:
            return ""


_BUILDERS: dict[str, Builder] = {
    "prompt": _prompt,
    "reply": _reply,
    "tools": _tools,
    "policy": _policy,
    "approval": _approval,
    "checks": _checks,
    "raw": _raw,
}
