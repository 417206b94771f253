"""The two header lines: the run at a glance, then where the cursor is and what is going on.

Built as Textual markup with design tokens (``$text-success``…), so it follows the theme.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from textual.markup import escape

from govrun.runtime.views.timeline import RunHeader

STATUS_TOKEN = {
    "completed": "$text-success",
    "failed": "$text-error",
    "stopped": "$text-warning",
    "running": "$text-accent",
}


@dataclass(frozen=True, slots=True)
class Where:
    """The second line's facts."""

    file: str
    row: int
    last_row: int
    seq: int
    event_type: str
    filter: str = ""
    replay: str = ""
    replay_ok: bool = True
    new_steps: int = 0


def run_line(
    h: RunHeader, pending: str | None = None, *, live: bool = True, damage: str | None = None
) -> str:
    """Agent, status and failure class, steps, tokens, cost, duration; for a live run,
    what it waits on (an approval, a tool call in flight, the model). A trace without
    ``run_finished`` that nobody is writing is ``unfinished`` (a crash), and what it was
    doing is where it ended; ``damage`` is verify's finding, said first."""
    if h.status == "running" and not live:
        h = replace(h, status="unfinished")
        pending = f"ended during: {pending}" if pending else None
    token = STATUS_TOKEN.get(h.status, "$text-warning")
    status = escape(h.status) + (f" ({escape(h.failure_class)})" if h.failure_class else "")
    parts = [
        f"[b]{escape(h.agent or '?')}[/b]",
        f"[b {token}]{status}[/]",
        f"{h.steps:,} steps",
        f"{h.tokens:,} tokens",
    ]
    if h.cost_usd:
        parts.append(f"${h.cost_usd:.4f}")
    if h.duration_ms is not None:
        parts.append(seconds(h.duration_ms))
    if pending:
        glyph = "⏳" if pending.startswith("awaiting") else "⟳" if live else "✗"
        parts.append(f"[b $text-warning]{glyph} {escape(pending)}[/]")
    line = " [$text-muted]·[/] ".join(parts)
    return f"[b $text-error]{escape(damage)}[/]\n{line}" if damage else line


def where_line(w: Where) -> str:
    """File, step and event under the cursor, then live state, filter and replay notes."""
    parts = [
        f"[$text-muted]{escape(w.file)}[/]",
        f"step {w.row}/{w.last_row}",
        f"event {w.seq} [$text-primary]{escape(w.event_type)}[/]",
    ]
    if w.new_steps:
        parts.append(f"[b $text-accent]▼ {w.new_steps:,} new step{'s' * (w.new_steps > 1)} (G)[/]")
    if w.filter:
        parts.append(f"[$text-warning]filter: {escape(w.filter)} (x clears)[/]")
    if w.replay:
        token = "$text-success" if w.replay_ok else "$text-error"
        parts.append(f"[{token}]{escape(w.replay)}[/]")
    return " [$text-muted]·[/] ".join(parts)


def seconds(ms: float) -> str:
    return f"{ms / 1000:,.2f}s" if ms < 600_000 else f"{ms / 60_000:,.1f} min"
