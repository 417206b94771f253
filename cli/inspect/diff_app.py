"""``govrun inspect A --diff B``: two runs side by side, the first divergence selected."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.markup import escape
from textual.reactive import var
from textual.widgets import Footer, Static

from govrun.cli.inspect.base import EDGES_AND_PAGES, InspectorApp
from govrun.cli.inspect.detail import SectionView
from govrun.cli.inspect.diff_view import DiffTimeline, Pair, align_pairs, pair_sections
from govrun.cli.inspect.header import STATUS_TOKEN
from govrun.cli.inspect.icons import MARKS, STATUS_ICONS
from govrun.cli.inspect.prompt import PromptBar
from govrun.runtime.views.diff import TrajectoryDiff
from govrun.runtime.views.trajectory import Trajectory

MOVE = Binding.Group("pair")
DIFFERENCE = Binding.Group("difference")


class DiffApp(InspectorApp):
    """Aligned timelines above, the selected pair's differences below."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("j,down", "move(1)", "next pair", group=MOVE),
        Binding("k,up", "move(-1)", "previous pair", group=MOVE),
        Binding("d,n,f", "difference(1)", "next difference", group=DIFFERENCE),
        Binding("D,p,F", "difference(-1)", "previous difference", group=DIFFERENCE),
        *EDGES_AND_PAGES,
        Binding("colon", "jump", "jump", tooltip="jump to step N (of a, else of b)"),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit", show=False),
    ]
    LEGENDS: ClassVar = [
        ("Marks (first column)", [MARKS["changed"], MARKS["inserted"], MARKS["removed"]]),
        ("Step icons", list(STATUS_ICONS.values())),
    ]

    index: var[int] = var(0, init=False, always_update=True)
    """The selected pair. Set to the first divergence on mount, which may be pair 0, the
    default: every setting must draw, or the screen opens with an empty header and detail."""

    def __init__(self, diff: TrajectoryDiff) -> None:
        super().__init__()
        self.diff = diff
        self.pairs: list[Pair] = align_pairs(diff)

    def compose(self) -> ComposeResult:
        yield Static("", id="header")
        yield DiffTimeline(self.pairs, id="pairs")
        yield SectionView(id="pair-detail")
        yield PromptBar(id="prompt")
        yield Footer(show_command_palette=False)

    @property
    def view(self) -> DiffTimeline:
        return self.query_one(DiffTimeline)

    def on_mount(self) -> None:
        self.view.focus()
        first = next((n for n, p in enumerate(self.pairs) if p.kind != "same"), None)
        if first is None:
            self.notify("no divergence: every step matches")
        self.index = first or 0

    def watch_index(self, old: int, new: int) -> None:
        self.view.select(new)
        if self.pairs:
            pair = self.pairs[new]
            self.query_one("#pair-detail", SectionView).show(
                lambda p: pair_sections(pair, p), None, top=True
            )
        self._refresh_header()

    # --- moving -------------------------------------------------------------------------------

    def _go(self, index: int) -> None:
        if not self.pairs:
            return
        clamped = max(0, min(index, len(self.pairs) - 1))
        if clamped != index:
            self.bell()
        self.index = clamped

    def action_move(self, delta: int) -> None:
        self._go(self.index + delta)

    def action_page(self, direction: int) -> None:
        height = max(1, self.view.scrollable_content_region.height - 1)
        self._go(max(0, min(len(self.pairs) - 1, self.index + direction * height)))

    def action_edge(self, end: int) -> None:
        self._go(len(self.pairs) - 1 if end else 0)

    def action_difference(self, direction: int) -> None:
        order = (
            range(self.index + 1, len(self.pairs))
            if direction > 0
            else range(self.index - 1, -1, -1)
        )
        found = next((n for n in order if self.pairs[n].kind != "same"), None)
        if found is None:
            self.notify("no more differences that way")
        else:
            self.index = found

    def action_jump(self) -> None:
        self.query_one(PromptBar).ask("jump", "jump to step (of a, else of b), enter")

    @on(PromptBar.Answered)
    def _answered(self, event: PromptBar.Answered) -> None:
        number = event.value.removeprefix("step").strip()
        if not number.isdigit():
            self.notify(f"'{event.value}' is not a step number", severity="warning")
            return
        step = int(number)
        for side in ("a", "b"):
            for n, pair in enumerate(self.pairs):
                s = pair.a if side == "a" else pair.b
                if s is not None and s.step == step:
                    self.index = n
                    return
        self.notify(f"neither run has a step {step}", severity="warning")

    @on(PromptBar.Closed)
    def _prompt_closed(self) -> None:
        self.view.focus()

    @on(DiffTimeline.Clicked)
    def _clicked(self, event: DiffTimeline.Clicked) -> None:
        self.index = event.index

    # --- header -------------------------------------------------------------------------------

    def _refresh_header(self) -> None:
        d = self.diff
        same_name = d.a.path.name == d.b.path.name
        sides = " [$text-muted]│[/] ".join(
            f"[b]{label}[/b] {_side(t, same_name)}" for label, t in (("a", d.a), ("b", d.b))
        )
        first = d.first_divergence
        if first is None:
            verdict = "[b $text-success]no divergence[/]: every step matches"
        else:
            counts = ", ".join(f"{d.count(k)} {k}" for k in ("changed", "inserted", "removed"))
            at = _at(first.a_step, first.b_step)
            verdict = f"[b $text-warning]first divergence[/] {at}{escape(first.summary)} · {counts}"
        where = f"pair {self.index + 1}/{len(self.pairs)}"
        self.query_one("#header", Static).update(f"{sides}\n{where} · {verdict}")


def _at(a: int | None, b: int | None) -> str:
    if a is None and b is None:
        return ""
    if a == b:
        return f"step {a}: "
    return f"step {a if a is not None else '-'} (a) / {b if b is not None else '-'} (b): "


def _side(t: Trajectory, parent: bool) -> str:
    """File (with its folder when both files have the same name), agent, status, steps."""
    token = STATUS_TOKEN.get(t.totals.status, "$text-warning")
    name = f"{t.path.parent.name}/{t.path.name}" if parent else t.path.name
    return (
        f"[$text-muted]{escape(name)}[/] {escape(t.agent)} "
        f"[{token}]{escape(t.totals.status)}[/] {t.totals.steps:,} steps"
    )
