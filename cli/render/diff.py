"""How ``govrun diff`` reports: where the runs part, then each differing step side by side.

Each step gets a table whose middle and right columns are trajectory a and b; a row per
field, the changed ones named in yellow with a's value in red and b's in green, and inside
a long changed text the part that differs in reverse video (clipped around it, so an output of
70 KB still shows the one line that changed). Runs of inserted or removed steps share one
table, a row per step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from govrun.cli.console import out
from govrun.runtime.views.diff import (
    FieldChange,
    StepDiff,
    TrajectoryDiff,
    describe_action,
    describe_value,
    field_label,
)
from govrun.runtime.views.trajectory import CallView, StepView, Totals, Trajectory

MAX_WIDTH = 140
"""Tables stop growing here: wider columns only make long values harder to read."""
CLIP = 240
"""Characters shown of one value."""
MAX_LINES = 8
"""Lines shown of one multi-line value."""

STATUS_STYLE = {"completed": "green", "failed": "red", "stopped": "yellow"}
KIND_STYLE = {"changed": "yellow", "inserted": "green", "removed": "red"}


def render_diff(d: TrajectoryDiff, *, limit: int = 0) -> None:
    """Print the report; ``limit`` caps how many differing steps are shown (0: all)."""
    width = min(out.width, MAX_WIDTH)
    out.print(Text("govrun diff", style="bold"))
    out.print(_header(d))
    for note in _notes(d.a, "a") + _notes(d.b, "b"):
        out.print(note)
    out.print(_first_line(d))
    shown = 0
    for group in _groups(d.entries):
        if limit and shown >= limit:
            break
        group = group[: limit - shown] if limit else group
        shown += len(group)
        out.print()
        out.print(_group_table(group, width))
    hidden = len(d.entries) - shown
    if hidden:
        out.print(
            Text(
                f"… and {hidden:,} more differing step{'s' if hidden > 1 else ''} "
                "(--limit 0 shows all; --json lists all).",
                style="dim",
            )
        )
    if d.run_changes:
        out.print()
        out.print(_run_table(d.run_changes, width))
    out.print()
    out.print(_totals_table(d.a.totals, d.b.totals))
    out.print(_verdict(d))


# --- header and verdict ----------------------------------------------------------------------


def _header(d: TrajectoryDiff) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, t in (("a", d.a), ("b", d.b)):
        line = Text(str(t.path))
        line.append(f"  run {t.run_id} · {t.agent} · {t.totals.steps:,} steps", style="dim")
        grid.add_row(f"  {label}", line)
    return grid


def _notes(t: Trajectory, label: str) -> list[Text]:
    if t.torn is not None:
        return [
            Text(
                f"note: {label} ends in a torn line (line {t.torn.line}, {t.torn.size} bytes): "
                "its run crashed mid-write; compared up to that line.",
                style="magenta",
            )
        ]
    if not t.finished:
        return [
            Text(
                f"note: {label} has no run_finished (the run crashed, was killed, or is still "
                "running); compared as far as it goes.",
                style="magenta",
            )
        ]
    return []


def _first_line(d: TrajectoryDiff) -> Text:
    first = d.first_divergence
    text = Text()
    if first is None:
        text.append("no divergence", style="bold green")
        text.append(f": all {d.a.totals.steps} steps match.")
        return text
    text.append("first divergence: ", style="bold")
    if first.kind == "run":
        text.append(first.summary, style="yellow")
        return text
    text.append(f"{_at(first.a_step, d.a)} (a) / {_at(first.b_step, d.b)} (b)", style="bold")
    text.append(": ")
    text.append(first.summary, style=KIND_STYLE.get(first.kind, "yellow"))
    return text


def _at(step: int | None, t: Trajectory) -> str:
    if step is not None:
        return f"step {step}"
    return f"after step {t.steps[-1].step}" if t.steps else "no steps"


def _verdict(d: TrajectoryDiff) -> Text:
    if d.same:
        return Text(
            f"✓ same: {d.a.totals.steps} steps match step for step (timing and ids aside).",
            style="bold green",
        )
    counts = ", ".join(f"{d.count(k)} {k}" for k in ("changed", "inserted", "removed"))
    extra = f"; run {', '.join(c.field for c in d.run_changes)} differs" if d.run_changes else ""
    return Text(f"✗ different: {counts}{extra}.", style="bold red")


# --- step tables -------------------------------------------------------------------------------


def _groups(entries: tuple[StepDiff, ...]) -> Iterator[list[StepDiff]]:
    """Consecutive insertions (or removals) together; each changed step alone."""
    group: list[StepDiff] = []
    for e in entries:
        if group and (e.kind == "changed" or e.kind != group[-1].kind):
            yield group
            group = []
        group.append(e)
    if group:
        yield group


def _table(title: Text, width: int, a_head: str, b_head: str) -> Table:
    table = Table(title=title, title_justify="left", width=width, show_lines=False)
    table.add_column("", style="bold cyan", overflow="fold", max_width=max(width // 4, 14))
    table.add_column(a_head, ratio=1, overflow="fold")
    table.add_column(b_head, ratio=1, overflow="fold")
    return table


def _group_table(group: list[StepDiff], width: int) -> Table:
    first, last = group[0], group[-1]
    if first.kind == "changed":
        return _changed_table(first, width)
    side = "b" if first.kind == "inserted" else "a"
    steps = [e.b if first.kind == "inserted" else e.a for e in group]
    numbers = [s.step for s in steps if s is not None]
    span = f"step {numbers[0]}" if len(numbers) == 1 else f"steps {numbers[0]}–{numbers[-1]}"
    what = "only in b (inserted)" if first.kind == "inserted" else "only in a (removed)"
    title = Text(f"{span} · {what}", style=f"bold {KIND_STYLE[last.kind]}")
    table = _table(title, width, "a", "b")
    for step in steps:
        if step is None:
            continue
        cell = _step_cell(step, KIND_STYLE[first.kind])
        gone = Text("—", style="dim")
        row = (gone, cell) if side == "b" else (cell, gone)
        table.add_row(f"step {step.step}", *row)
    return table


def _step_cell(step: StepView, style: str) -> Text:
    """A whole step in one cell: its action, then what governance made of each call."""
    text = Text(describe_action(step, 200), style=style)
    for c in step.calls:
        text.append("\n" + _governance(c), style="dim")
    if step.outcome and step.outcome != "continue":
        text.append(f"\noutcome {step.outcome}", style="dim")
    return text


def _governance(c: CallView) -> str:
    parts: list[str] = []
    if c.policy is not None:
        parts.append(f"{c.policy.effect}" + (f" ({c.policy.rule})" if c.policy.rule else ""))
    if c.approval is not None:
        parts.append(f"{c.approval.decision} by {c.approval.approver} via {c.approval.via}")
    if c.result is not None:
        head = "ok" if c.result.ok else f"failed ({c.result.failure_class})"
        parts.append(f"{head}: {_oneline(c.result.output, 60)}")
    failed = [k.check for k in c.checks if not k.passed]
    if c.checks:
        parts.append(f"checks failed: {', '.join(failed)}" if failed else "checks passed")
    return f"{c.tool}: " + " · ".join(parts) if parts else f"{c.tool}: not decided"


def _changed_table(e: StepDiff, width: int) -> Table:
    assert e.a is not None and e.b is not None
    title = Text(f"step {e.a.step} (a) / step {e.b.step} (b) · changed", style="bold yellow")
    if e.a.step == e.b.step:
        title = Text(f"step {e.a.step} · changed", style="bold yellow")
    table = _table(title, width, f"a · step {e.a.step}", f"b · step {e.b.step}")
    same_action = e.a.signature == e.b.signature
    if e.a.calls or e.b.calls:  # for two answers, the answer row says it all
        table.add_row(
            Text("action", style="cyan" if same_action else "bold yellow"),
            Text(describe_action(e.a, 200), style="dim" if same_action else "red"),
            Text(describe_action(e.b, 200), style="dim" if same_action else "green"),
        )
    for change in e.changes:
        a, b = _pair_cells(change)
        table.add_row(Text(field_label(change.field), style="bold yellow"), a, b)
    table.add_row(
        Text("tokens · ms", style="dim cyan"),
        Text(f"{e.a.tokens:,} · {e.a.duration_ms:,.0f}", style="dim"),
        Text(f"{e.b.tokens:,} · {e.b.duration_ms:,.0f}", style="dim"),
    )
    return table


def _pair_cells(change: FieldChange) -> tuple[Text, Text]:
    a, b = _plain(change.field, change.a), _plain(change.field, change.b)
    if a is None or b is None:
        return _value_cell(a, "red"), _value_cell(b, "green")
    return _highlighted(a, b, "red"), _highlighted(b, a, "green")


def _plain(field: str, value: Any) -> str | None:
    """A value as text: structured fields in words, strings as they are, everything else
    as compact JSON; None when absent."""
    words = describe_value(field, value)
    if words is not None:
        return words
    if value is None or isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


def _value_cell(text: str | None, style: str) -> Text:
    if text is None:
        return Text("—", style="dim")
    return Text(_clip_lines(text), style=style)


def _highlighted(text: str, other: str, style: str) -> Text:
    """``text`` with the part that differs from ``other`` in bold, clipped around it."""
    p = 0
    limit = min(len(text), len(other))
    while p < limit and text[p] == other[p]:
        p += 1
    s = 0
    while s < limit - p and text[-1 - s] == other[-1 - s]:
        s += 1
    start = max(0, p - CLIP // 3) if len(text) > CLIP else 0
    if start:  # begin at a line start near the difference when there is one
        nl = text.rfind("\n", start, p)
        start = nl + 1 if nl != -1 else start
    end = min(len(text), start + CLIP)
    mid_end = max(p, len(text) - s)
    cell = Text(style=style)
    if start:
        cell.append("…", style="dim")
    cell.append(text[start:p])
    cell.append(text[p : min(mid_end, end)], style=f"bold {style} reverse")
    cell.append(text[min(mid_end, end) : end])
    if end < len(text):
        cell.append(f"… (+{len(text) - end:,} chars)", style="dim")
    if p == len(text) and p < len(other):  # text is a prefix of other: mark where it stops
        cell.append("∅", style="dim")
    return _clip_text_lines(cell)


def _clip_lines(text: str) -> str:
    clipped = text if len(text) <= CLIP else text[:CLIP] + f"… (+{len(text) - CLIP:,} chars)"
    lines = clipped.split("\n")
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"… (+{len(lines) - MAX_LINES} lines)"]
    return "\n".join(lines)


def _clip_text_lines(cell: Text) -> Text:
    lines = cell.split("\n", allow_blank=True)
    if len(lines) <= MAX_LINES:
        return cell
    kept = Text("\n").join(lines[:MAX_LINES])
    kept.append(f"\n… (+{len(lines) - MAX_LINES} lines)", style="dim")
    return kept


def _oneline(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# --- run-level and totals ---------------------------------------------------------------------


def _run_table(changes: tuple[FieldChange, ...], width: int) -> Table:
    table = _table(Text("run · changed", style="bold yellow"), width, "a", "b")
    for c in changes:
        a, b = _pair_cells(c)
        table.add_row(Text(c.field, style="bold yellow"), a, b)
    return table


def _totals_table(a: Totals, b: Totals) -> Table:
    table = Table(title="totals", title_justify="left")
    table.add_column("", style="bold cyan", no_wrap=True)
    table.add_column("a", justify="right")
    table.add_column("b", justify="right")
    table.add_column("Δ", justify="right")
    table.add_row("steps", f"{a.steps:,}", f"{b.steps:,}", _delta(b.steps - a.steps, "{:+,}"))
    table.add_row("tokens", f"{a.tokens:,}", f"{b.tokens:,}", _delta(b.tokens - a.tokens, "{:+,}"))
    table.add_row(
        "cost",
        f"${a.cost_usd:.4f}",
        f"${b.cost_usd:.4f}",
        _delta(round(b.cost_usd - a.cost_usd, 6), "{:+.4f}", prefix="$"),
    )
    table.add_row(
        "duration",
        _seconds(a.duration_ms),
        _seconds(b.duration_ms),
        Text("?", style="dim")
        if a.duration_ms is None or b.duration_ms is None
        else _delta(round((b.duration_ms - a.duration_ms) / 1000, 2), "{:+.2f}s", neutral=True),
    )
    table.add_row(
        "status",
        _status(a),
        _status(b),
        Text("=", style="dim")
        if (a.status, a.failure_class) == (b.status, b.failure_class)
        else Text("≠", style="bold yellow"),
    )
    return table


def _delta(value: float, fmt: str, *, prefix: str = "", neutral: bool = False) -> Text:
    """Zero dim; otherwise yellow, since more is not always worse (timing is neutral)."""
    if not value:
        return Text("=", style="dim")
    shown = fmt.format(value)
    if prefix:
        shown = shown[0] + prefix + shown[1:]
    return Text(shown, style="dim" if neutral else "yellow")


def _seconds(ms: float | None) -> str:
    return "?" if ms is None else f"{ms / 1000:,.2f}s"


def _status(t: Totals) -> Text:
    text = Text(t.status, style=STATUS_STYLE.get(t.status, "magenta"))
    if t.failure_class:
        text.append(f" ({t.failure_class})", style="red")
    return text
