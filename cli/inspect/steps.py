"""The selected step, loaded for the detail pane: its events typed (a window of them for a
huge step), and its one-line summary."""

from __future__ import annotations

from typing import Any

from textual.markup import escape

from govrun.cli.inspect.base import RECOVERABLE, message_of
from govrun.cli.inspect.icons import INK_TOKENS, status_icon
from govrun.cli.inspect.sections import Step
from govrun.runtime.trace.events import Event
from govrun.runtime.views.timeline import StepRow, Timeline

WINDOW = 400
"""Events of one step drawn at most (around the selected one): a step with thousands of
tool calls stays quick to show."""


class StepLoader:
    """Typed events of a row, cached while the cursor moves inside the same window."""

    def __init__(self, timeline: Timeline) -> None:
        self.tl = timeline
        self._cached: tuple[tuple[int, int, int], Step] | None = None

    def load(self, row: int, seq: int, *, fresh: bool = False) -> Step:
        """``fresh`` re-reads a row that a live run is still writing."""
        first, last = self.tl.seq_range(row)
        lo, hi = first, last
        if last - first + 1 > WINDOW:
            lo = max(first, min(seq - WINDOW // 2, last - WINDOW + 1))
            hi = lo + WINDOW - 1
        key = (row, lo, hi)
        if not fresh and self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        events: list[tuple[int, Event | None]] = []
        problems: dict[int, str] = {}
        for s in range(lo, hi + 1):
            try:
                events.append((s, self.tl.event(s)))
            except RECOVERABLE as exc:  # one damaged event must not hide the others
                events.append((s, None))
                problems[s] = message_of(exc)
        omitted = (last - first) - (hi - lo)
        step = Step(row, tuple(events), self.stored, problems, omitted)
        self._cached = (key, step)
        return step

    def stored(self, seq: int) -> dict[str, Any]:
        """The event as stored, for the Raw tab; a note when it cannot be read."""
        try:
            return self.tl.raw_event(seq)
        except RECOVERABLE as exc:
            return {"unreadable": message_of(exc)}


def summary(info: StepRow) -> str:
    """``step 3 · ✓ ok · write_file(…) · 804 tokens · 3.8 ms`` as markup."""
    icon = status_icon(info.status, info.row)
    token = INK_TOKENS.get(icon.ink, "$text")
    status = info.status.replace("_", " ") if info.row else "run started"
    if info.failure_class:
        status += f" ({info.failure_class})"
    parts = [
        f"[b]{'step ' + str(info.row) if info.row else 'row 0'}[/b]",
        f"[b {token}]{icon.glyph} {escape(status)}[/]",
    ]
    if info.row:
        parts.append(escape(info.action))
    if info.tokens:
        parts.append(f"[$text-muted]{info.tokens:,} tokens[/]")
    if info.duration_ms:
        parts.append(f"[$text-muted]{info.duration_ms:,.1f} ms[/]")
    return " · ".join(parts)
