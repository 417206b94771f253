"""The detail pane: a one-line step summary, tabs, and the active tab's sections.

Only the active tab is drawn, and it is drawn with the Line API: the sections are rendered
to strips once per selection (at the pane's width), so the pane knows the line each event
starts on and can bring the selected event into view exactly.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import RenderableType
from rich.padding import Padding
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static, Tab, Tabs

from govrun.cli.inspect import palette
from govrun.cli.inspect.palette import Palette, ink_css
from govrun.cli.inspect.sections import TABS, Section, Signatures, Step, build, raw_body

Sections = Callable[[Palette], list[Section]]
"""Builds a tab's sections under a palette (called again when the theme changes)."""


class SectionView(ScrollView, can_focus=True):
    """Sections drawn as strips; the selected section's title is highlighted and kept in
    view. ``text`` holds what is shown, as plain text."""

    DEFAULT_CSS = """
    SectionView {
        overflow-x: hidden;
        overflow-y: scroll;
        scrollbar-size-vertical: 1;
        background: $surface;
    }
    """ + ink_css("SectionView")
    COMPONENT_CLASSES = palette.COMPONENT_CLASSES

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._sections: Sections = lambda p: []
        self._selected: int | None = None
        self._strips: list[Strip] = []
        self._offsets: dict[int, int] = {}
        self._width = 0
        self._palette: Palette | None = None
        self.text = ""

    def show(self, sections: Sections, selected: int | None, *, top: bool) -> None:
        """Draw ``sections``; ``top`` starts at the first line (a new step), otherwise the
        view moves only as far as needed to show the selected section."""
        self._sections = sections
        self._selected = selected
        self._layout()
        if top:
            self.scroll_to(y=0, animate=False)
        self._reveal(top=top)

    def _layout(self) -> None:
        width = self.scrollable_content_region.width
        self._width = width
        if width <= 0:
            return
        if self._palette is None:
            self._palette = Palette.of(self)
        p = self._palette
        console = self.app.console
        options = console.options.update(width=width, height=None, highlight=False)
        strips: list[Strip] = []
        offsets: dict[int, int] = {}
        for section in self._sections(p):
            if section.seq is not None:
                offsets.setdefault(section.seq, len(strips))
            chosen = section.seq is not None and section.seq == self._selected
            head = Text("▶ " if chosen else "  ", p.selected if chosen else p.muted)
            head.append_text(section.title)
            head.no_wrap, head.overflow = True, "ellipsis"
            if chosen:
                head.stylize(p.selected)
            parts: list[RenderableType] = [head]
            if section.body is not None:
                parts.append(Padding(section.body, (0, 0, 0, 4)))
            for part in parts:
                lines = console.render_lines(
                    part, options, style=p.selected if part is head and chosen else p.base
                )
                strips.extend(Strip(line, width) for line in lines)
        self._strips = strips
        self._offsets = offsets
        self.text = "\n".join(strip.text.rstrip() for strip in strips)
        self.virtual_size = Size(0, len(strips))
        self.refresh()

    def _reveal(self, *, top: bool) -> None:
        line = self._offsets.get(self._selected) if self._selected is not None else None
        height = self.scrollable_content_region.height
        if line is None or height <= 0:
            return
        first = 0 if top else round(self.scroll_offset.y)
        if not first <= line < first + height - 1:
            self.scroll_to(y=max(0, line - 1), animate=False)

    def render_line(self, y: int) -> Strip:
        line = y + round(self.scroll_offset.y)
        width = self.scrollable_content_region.width
        if 0 <= line < len(self._strips):
            return self._strips[line].adjust_cell_length(width, self.rich_style)
        return Strip.blank(width, self.rich_style)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._palette = None
        if self.is_mounted:
            self.call_after_refresh(self._layout)

    def on_resize(self) -> None:
        if self.scrollable_content_region.width != self._width:
            self._layout()
            self._reveal(top=False)


class DetailPane(Vertical):
    """The selected step: its summary line, the tabs, and the active tab."""

    DEFAULT_CSS = """
    DetailPane { width: 1fr; }
    DetailPane > #step-summary {
        height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis;
    }
    """

    class SignaturesWanted(Message):
        """The Approval tab is shown: the app audits the approvals if it has not yet for
        the trace as long as it is now."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.step: Step | None = None
        self.selected: int | None = None
        self.banner: Section | None = None
        """A note shown above the sections of this step (a replay divergence)."""
        self.signatures: Signatures | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="step-summary")
        yield Tabs(*(Tab(label, id=f"tab-{name}") for name, label in TABS), id="tabs")
        yield SectionView(id="sections")

    @property
    def tab(self) -> str:
        active = self.query_one(Tabs).active
        return active.removeprefix("tab-") if active else TABS[0][0]

    @property
    def view(self) -> SectionView:
        return self.query_one(SectionView)

    def set_tab(self, name: str) -> None:
        self.query_one(Tabs).active = f"tab-{name}"

    def show(self, step: Step, summary: str, selected: int, *, new_step: bool) -> None:
        self.step, self.selected = step, selected
        self.query_one("#step-summary", Static).update(summary, layout=False)
        self._draw(top=new_step)

    def set_signatures(self, signatures: Signatures | None) -> None:
        self.signatures = signatures
        if self.tab == "approval":
            self._draw(top=False)

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        self._draw(top=True)

    def _draw(self, *, top: bool) -> None:
        step, tab = self.step, self.tab
        if step is None:
            return
        if tab == "approval":
            self.post_message(self.SignaturesWanted())  # the app audits once per trace length
        selected, signatures, banner = self.selected, self.signatures, self.banner

        def sections(p: Palette) -> list[Section]:
            found = build(tab, step, p, signatures)
            if tab == "raw" and selected is not None:
                found = [
                    Section(s.seq, s.title, raw_body(step.stored(s.seq), p))
                    if s.seq == selected
                    else s
                    for s in found
                ]
            return [banner, *found] if banner is not None else found

        self.view.show(sections, selected, top=top)
