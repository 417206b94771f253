"""How `govrun replay` and `govrun resume` report: the verdict first, then the evidence."""

from __future__ import annotations

import sys
from typing import Any

import orjson
from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from govrun.cli.console import out
from govrun.runtime.replayer.report import Change
from govrun.runtime.replayer.session import Divergence, ReplayOutcome, contrast, field_of
from govrun.runtime.trace.canonical import canonical

SHOWN = 70


def render_replays(outcomes: list[ReplayOutcome | str], *, as_json: bool) -> None:
    if as_json:
        doc = [({"error": o} if isinstance(o, str) else _as_dict(o)) for o in outcomes]
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if len(outcomes) == 1 and not isinstance(outcomes[0], str):
        _render_one(outcomes[0])
        return
    _render_table(outcomes)


# --- one trace ----------------------------------------------------------------------------


def _render_one(o: ReplayOutcome) -> None:
    source, target = escape(str(o.record.path)), escape(o.result.trace_path)
    if o.mode == "strict":
        if o.identical:
            out.print(
                f"[bold green]✓ identical[/] {source}: {o.result.steps} steps, "
                f"{o.result.events} events reproduced event for event (timestamps, durations "
                "and signatures aside)."
            )
        else:
            out.print(f"[bold red]✗ diverged[/] {source}")
            if o.divergence is not None:
                out.print(_divergence_panel(o.divergence))
            else:
                out.print(f"  the replay ended {o.result.status}: {escape(o.result.reason)}")
        out.print(f"[dim]replayed trace: {target}[/]", soft_wrap=True)
        return
    changes = o.changes()
    manifest = o.session.m.name
    out.print(
        f"[bold]counterfactual replay[/] of {source} under manifest [bold]{escape(manifest)}[/] "
        f"(policy {_short_hash(o)})"
    )
    if changes:
        out.print(_changes_table(changes))
    else:
        out.print("[bold green]✓ no decision changes[/]: every call is decided as recorded.")
    _render_endings(o)
    out.print(f"[dim]replayed trace: {target}[/]", soft_wrap=True)


def _short_hash(o: ReplayOutcome) -> str:
    from govrun.runtime.govern.policy import PolicyEngine

    return PolicyEngine(o.session.m).policy_hash[:12]


def _render_endings(o: ReplayOutcome) -> None:
    s = o.session
    if s.ended_for is not None:
        out.print(f"[bold yellow]replay stopped:[/] {escape(s.ended_for)}")
    for call in s.live_calls:
        out.print(f"[yellow]ran live:[/] {escape(call)}")


def _divergence_panel(d: Divergence) -> Panel:
    table = Table(show_edge=False, expand=False, pad_edge=False)
    table.add_column("field", style="bold cyan", no_wrap=True)
    table.add_column("recorded", overflow="fold")
    table.add_column("replayed", overflow="fold")
    for field in d.fields:
        if field == "type":
            table.add_row("event", _describe(d.recorded), _describe(d.replayed))
        else:
            label, a, b = contrast(
                field, field_of(d.recorded or {}, field), field_of(d.replayed, field), SHOWN
            )
            table.add_row(escape(label), escape(a), f"[yellow]{escape(b)}[/]")
    title = f"first divergence: step {d.step}, event {d.seq} ({d.event})"
    return Panel(Group(Text(d.message), table), title=title, title_align="left", border_style="red")


def _describe(e: dict[str, Any] | None) -> str:
    if e is None:
        return "[dim](nothing: the record ends)[/]"
    name = e.get("tool") or e.get("rule") or ""
    return escape(f"{e['type']} {name}".strip())


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else canonical(value).decode()
    return escape(text if len(text) <= SHOWN else text[: SHOWN - 1] + "…")


def _changes_table(changes: list[Change]) -> Table:
    table = Table(title=f"{len(changes)} decision(s) changed", title_justify="left")
    table.add_column("step", justify="right", style="bold")
    table.add_column("call", style="cyan")
    table.add_column("recorded")
    table.add_column("under the new manifest", style="yellow")
    for c in changes:
        table.add_row(str(c.step or "—"), escape(c.what), escape(c.before), escape(c.after))
    return table


# --- several traces -----------------------------------------------------------------------


