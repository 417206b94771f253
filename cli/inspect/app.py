"""``govrun inspect TRACE``: step through a run like a debugger session.

The app owns one piece of state, the :class:`Cursor` (the selected row and the selected
event in it); every key moves it and ``watch_cursor`` redraws what depends on it. The
timeline and the trace are read lazily (:class:`~govrun.runtime.views.timeline.Timeline`), so a
trace of any size opens at once; a live run is followed by polling the file for appended events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.markup import escape
from textual.reactive import var
from textual.timer import Timer
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState, get_current_worker

from govrun.cli.inspect.base import EDGES_AND_PAGES, RECOVERABLE, InspectorApp, guarded, message_of
from govrun.cli.inspect.detail import DetailPane
from govrun.cli.inspect.filter import FilterScreen, StepFilter
from govrun.cli.inspect.header import Where, run_line, where_line
from govrun.cli.inspect.icons import MARKS, START, STATUS_ICONS
from govrun.cli.inspect.prompt import PromptBar
from govrun.cli.inspect.replaying import ReplayVerdict, divergence_banner, replay_to
from govrun.cli.inspect.sections import HOME_TAB, TABS, Signatures
from govrun.cli.inspect.steps import StepLoader, summary
from govrun.cli.inspect.timeline_view import TimelineView
from govrun.runtime.views.timeline import Timeline

if TYPE_CHECKING:
    from govrun.runtime.replayer.session import Divergence

Finder = Callable[[int, bool], int | None]
"""(after seq, backward) -> the next matching seq: Timeline.search or next_failure."""

STEP = Binding.Group("step")
EVENT = Binding.Group("event")


class Cursor(NamedTuple):
    row: int
    seq: int


class InspectApp(InspectorApp):
    """One trace: header, step timeline, detail tabs, footer."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("j,down", "step(1)", "next step", group=STEP),
        Binding("k,up", "step(-1)", "previous step", group=STEP),
        Binding("n,right", "event(1)", "next event", group=EVENT),
        Binding("p,left", "event(-1)", "previous event", group=EVENT),
        *EDGES_AND_PAGES,
        Binding("colon", "jump", "jump", tooltip="jump to step N"),
        Binding("f", "failure(1)", "fail", tooltip="next event with a failure class"),
        Binding("F", "failure(-1)", "previous failure", show=False),
        Binding("slash", "search", "search", tooltip="search every payload, from the event"),
        Binding("N", "search_again(1)", "next match", show=False),
        Binding("P", "search_again(-1)", "previous match", show=False),
        Binding("t", "filter", "filter", tooltip="keep steps with an event type or failure"),
        Binding("x", "clear_filter", "clear filter", show=False),
        Binding("r", "replay", "replay", tooltip="re-run deterministically up to this step"),
        *(
            Binding(str(n), f"tab('{name}')", "", show=False)
            for n, (name, label) in enumerate(TABS, start=1)
        ),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit", show=False),
    ]
    HELP_EXTRA: ClassVar = [
        ("1–7", "tabs: " + ", ".join(label for _, label in TABS)),
        ("tab", "focus the detail pane (arrows then scroll it); tab again to come back"),
        ("click", "select a step"),
    ]
    LEGENDS: ClassVar = [
        ("Step icons", [START, *STATUS_ICONS.values()]),
        ("Marks (first column)", [MARKS["reproduced"], MARKS["diverged"]]),
    ]

    cursor: var[Cursor] = var(Cursor(0, 0), init=False)

    def __init__(
        self,
        timeline: Timeline,
        *,
        follow: bool | None = None,
        poll_s: float = 0.25,
        live: bool = True,
        damage: str | None = None,
    ) -> None:
        super().__init__()
        self.tl = timeline
        self.live = live
        """Whether a run is writing the trace (a trace without run_finished may be a crash)."""
        self.damage = damage
        """What verify found wrong with the trace, said in the header before anything else."""
        self.following = not timeline.finished and (follow or (follow is None and live))
        """Polling for appended events: by default while the trace has no run_finished."""
        self.poll_s = poll_s
        self.step_filter: StepFilter | None = None
        self.query_text = ""
        self.new_steps = 0
        self.pending: str | None = None
        self.replay_note = ""
        self.replay_ok = True
        self.divergence: Divergence | None = None
        self.signatures: Signatures | None = None
        self._audited_at = -1
        self._poller: Timer | None = None
        self.steps = StepLoader(timeline)

    # --- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("", id="header")
        with Horizontal(id="body"):
            yield TimelineView(self.tl, id="timeline")
            yield DetailPane(id="detail")
        yield PromptBar(id="prompt")
        yield Footer(show_command_palette=False)

    @property
    def view(self) -> TimelineView:
        return self.query_one(TimelineView)

    @property
    def detail(self) -> DetailPane:
        return self.query_one(DetailPane)

    def on_mount(self) -> None:
        self.view.sync()
        self.view.focus()
        start = Cursor(0, 0)
        if not self.tl.finished:
            self.pending = self._pending()
        if self.following and not self.tl.finished:
            self._poller = self.set_interval(self.poll_s, self.poll)
            start = Cursor(self.tl.rows - 1, self.tl.events - 1)
        self.set_reactive(InspectApp.cursor, start)
        self.watch_cursor(Cursor(-1, -1), start)

    # --- the cursor ----------------------------------------------------------------------------

    def watch_cursor(self, old: Cursor, new: Cursor) -> None:
        self.view.select(new.row)
        self._show(new_step=old.row != new.row)
        self._refresh_header()

    @guarded("cannot show this step")
    def _show(self, *, new_step: bool, fresh: bool = False) -> None:
        row, seq = self.cursor
        info = self.tl.row(row)
        pane = self.detail
        d = self.divergence
        pane.banner = divergence_banner(d) if d is not None and d.step == row else None
        pane.signatures = self.signatures
        pane.show(self.steps.load(row, seq, fresh=fresh), summary(info), seq, new_step=new_step)

    def go(self, seq: int, *, open_tab: bool = True) -> None:
        """Select event ``seq`` (and its row); ``open_tab`` shows the tab made for its type,
        unless the user is reading the Raw tab."""
        seq = max(0, min(seq, self.tl.events - 1))
        if open_tab and self.detail.tab != "raw":
            home = HOME_TAB.get(self.tl.type_of(seq))
            if home is not None and home != self.detail.tab:
                self.detail.set_tab(home)
        self.cursor = Cursor(self.tl.row_of(seq), seq)

    def go_row(self, row: int, *, last_event: bool = False) -> None:
        first, last = self.tl.seq_range(row)
        if row == self.tl.rows - 1:
            self.new_steps = 0
        self.cursor = Cursor(row, last if last_event else first)

    # --- stepping -----------------------------------------------------------------------------

    def action_step(self, delta: int) -> None:
        line = self.view.line_of(self.cursor.row)
        target = (line if line is not None else 0) + delta
        if 0 <= target < self.view.count:
            self.go_row(self.view.row_at(target))
        else:
            self.bell()

    def action_page(self, direction: int) -> None:
        height = max(1, self.view.scrollable_content_region.height - 1)
        line = self.view.line_of(self.cursor.row) or 0
        target = max(0, min(self.view.count - 1, line + direction * height))
        self.go_row(self.view.row_at(target))

    def action_edge(self, end: int) -> None:
        self.go_row(self.view.row_at(self.view.count - 1 if end else 0))

    def action_event(self, delta: int) -> None:
        """Next or previous event, crossing into the next or previous shown step."""
        seq = self.cursor.seq + delta
        if not 0 <= seq < self.tl.events:
            self.bell()
            return
        row = self.tl.row_of(seq)
        if not self.view.shows(row):
            line = self.view.line_of(self.cursor.row)
            target = (line if line is not None else 0) + delta
            if not 0 <= target < self.view.count:
                self.bell()
                return
            first, last = self.tl.seq_range(self.view.row_at(target))
            seq = first if delta > 0 else last
        self.go(seq)

    def action_tab(self, name: str) -> None:
        self.detail.set_tab(name)

    @on(TimelineView.Clicked)
    def _clicked(self, event: TimelineView.Clicked) -> None:
        self.go_row(event.row)

    # --- finding ------------------------------------------------------------------------------

    def action_jump(self) -> None:
        self.query_one(PromptBar).ask("jump", f"jump to step (0–{self.tl.rows - 1}), enter")

    def action_search(self) -> None:
        self.query_one(PromptBar).ask(
            "search", "search payloads (any case), enter", self.query_text
        )

    @on(PromptBar.Answered)
    def _answered(self, event: PromptBar.Answered) -> None:
        if event.mode == "jump":
            self.jump(event.value)
        else:
            self.query_text = event.value
            self.action_search_again(1)

    @on(PromptBar.Closed)
    def _prompt_closed(self) -> None:
        self.view.focus()

    def jump(self, text: str) -> None:
        number = text.removeprefix("step").strip()
        if not number.isdigit():
            self.notify(f"'{text}' is not a step number", severity="warning")
            return
        last = self.tl.rows - 1
        row = min(int(number), last)
        if int(number) > last:
            self.notify(f"the trace has {last} steps: showing the last", severity="warning")
        if not self.view.shows(row):
            self._set_filter(None)
            self.notify("the filter hid that step: filter cleared")
        self.go_row(row)

    @guarded("search failed")
    def action_search_again(self, direction: int) -> None:
        if not self.query_text:
            self.action_search()
            return
        text = self.query_text
        found = self._find(
            lambda after, back: self.tl.search(text, after=after, backward=back), direction
        )
        if found is None:
            self.notify(f"'{text}' is nowhere in the trace", severity="warning")
        else:
            self.go(found)

    @guarded("cannot look for failures")
    def action_failure(self, direction: int) -> None:
        found = self._find(
            lambda after, back: self.tl.next_failure(after=after, backward=back), direction
        )
        if found is None:
            self.notify("no event in the trace carries a failure class")
        else:
            self.go(found)

    def _find(self, finder: Finder, direction: int) -> int | None:
        """The next match after (or before) the cursor in a shown step, wrapping once."""
        backward = direction < 0
        start = self.cursor.seq
        for wrapped in (False, True):
            seq = finder(start, backward)
            while seq is not None and not self.view.shows(self.tl.row_of(seq)):
                first, last = self.tl.seq_range(self.tl.row_of(seq))
                seq = finder(first if backward else last, backward)
            if seq is not None:
                if wrapped:
                    self.notify("wrapped around the trace")
                return seq
            start = self.tl.events if backward else -1
        return None

    # --- filtering ----------------------------------------------------------------------------

    @guarded("cannot filter")
    def action_filter(self) -> None:
        self.push_screen(
            FilterScreen(self.tl.failure_classes(), active=self.step_filter), self._set_filter
        )

    def action_clear_filter(self) -> None:
        if self.step_filter is not None:
            self._set_filter(None)

    @guarded("cannot filter")
    def _set_filter(self, choice: StepFilter | None) -> None:
        if choice is None or choice.kind == "clear":
            self.step_filter = None
            self.view.set_filter(None)
        else:
            rows = self._matching(choice)
            if not rows:
                self.notify(f"no step has {choice.label}", severity="warning")
                return
            self.step_filter = choice
            self.view.set_filter(rows)
        row = self.cursor.row
        if not self.view.shows(row):
            visible = self.view.kept or [row]
            row = next((r for r in visible if r >= row), visible[-1])
            self.go_row(row)
        else:
            self.view.select(row)
            self._refresh_header()

    def _matching(self, choice: StepFilter) -> list[int]:
        if choice.kind == "type":
            return self.tl.rows_matching(types=[choice.value])
        return self.tl.rows_matching(failure_class=choice.value)

    # --- replay -------------------------------------------------------------------------------

    def action_replay(self) -> None:
        step = self.cursor.row
        self.replay_note, self.replay_ok = f"replaying to step {step}…", True
        self._refresh_header()
        self._replay(step)

    @work(thread=True, exclusive=True, group="replay", exit_on_error=False)
    def _replay(self, step: int) -> None:
        verdict = replay_to(self.tl.path, step)
        if not get_current_worker().is_cancelled:  # a newer `r` replaced this one
            self.call_from_thread(self._replayed, verdict)

    def _replayed(self, v: ReplayVerdict) -> None:
        d = self.divergence = v.divergence
        if d is not None:
            self.replay_note, self.replay_ok = (
                f"◆ replay diverged at step {d.step} ({d.event})",
                False,
            )
            self.view.mark({d.step: "diverged"}, max(0, d.step - 1))
            self.notify(
                d.headline or d.message, title="replay diverged", severity="error", timeout=15
            )
            if d.seq < self.tl.events and self.tl.row_of(d.seq) == d.step:
                self.go(d.seq)
            else:
                self.go_row(min(d.step, self.tl.rows - 1))
        elif v.reproduced:
            self.replay_note, self.replay_ok = f"replay to step {v.step}: reproduces ✓", True
            self.view.mark({}, v.step)
            self.notify(f"steps 1–{v.step} replay event for event", title="reproduces ✓")
        else:
            self.replay_note, self.replay_ok = f"replay ended {v.ended}", False
            self.notify(v.ended, title="replay did not reproduce", severity="warning")
        self._show(new_step=False)
        self._refresh_header()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state is not WorkerState.ERROR or worker.error is None:
            return
        if worker.group == "replay":
            self.replay_note, self.replay_ok = "replay failed", False
            self._refresh_header()
            self.fail("replay failed", worker.error)
        elif worker.group == "audit":
            self.fail("cannot check signatures", worker.error)

    # --- signatures ---------------------------------------------------------------------------

    @on(DetailPane.SignaturesWanted)
    def _signatures_wanted(self) -> None:
        if self._audited_at != self.tl.events:
            self._audited_at = self.tl.events
            self._audit()

    @work(thread=True, exclusive=True, group="audit", exit_on_error=False)
    def _audit(self) -> None:
        from govrun.runtime.trace.verify import verify_trace

        signatures = Signatures.of(verify_trace(self.tl.path))
        if not get_current_worker().is_cancelled:
            self.call_from_thread(self._audited, signatures)

    def _audited(self, signatures: Signatures) -> None:
        self.signatures = signatures
        self.detail.set_signatures(signatures)

    # --- following a live run -----------------------------------------------------------------

    def poll(self) -> None:
        """Pick up appended events; follow the newest step if the user was on the last one.
        A trace that cannot be read any more (deleted, truncated) ends the following."""
        try:
            self.query_one(TimelineView)
        except NoMatches:
            return  # the app is closing
        try:
            self._poll()
        except RECOVERABLE as exc:
            self._stop_polling()
            self._refresh_header()
            self.fail("stopped following the trace", exc)

    def _poll(self) -> None:
        last_row, last_seq = self.tl.rows - 1, self.tl.events - 1
        was_at_end = self.cursor.row == last_row and self.view.at_bottom
        if not self.tl.refresh():
            return
        grew = self.tl.rows - 1 - last_row
        if self.step_filter is not None:
            self.view.kept = self._matching(self.step_filter) or None
        self.view.sync()
        self.pending = self._pending()
        if was_at_end and self.view.shows(self.tl.rows - 1):
            self.cursor = Cursor(self.tl.rows - 1, self.tl.events - 1)
        else:
            self.new_steps += grew
            if self.cursor.row >= last_row or self.cursor.seq == last_seq:
                self._show(new_step=False, fresh=True)
        if self.tl.finished:
            self._stop_polling()
            status = self.tl.header().status
            self.notify(f"the run finished: {status}", title="run finished")
        self._refresh_header()

    def _pending(self) -> str | None:
        try:
            return self.tl.pending()
        except RECOVERABLE:
            return None

    def _stop_polling(self) -> None:
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
        self.following = False
        self.pending = None

    # --- the header ---------------------------------------------------------------------------

    def _refresh_header(self) -> None:
        row, seq = self.cursor
        filt = ""
        if self.step_filter is not None:
            filt = f"{self.step_filter.label} ({self.view.count:,} steps)"
        where = Where(
            file=self.tl.path.name,
            row=row,
            last_row=self.tl.rows - 1,
            seq=seq,
            event_type=self.tl.type_of(seq) if seq < self.tl.events else "?",
            filter=filt,
            replay=self.replay_note,
            replay_ok=self.replay_ok,
            new_steps=self.new_steps,
        )
        try:
            line = run_line(
                self.tl.header(),
                self.pending,
                live=self.live or self.tl.finished,
                damage=self.damage,
            )
        except RECOVERABLE as exc:
            line = f"[$text-error]{escape(message_of(exc))}[/]"
        self.query_one("#header", Static).update(f"{line}\n{where_line(where)}", layout=False)
