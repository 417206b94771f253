"""Two trajectories side by side: aligned rows (a left, b right) and the selected pair.

Rows come from :func:`govrun.runtime.views.diff.diff_trajectories`: its entries are the changed,
inserted and removed steps in alignment order, and every step between two entries matches
its partner, so the whole alignment is rebuilt by walking both step lists between entries.
A step only one side has leaves a gap on the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rich.console import Group, RenderableType
from rich.segment import Segment
from rich.table import Table
from rich.text import Text
from textual import events
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from govrun.cli.inspect import palette
from govrun.cli.inspect.icons import MARKS, STATUS_ICONS, two_cells
from govrun.cli.inspect.palette import Palette, ink_css
from govrun.cli.inspect.sections import Section, compact_json
from govrun.cli.inspect.timeline_view import clip_cells
from govrun.runtime.views.diff import (
    FieldChange,
    StepDiff,
    TrajectoryDiff,
    describe_action,
    describe_value,
    field_label,
)
from govrun.runtime.views.trajectory import CallView, StepView

PairKind = Literal["same", "changed", "inserted", "removed"]


@dataclass(frozen=True, slots=True)
class Pair:
    """One aligned row: a step of a and its partner in b (either may be None)."""

    kind: PairKind
    a: StepView | None
    b: StepView | None
    entry: StepDiff | None = None


def align_pairs(d: TrajectoryDiff) -> list[Pair]:
    """Every step of both runs, aligned, in order."""
    a, b = d.a.steps, d.b.steps
    a_at = {id(s): n for n, s in enumerate(a)}
    b_at = {id(s): n for n, s in enumerate(b)}
    pairs: list[Pair] = []
    i = j = 0

    def matching(count: int) -> None:
        nonlocal i, j
        for _ in range(max(0, count)):
            if i < len(a) and j < len(b):
                pairs.append(Pair("same", a[i], b[j]))
                i, j = i + 1, j + 1

    for e in d.entries:
        if e.kind == "inserted" and e.b is not None:
            matching(b_at[id(e.b)] - j)
            pairs.append(Pair("inserted", None, e.b, e))
            j += 1
        elif e.a is not None:
            matching(a_at[id(e.a)] - i)
            pairs.append(Pair(e.kind, e.a, e.b, e))
            i += 1
            j += 1 if e.kind == "changed" else 0
    matching(min(len(a) - i, len(b) - j))
    pairs += [Pair("removed", s, None) for s in a[i:]]
    pairs += [Pair("inserted", None, s) for s in b[j:]]
    return pairs


def step_status(s: StepView) -> str:
    """A :data:`~govrun.cli.inspect.icons.STATUS_ICONS` key for a trajectory step."""
    checks = [k for c in s.calls for k in c.checks] + list(s.checks)
    if any(i.action in ("pause", "stop") for i in s.interrupts):
        return "interrupt"
    if s.model_errors and not s.calls and s.text is None:
        return "model_error"
    if s.outcome in ("failed", "stop"):
        return "failed"
    if any(not k.passed for k in checks):
        return "verification_failed"
    if any(c.approval is not None and c.approval.decision != "approve" for c in s.calls):
        return "rejected"
    if any(c.policy is not None and c.policy.effect == "deny" for c in s.calls):
        return "denied"
    if any(c.result is not None and not c.result.ok for c in s.calls):
        return "tool_error"
    return "final" if s.is_final else "ok"


class DiffTimeline(ScrollView, can_focus=True, inherit_bindings=False):
    """The aligned rows, drawn with the Line API (only the lines on screen)."""

    DEFAULT_CSS = (
        """
    DiffTimeline {
        overflow-x: hidden;
        overflow-y: scroll;
        scrollbar-size-vertical: 1;
        background: $surface;
    }
    """
        + ink_css("DiffTimeline")
        + """
    DiffTimeline:blur > .ink--selected {
        background: $block-cursor-blurred-background;
        color: $block-cursor-blurred-foreground;
    }
    """
    )
    COMPONENT_CLASSES = palette.COMPONENT_CLASSES

    class Clicked(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, pairs: list[Pair], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.pairs = pairs
        self.cursor = 0
        steps = [s.step for p in pairs for s in (p.a, p.b) if s is not None]
        self._digits = max(2, len(str(max(steps, default=0))))
        self._strips: LRUCache[tuple[int, int, bool], Strip] = LRUCache(1024)
        self._palette: Palette | None = None

    def on_mount(self) -> None:
        self.virtual_size = Size(0, len(self.pairs))

    def select(self, index: int) -> None:
        old, self.cursor = self.cursor, index
        self.refresh_line(old)
        self.refresh_line(index)
        height = self.scrollable_content_region.height
        if height <= 0:
            return
        top = round(self.scroll_offset.y)
        if index < top:
            self.scroll_to(y=index, animate=False)
        elif index >= top + height:
            self.scroll_to(y=index - height // 2, animate=False)

    def on_resize(self) -> None:
        self._strips.clear()
        self.call_after_refresh(self.select, self.cursor)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._palette = None
        self._strips.clear()

    def on_click(self, event: events.Click) -> None:
        index = event.y + round(self.scroll_offset.y)
        if 0 <= index < len(self.pairs):
            self.post_message(self.Clicked(index))

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = y + round(self.scroll_offset.y)
        if self._palette is None:
            self._palette = Palette.of(self)
        p = self._palette
        if not 0 <= index < len(self.pairs) or width <= 0:
            return Strip.blank(width, p.base)
        key = (index, width, index == self.cursor)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._draw(self.pairs[index], width, index == self.cursor, p)
            self._strips[key] = strip
        return strip

    def _draw(self, pair: Pair, width: int, selected: bool, p: Palette) -> Strip:
        half = max(0, (width - 4) // 2)
        mark = MARKS.get(pair.kind)
        pieces: list[tuple[str, Any]] = [
            (mark.glyph if mark else " ", p.ink(mark.ink) if mark else p.base),
            *self._cell(pair.a, half, p),
            (" │ ", p.muted),
            *self._cell(pair.b, width - half - 4, p),
        ]
        segments = [Segment(text, p.selected if selected else style) for text, style in pieces]
        return Strip(segments).adjust_cell_length(width, p.selected if selected else p.base)

    def _cell(self, s: StepView | None, width: int, p: Palette) -> list[tuple[str, Any]]:
        if s is None:
            return [(clip_cells(" " * (self._digits + 1) + "—", width), p.muted)]
        icon = STATUS_ICONS[step_status(s)]
        lead = f"{s.step:>{self._digits}} "
        room = max(0, width - len(lead) - 3)
        return [
            (lead, p.muted),
            (two_cells(icon.glyph) + " ", p.ink(icon.ink)),
            (clip_cells(describe_action(s, 200), room), p.base),
        ]


# --- the selected pair ---------------------------------------------------------------------


def pair_sections(pair: Pair, p: Palette) -> list[Section]:
    """What the detail shows for one aligned row."""
    a, b = pair.a, pair.b
    if pair.kind == "changed" and a is not None and b is not None:
        where = f"step {a.step}" if a.step == b.step else f"step {a.step} (a) / step {b.step} (b)"
        head = Text(f"{where} · changed", p.warning)
        return [Section(None, head, _changes(pair, p))]
    if pair.kind == "same" and a is not None:
        head = Text(f"step {a.step} · the same in a and b", p.ok)
        return [Section(None, head, _step_body(a, p))]
    side, s = ("b", b) if pair.kind == "inserted" else ("a", a)
    assert s is not None
    what = "only in b (inserted)" if side == "b" else "only in a (removed)"
    ink = p.ok if side == "b" else p.error
    return [Section(None, Text(f"step {s.step} · {what}", ink), _step_body(s, p))]


def _changes(pair: Pair, p: Palette) -> RenderableType:
    assert pair.a is not None and pair.b is not None
    table = Table(show_header=True, header_style=p.key, box=None, padding=(0, 1), expand=True)
    table.add_column("", style=p.key, no_wrap=True, max_width=24)
    table.add_column(f"a · step {pair.a.step}", ratio=1, overflow="fold")
    table.add_column(f"b · step {pair.b.step}", ratio=1, overflow="fold")
    if pair.a.signature != pair.b.signature or pair.a.calls or pair.b.calls:
        table.add_row(
            "action",
            Text(describe_action(pair.a, 200), p.base),
            Text(describe_action(pair.b, 200), p.base),
        )
    for change in pair.entry.changes if pair.entry else ():
        table.add_row(field_label(change.field), *_values(change, p))
    table.add_row(
        Text("tokens · ms", p.muted),
        Text(f"{pair.a.tokens:,} · {pair.a.duration_ms:,.0f}", p.muted),
        Text(f"{pair.b.tokens:,} · {pair.b.duration_ms:,.0f}", p.muted),
    )
    return table


def _values(change: FieldChange, p: Palette) -> tuple[Text, Text]:
    def shown(value: Any) -> str | None:
        words = describe_value(change.field, value)
        if words is not None:
            return words
        return value if value is None or isinstance(value, str) else compact_json(value)

    a, b = shown(change.a), shown(change.b)
    return (
        Text(_short(a), p.error) if a is not None else Text("—", p.muted),
        Text(_short(b), p.ok) if b is not None else Text("—", p.muted),
    )


def _short(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit] + f"… (+{len(text) - limit:,} chars)"


def _step_body(s: StepView, p: Palette) -> RenderableType:
    parts: list[RenderableType] = [Text(describe_action(s, 400), p.base)]
    parts += [Text(_governance(c), p.muted) for c in s.calls]
    if s.outcome and s.outcome != "continue":
        parts.append(Text(f"outcome {s.outcome}", p.muted))
    parts.append(Text(f"{s.tokens:,} tokens · {s.duration_ms:,.0f} ms", p.muted))
    return Group(*parts)


def _governance(c: CallView) -> str:
    parts: list[str] = []
    if c.policy is not None:
        parts.append(c.policy.effect + (f" ({c.policy.rule})" if c.policy.rule else ""))
    if c.approval is not None:
        parts.append(f"{c.approval.decision} by {c.approval.approver} via {c.approval.via}")
    if c.result is not None:
        parts.append("ok" if c.result.ok else f"failed ({c.result.failure_class})")
    if c.checks:
        failed = [k.check for k in c.checks if not k.passed]
        parts.append(f"checks failed: {', '.join(failed)}" if failed else "checks passed")
    return f"{c.tool}: " + (" · ".join(parts) if parts else "not decided")