def _render_table(outcomes: list[ReplayOutcome | str]) -> None:
    table = Table(title="replay", title_justify="left")
    table.add_column("trace", style="cyan", overflow="fold")
    table.add_column("steps", justify="right")
    table.add_column("recorded")
    table.add_column("replayed")
    table.add_column("verdict")
    table.add_column("first change", overflow="fold")
    counts = {"same": 0, "changed": 0, "unreadable": 0}
    details: list[tuple[str, list[Change]]] = []
    for o in outcomes:
        if isinstance(o, str):
            counts["unreadable"] += 1
            table.add_row(escape(o), "", "", "", "[bold red]unreadable[/]", "")
            continue
        finished = o.record.run_finished or {}
        recorded = f"{finished.get('status', 'unfinished')}"
        replayed = o.result.status
        if o.result.failure_class:
            replayed += f" ({o.result.failure_class})"
        if o.mode == "strict":
            same = o.identical
            first = "" if same else (o.divergence.message if o.divergence else o.result.reason)
        else:
            changes = o.changes()
            same = not changes and o.session.ended_for is None
            first = changes[0].describe() if changes else (o.session.ended_for or "")
            if changes:
                details.append((str(o.record.path), changes))
        counts["same" if same else "changed"] += 1
        verdict = (
            "[green]same[/]"
            if same
            else "[yellow]changed[/]"
            if o.mode != "strict"
            else "[red]diverged[/]"
        )
        table.add_row(
            escape(o.record.path.name),
            str(o.result.steps),
            escape(recorded),
            escape(replayed),
            verdict,
            escape(first[:200]),
        )
    out.print(table)
    for path, changes in details:
        out.print(f"[bold]{escape(path)}[/]")
        for c in changes:
            out.print(f"  {escape(c.describe())}")
    out.print(
        f"{len(outcomes)} traces: {counts['same']} unchanged, {counts['changed']} changed"
        + (f", {counts['unreadable']} unreadable" if counts["unreadable"] else "")
    )


# --- fork and resume ----------------------------------------------------------------------


def render_live_continuation(o: ReplayOutcome, verb: str, *, as_json: bool) -> None:
    if as_json:
        sys.stderr.write(orjson.dumps(_as_dict(o)).decode() + "\n")
        return
    s = o.session
    if s.divergence is not None:
        out.print(_divergence_panel(s.divergence))
    if s.went_live is None:
        out.print(
            f"[yellow]{verb} run never went live:[/] the replayed part ended first "
            f"({escape(o.result.reason)})"
        )
        return
    seq, step = s.went_live
    out.print(
        f"[bold]{verb}[/] {escape(str(o.record.path))} (run {escape(o.record.run_id)}): "
        f"replayed {seq} events from the record, live from step {step or 1}."
    )


def _as_dict(o: ReplayOutcome) -> dict[str, Any]:
    s = o.session
    d = s.divergence
    doc: dict[str, Any] = {
        "trace": str(o.record.path),
        "output": o.result.trace_path,
        "mode": o.mode,
        "identical": o.identical,
        "recorded": {
            "run_id": o.record.run_id,
            "status": (o.record.run_finished or {}).get("status"),
            "steps": o.record.steps(),
            "events": len(o.record.events),
        },
        "replayed": {
            "run_id": o.result.run_id,
            "status": o.result.status,
            "failure_class": o.result.failure_class,
            "reason": o.result.reason,
            "steps": o.result.steps,
            "events": o.result.events,
        },
        "divergence": None
        if d is None
        else {
            "seq": d.seq,
            "step": d.step,
            "event": d.event,
            "fields": list(d.fields),
            "recorded": d.recorded,
            "replayed": d.replayed,
            "message": d.message,
        },
        "ended_for": s.ended_for,
        "live_calls": s.live_calls,
        "went_live": None
        if s.went_live is None
        else {"seq": s.went_live[0], "step": s.went_live[1]},
    }
    if o.mode == "counterfactual":
        doc["changes"] = [
            {
                "step": c.step,
                "call_id": c.call_id,
                "what": c.what,
                "before": c.before,
                "after": c.after,
                "text": c.describe(),
            }
            for c in o.changes()
        ]
    return doc
