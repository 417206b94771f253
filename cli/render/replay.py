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
from govrun.cli.jobs import WorkerDied
from govrun.runtime.replayer.report import Change
from govrun.runtime.replayer.session import Divergence, contrast, field_of
from govrun.runtime.replayer.summary import ReplaySummary
from govrun.runtime.trace.canonical import canonical

SHOWN = 70

Replayed = ReplaySummary | str | WorkerDied
"""A replay's summary; a trace that could not be read (the message); a replay whose worker
process died (the message names the trace)."""


def render_replays(outcomes: list[Replayed], *, as_json: bool) -> None:
    if as_json:
        doc = [_json_item(o) for o in outcomes]
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if len(outcomes) == 1 and isinstance(outcomes[0], ReplaySummary):
        _render_one(outcomes[0])
        return
    _render_table(outcomes)


def _json_item(o: Replayed) -> dict[str, Any]:
    if isinstance(o, str):
        return {"error": o}
    if isinstance(o, WorkerDied):
        return {"error": o.message, "crashed": True}
    return _as_dict(o)


# --- one trace ----------------------------------------------------------------------------


def _render_one(o: ReplaySummary) -> None:
    source, target = escape(str(o.trace)), escape(o.output)
    if o.mode == "strict":
        if o.identical:
            out.print(
                f"[bold green]✓ identical[/] {source}: {o.replayed.steps} steps, "
                f"{o.replayed.events} events reproduced event for event (timestamps, "
                "durations and signatures aside)."
            )
        else:
            out.print(f"[bold red]✗ diverged[/] {source}")
            if o.divergence is not None:
                out.print(_divergence_panel(o.divergence))
            else:
                out.print(f"  the replay ended {o.replayed.status}: {escape(o.replayed.reason)}")
        out.print(f"[dim]replayed trace: {target}[/]", soft_wrap=True)
        return
    changes = o.changes
    out.print(
        f"[bold]counterfactual replay[/] of {source} under manifest "
        f"[bold]{escape(o.manifest)}[/] (policy {o.policy_hash[:12]})"
    )
    if changes:
        out.print(_changes_table(changes))
    else:
        out.print("[bold green]✓ no decision changes[/]: every call is decided as recorded.")
    if o.divergence is not None:  # what no new decision explains (e.g. an MCP listing)
        out.print(_divergence_panel(o.divergence))
    _render_endings(o)
    out.print(f"[dim]replayed trace: {target}[/]", soft_wrap=True)


def _render_endings(o: ReplaySummary) -> None:
    if o.ended_for is not None:
        out.print(f"[bold yellow]replay stopped:[/] {escape(o.ended_for)}")
    for call in o.live_calls:
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


def _changes_table(changes: tuple[Change, ...]) -> Table:
    table = Table(title=f"{len(changes)} decision(s) changed", title_justify="left")
    table.add_column("step", justify="right", style="bold")
    table.add_column("call", style="cyan")
    table.add_column("recorded")
    table.add_column("under the new manifest", style="yellow")
    for c in changes:
        table.add_row(str(c.step or "—"), escape(c.what), escape(c.before), escape(c.after))
    return table


# --- several traces -----------------------------------------------------------------------


def _render_table(outcomes: list[Replayed]) -> None:
    table = Table(title="replay", title_justify="left")
    table.add_column("trace", style="cyan", overflow="fold")
    table.add_column("steps", justify="right")
    table.add_column("recorded")
    table.add_column("replayed")
    table.add_column("verdict")
    table.add_column("first change", overflow="fold")
    counts = {"same": 0, "changed": 0, "unreadable": 0, "crashed": 0}
    details: list[tuple[str, tuple[Change, ...]]] = []
    for o in outcomes:
        if isinstance(o, str):
            counts["unreadable"] += 1
            table.add_row(escape(o), "", "", "", "[bold red]unreadable[/]", "")
            continue
        if isinstance(o, WorkerDied):
            counts["crashed"] += 1
            table.add_row(escape(o.message), "", "", "", "[bold red]crashed[/]", "")
            continue
        recorded = o.recorded.status or "unfinished"
        replayed = o.replayed.status or ""
        if o.replayed.failure_class:
            replayed += f" ({o.replayed.failure_class})"
        if o.mode == "strict":
            same = o.identical
            first = "" if same else (o.divergence.message if o.divergence else o.replayed.reason)
        else:
            changes = o.changes
            same = o.unchanged
            first = changes[0].describe() if changes else (o.ended_for or "")
            if changes:
                details.append((str(o.trace), changes))
        counts["same" if same else "changed"] += 1
        verdict = (
            "[green]same[/]"
            if same
            else "[yellow]changed[/]"
            if o.mode != "strict"
            else "[red]diverged[/]"
        )
        table.add_row(
            escape(o.trace.name),
            str(o.replayed.steps),
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
        + (f", {counts['crashed']} crashed" if counts["crashed"] else "")
    )


# --- fork and resume ----------------------------------------------------------------------


def render_live_continuation(o: ReplaySummary, verb: str, *, as_json: bool) -> None:
    if as_json:
        sys.stderr.write(orjson.dumps(_as_dict(o)).decode() + "\n")
        return
    if o.divergence is not None:
        out.print(_divergence_panel(o.divergence))
    if o.went_live is None:
        out.print(
            f"[yellow]{verb} run never went live:[/] the replayed part ended first "
            f"({escape(o.replayed.reason)})"
        )
        return
    seq, step = o.went_live
    out.print(
        f"[bold]{verb}[/] {escape(str(o.trace))} (run {escape(o.recorded.run_id)}): "
        f"replayed {seq} events from the record, live from step {step or 1}."
    )


def _as_dict(o: ReplaySummary) -> dict[str, Any]:
    d = o.divergence
    doc: dict[str, Any] = {
        "trace": str(o.trace),
        "output": o.output,
        "mode": o.mode,
        "identical": o.identical,
        "recorded": {
            "run_id": o.recorded.run_id,
            "status": o.recorded.status,
            "steps": o.recorded.steps,
            "events": o.recorded.events,
        },
        "replayed": {
            "run_id": o.replayed.run_id,
            "status": o.replayed.status,
            "failure_class": o.replayed.failure_class,
            "reason": o.replayed.reason,
            "steps": o.replayed.steps,
            "events": o.replayed.events,
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
        "ended_for": o.ended_for,
        "live_calls": list(o.live_calls),
        "went_live": None
        if o.went_live is None
        else {"seq": o.went_live[0], "step": o.went_live[1]},
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
            for c in o.changes
        ]
    return doc
