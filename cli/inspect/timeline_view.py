"""The step timeline: one line per step, drawn with Textual's Line API.

A trace can hold 100,000 events; a widget per step would take seconds to mount. This is a
single ``ScrollView`` whose virtual height is the number of rows: ``render_line`` asks the
:class:`~govrun.runtime.views.timeline.Timeline` only for the rows on screen (it decodes and caches
them), so opening, scrolling and jumping cost the same on any trace.
"""

from __future__ import annotations

from bisect import bisect_left

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from textual import events
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from govrun.cli.inspect import palette
from govrun.cli.inspect.icons import MARKS, status_icon, two_cells
from govrun.cli.inspect.palette import Palette, ink_css
from govrun.runtime.errors import GovrunError
from govrun.runtime.views.timeline import StepRow, Timeline


class TimelineView(ScrollView, can_focus=True, inherit_bindings=False):
    """Rows of a :class:`Timeline`, all of them or those a filter keeps. The app owns the
    selection and tells the view with :meth:`select`."""

    DEFAULT_CSS = (
        """
    TimelineView {
        overflow-x: hidden;
        overflow-y: scroll;
        scrollbar-size-vertical: 1;
        background: $surface;
    }
    """
        + ink_css("TimelineView")
        + """
    TimelineView:blur > .ink--selected {
        background: $block-cursor-blurred-background;
        color: $block-cursor-blurred-foreground;
        text-style: $block-cursor-blurred-text-style;
    }
    """
    )
    COMPONENT_CLASSES = palette.COMPONENT_CLASSES

    class Clicked(Message):
        """A row was clicked."""

        def __init__(self, row: int) -> None:
            super().__init__()
            self.row = row

    def __init__(self, timeline: Timeline, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.timeline = timeline
        self.cursor = 0
        """The selected row (a row index, not a screen line)."""
        self.kept: list[int] | None = None
        """Rows a filter keeps, ascending; None shows every row."""
        self.marks: dict[int, str] = {}
        """Row -> a :data:`~govrun.cli.inspect.icons.MARKS` key, drawn in the first column."""
        self.reproduced_through: int | None = None
        """Rows 1..N were reproduced by a replay."""
        self.rows_drawn = 0
        """How many row lines were built (not cached): what virtualisation keeps small."""
        self._strips: LRUCache[tuple[int, int, bool, str], Strip] = LRUCache(1024)
        self._palette: Palette | None = None
        self._width = 0

    # --- rows and lines ------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Lines the view holds."""
        return self.timeline.rows if self.kept is None else len(self.kept)

    def line_of(self, row: int) -> int | None:
        """The line showing ``row``; None when a filter hides it."""
        if self.kept is None:
            return row if 0 <= row < self.timeline.rows else None
        at = bisect_left(self.kept, row)
        return at if at < len(self.kept) and self.kept[at] == row else None

    def row_at(self, line: int) -> int:
        """The row on ``line`` (clamped to the rows shown)."""
        line = max(0, min(line, self.count - 1))
        return line if self.kept is None else self.kept[line]

    def shows(self, row: int) -> bool:
        return self.line_of(row) is not None

    # --- updates from the app ------------------------------------------------------------

    def sync(self) -> None:
        """The timeline grew or the filter changed: resize and redraw."""
        self.virtual_size = Size(0, self.count)
        self._strips.clear()
        self.refresh()

    def set_filter(self, rows: list[int] | None) -> None:
        self.kept = rows
        self.scroll_to(y=0, animate=False)
        self.sync()

    def select(self, row: int) -> None:
        """Move the highlight to ``row`` and keep it in view."""
        old = self.line_of(self.cursor)
        self.cursor = row
        new = self.line_of(row)
        for line in (old, new):
            if line is not None:
                self.refresh_line(line)
        if new is not None:
            self.scroll_to_line(new)

    def scroll_to_line(self, line: int) -> None:
        height = self.scrollable_content_region.height
        if height <= 0:
            return  # not laid out yet: on_resize brings the cursor into view
        top = round(self.scroll_offset.y)
        if line < top:
            self.scroll_to(y=line, animate=False)
        elif line >= top + height:
            self.scroll_to(y=line - height + 1, animate=False)

    @property
    def at_bottom(self) -> bool:
        """The last line is on screen (the view follows a live run from here)."""
        height = self.scrollable_content_region.height
        return round(self.scroll_offset.y) + height >= self.count

    def mark(self, marks: dict[int, str], reproduced_through: int | None) -> None:
        self.marks = marks
        self.reproduced_through = reproduced_through
        self._strips.clear()
        self.refresh()

    # --- drawing -------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._palette = None
        self._strips.clear()

    def on_resize(self) -> None:
        width = self.scrollable_content_region.width
        if width != self._width:  # a taller or shorter view reuses its lines
            self._width = width
            self._strips.clear()
        line = self.line_of(self.cursor)
        if line is not None:
            self.call_after_refresh(self.scroll_to_line, line)

    def on_click(self, event: events.Click) -> None:
        if self.count:
            self.post_message(self.Clicked(self.row_at(event.y + round(self.scroll_offset.y))))

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        line = y + round(self.scroll_offset.y)
        if self._palette is None:
            self._palette = Palette.of(self)
        if not 0 <= line < self.count or width <= 0:
            return Strip.blank(width, self._palette.base)
        row = self.row_at(line)
        mark = self._mark(row)
        key = (row, width, row == self.cursor, mark)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._draw(row, width, row == self.cursor, mark, self._palette)
            self._strips[key] = strip
            self.rows_drawn += 1
        return strip

    def _mark(self, row: int) -> str:
        if row in self.marks:
            return self.marks[row]
        if self.reproduced_through is not None and 0 < row <= self.reproduced_through:
            return "reproduced"
        return ""

    def _draw(self, row: int, width: int, selected: bool, mark: str, p: Palette) -> Strip:
        digits = max(2, len(str(self.timeline.rows - 1)))
        try:
            info: StepRow | None = self.timeline.row(row)
        except (GovrunError, OSError, ValueError) as exc:
            info, problem = None, f"cannot read this step: {exc}"
        if info is not None:
            icon = status_icon(info.status, row)
            action = info.action
            tokens = _compact(info.tokens) if row and info.tokens and width >= 34 else ""
        else:
            icon = status_icon("?", row)
            action, tokens = problem, ""
        marker = MARKS[mark] if mark else None
        room = width - (digits + 5) - (len(tokens) + 1 if tokens else 0)
        pieces = [
            (marker.glyph if marker else " ", p.ink(marker.ink) if marker else p.base),
            (str(row).rjust(digits) + " ", p.muted),
            (two_cells(icon.glyph) + " ", p.ink(icon.ink)),
            (clip_cells(action, max(room, 0)), p.base),
        ]
        if tokens:
            pieces.append((" " + tokens, p.muted))
        segments = [Segment(text, p.selected if selected else style) for text, style in pieces]
        return Strip(segments).adjust_cell_length(width, p.selected if selected else p.base)


_CONTROL = {**{c: " " for c in range(32)}, 0x7F: " "}


def clip_cells(text: str, width: int) -> str:
    """``text`` in exactly ``width`` cells, with an ellipsis when cut (control characters,
    which a terminal would act on, become spaces)."""
    text = text.translate(_CONTROL)
    if width <= 0:
        return ""
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…"


def _compact(tokens: int) -> str:
    """Token counts in five cells or fewer: 939, 1.2k, 12k, 1.3M."""
    if tokens < 1000:
        return str(tokens)
    if tokens < 10_000:
        return f"{tokens / 1000:.1f}k"
    if tokens < 1_000_000:
        return f"{tokens // 1000}k"
    return f"{tokens / 1_000_000:.1f}M"
