"""`govrun inspect`: Pilot presses the keys, the tests assert what is selected and shown.

Traces are real: the golden quickstart run (5 steps: reads, two denials, a verified write,
a shell call, the answer), runs made by the governed loop with scripted models, signed
approval runs, and a trace written event by event while the app follows it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
import typer
from textual.app import App

from govrun.cli.commands.inspect import run_app
from govrun.cli.inspect.app import Cursor, InspectApp
from govrun.cli.inspect.diff_app import DiffApp
from govrun.cli.inspect.filter import FilterScreen, StepFilter
from govrun.cli.inspect.help import HelpScreen
from govrun.cli.inspect.palette import Palette
from govrun.cli.inspect.timeline_view import TimelineView
from govrun.runtime.ports import FixedClock
from govrun.runtime.trace import events as ev
from govrun.runtime.trace.reader import read_stored
from govrun.runtime.trace.writer import TraceWriter
from govrun.runtime.views.diff import diff_trajectories
from govrun.runtime.views.timeline import Timeline
from govrun.runtime.views.trajectory import load_trajectory
from tests.support.agents import answer, call, calls, fs_tools, run_in, scripted_manifest
from tests.support.cli import govrun
from tests.support.pty import Screen
from tests.support.signed_runs import allow, ask, write_signed_run
from tests.support.traces import rechain
from tests.support.tui import asynced, notices, screen_text, wait_for

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "quickstart.jsonl"
"""Rows: 0 run started (seq 0), 1 list+read (1-12), 2 two denials (13-20), 3 verified write
(21-30), 4 shell call (31-39), 5 answer (40-46)."""


def inspect_app(path: Path, **kwargs: object) -> InspectApp:
    return InspectApp(Timeline(path), **kwargs)  # type: ignore[arg-type]


def header(app: InspectApp | DiffApp) -> str:
    return str(app.query_one("#header").visual.plain)  # type: ignore[attr-defined]


def detail(app: InspectApp) -> str:
    return app.detail.view.text


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real runs that part at step 2 (b writes c.md and reads it back)."""
    folder = tmp_path_factory.mktemp("inspect-runs")
    manifest = scripted_manifest(tools=fs_tools("read", "write"))
    first = [
        calls(call("fs_read", {"path": "a.md"})),
        calls(call("fs_write", {"path": "b.md", "content": "x"})),
        answer("done"),
    ]
    second = [
        calls(call("fs_read", {"path": "a.md"})),
        calls(call("fs_write", {"path": "c.md", "content": "x"})),
        calls(call("fs_read", {"path": "c.md"})),
        answer("done"),
    ]
    traces = {}
    for name, script in (("a", first), ("b", second)):
        result, _ = run_in(folder / name, manifest, script=script, files={"a.md": "one\n"})
        traces[name] = Path(result.trace_path)
    return traces


# --- stepping -------------------------------------------------------------------------------


@asynced
async def test_stepping_through_steps_with_every_key() -> None:
    app = inspect_app(GOLDEN)
    async with app.run_test(size=(100, 30)) as pilot:
        assert app.cursor == Cursor(0, 0)
        assert "quickstart · completed · 5 steps" in header(app)
        moves = [
            ("j", Cursor(1, 1)),
            ("down", Cursor(2, 13)),
            ("k", Cursor(1, 1)),
            ("up", Cursor(0, 0)),
            ("G", Cursor(5, 40)),
            ("g", Cursor(0, 0)),
            ("end", Cursor(5, 40)),
            ("home", Cursor(0, 0)),
            ("pagedown", Cursor(5, 40)),
            ("pageup", Cursor(0, 0)),
        ]
        for key, expected in moves:
            await pilot.press(key)
            assert app.cursor == expected, key
            assert app.view.cursor == expected.row
        await pilot.press("k")  # nothing above row 0
        assert app.cursor == Cursor(0, 0)
        await pilot.press("j", "j")
        assert "step 2 · ✗ denied (policy_denied)" in screen_text(app)
        assert "step 2/5 · event 13 step_started" in header(app)
        await pilot.click(TimelineView, offset=(6, 4))  # the mouse selects too
        assert app.cursor == Cursor(4, 31)


@asynced
async def test_stepping_event_by_event_opens_each_events_tab() -> None:
    app = inspect_app(GOLDEN)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n")
        assert app.cursor == Cursor(1, 1)  # crossed into step 1 (step_started)
        expected = [
            ("n", 2, "prompt"),
            ("n", 3, "reply"),
            ("right", 4, "tools"),
            ("n", 5, "policy"),
            ("p", 4, "tools"),
            ("left", 3, "reply"),
        ]
        for key, seq, tab in expected:
            await pilot.press(key)
            assert (app.cursor.seq, app.detail.tab) == (seq, tab), key
        assert "▶ #3 model_response" in detail(app)
        await pilot.press("G", "p")  # back across the boundary: the last event of step 4
        assert app.cursor == Cursor(4, 39)
        await pilot.press("7")  # Raw: every event of the step, the selected one expanded
        assert app.detail.tab == "raw"
        await pilot.press("p")
        assert app.cursor == Cursor(4, 38) and app.detail.tab == "raw"
        text = detail(app)
        assert "▶ #38 verification" in text and '"check": "exit_code"' in text
        assert "#31 step_started" in text


@asynced
async def test_the_tabs_show_prompt_reply_tools_policy_checks() -> None:
    app = inspect_app(GOLDEN)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("j")
        assert "Read the meeting notes" in detail(app)  # the prompt's user message
        await pilot.press("2")
        assert "Let me look at the workspace first." in detail(app)
        await pilot.press("3")
        assert "finished · list_files · ✓ ok" in detail(app)
        await pilot.press("j", "4")
        assert "deny · rule no-dotenv" in detail(app)
        assert "denied by rule no-dotenv: .env files hold secrets" in detail(app)
        await pilot.press("j", "6")
        assert "file_contains (has-title) · ✓ passed" in detail(app)
        await pilot.press("5")
        assert "Nothing went to the approval gate in step 3." in detail(app)
        await pilot.press("g", "4")  # row 0: the policy in force
        assert "policy in force · default deny" in detail(app)


# --- finding --------------------------------------------------------------------------------


@asynced
async def test_jump_to_a_step() -> None:
    app = inspect_app(GOLDEN)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("colon", "3", "enter")
        assert app.cursor == Cursor(3, 21)
        assert app.focused is app.view  # the prompt closed, focus is back
        await pilot.press("colon", "9", "9", "enter")
        assert app.cursor.row == 5
        assert any("showing the last" in n for n in notices(app))
        await pilot.press("colon", "x", "enter")
        assert app.cursor.row == 5
        assert any("'x' is not a step number" in n for n in notices(app))
        await pilot.press("colon", "1", "escape")  # cancelled
        assert app.cursor.row == 5


@asynced
async def test_next_and_previous_failure() -> None:
    app = inspect_app(GOLDEN)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f")
        assert app.cursor == Cursor(2, 17) and app.detail.tab == "policy"
        assert "▶ #17 policy · read_file · deny" in detail(app)
        await pilot.press("f")
        assert app.cursor == Cursor(2, 19)
        await pilot.press("f")  # no failure after 19: wraps to the first
        assert app.cursor.seq == 17
        assert "wrapped around the trace" in notices(app)
        await pilot.press("F")
        assert app.cursor.seq == 19


@asynced
async def test_search_across_payloads() -> None:
    app = inspect_app(GOLDEN)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("slash", *"NO-DOTENV", "enter")  # any case
        assert app.cursor == Cursor(2, 17)
        await pilot.press("N")  # the next prompt tells the model about the denial
        assert app.cursor == Cursor(3, 22) and app.detail.tab == "prompt"
        await pilot.press("P")
        assert app.cursor.seq == 17
        await pilot.press("P")  # the manifest in run_started names the rule: before 17
        assert app.cursor.seq == 0
        await pilot.press("slash", *"zzz-nowhere", "enter")  # typing replaces the last query
        assert app.cursor.seq == 0
        assert "'zzz-nowhere' is nowhere in the trace" in notices(app)
        await pilot.press("slash", *"wc -l", "enter")
        assert app.tl.type_of(app.cursor.seq) != "?" and app.cursor.row == 4


@asynced
async def test_filter_by_failure_class_and_event_type() -> None:
    app = inspect_app(GOLDEN)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("t")
        screen = app.screen
        assert isinstance(screen, FilterScreen)
        assert screen.choices[:2] == [
            StepFilter("failure", "*"),
            StepFilter("failure", "policy_denied"),
        ]
        await pilot.press("down", "enter")
        assert app.view.kept == [2] and app.cursor.row == 2
        assert "filter: failure policy_denied (1 steps)" in header(app)
        await pilot.press("j")  # the only step shown
        assert app.cursor.row == 2
        await pilot.press("x")
        assert app.view.kept is None and "filter" not in header(app)

        await pilot.press("t")
        choices = app.screen.choices  # type: ignore[attr-defined]
        await pilot.press(*["down"] * choices.index(StepFilter("type", "verification")), "enter")
        assert app.view.kept == [3, 4, 5] and app.cursor.row == 3
        await pilot.press("G")
        assert app.cursor.row == 5
        await pilot.press("g", "k")
        assert app.cursor.row == 3
        await pilot.press("p")  # events of hidden steps are skipped too: nothing before
        assert app.cursor.row == 3
        await pilot.press("colon", "1", "enter")  # a hidden step: the filter goes
        assert app.cursor.row == 1 and app.view.kept is None

        await pilot.press("t", "escape")  # cancelled: nothing changes
        assert app.view.kept is None and app.cursor.row == 1


@asynced
async def test_help_opens_blocks_the_panes_and_closes() -> None:
    app = inspect_app(GOLDEN)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        assert "next step" in text and "previous event" in text
        await pilot.press("j")
        assert app.cursor.row == 0  # keys meant for the panes wait
        await pilot.press("pagedown")
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        help_text = str(app.screen.query_one("#help-text").visual.plain)
        assert "⏳  awaiting approval" in help_text and "◆  replay diverged" in help_text
        await pilot.press("question_mark")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("j")
        assert app.cursor.row == 1


# --- approvals ------------------------------------------------------------------------------


@asynced
async def test_approval_records_with_signature_status(tmp_path: Path) -> None:
    trace = write_signed_run(tmp_path / "signed.jsonl", [allow(), ask("approve"), ask("reject")])
    app = inspect_app(trace)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("j", "j", "5")
        assert app.cursor.row == 2
        await wait_for(pilot, lambda: app.signatures is not None)
        text = detail(app)
        assert "approval · fs.write · approve" in text and "alice@laptop via prompt" in text
        assert "✓ valid; key not pinned" in text
        assert "approval requested · fs.write" in text
        await pilot.press("j")
        assert "approval · fs.write · reject" in detail(app)
        assert app.view.timeline.row(3).status == "rejected"

        await pilot.press("r")  # this hand-written trace holds no manifest a replay can run
        await wait_for(pilot, lambda: app.replay_note == "replay failed")
        assert any(n.startswith("replay failed: ") for n in notices(app))
        assert app.is_running


# --- replay ---------------------------------------------------------------------------------


@asynced
async def test_replay_up_to_the_selected_step_reproduces(runs: dict[str, Path]) -> None:
    app = inspect_app(runs["b"])
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("j", "j", "r")
        await wait_for(pilot, lambda: "reproduces" in app.replay_note)
        assert "replay to step 2: reproduces ✓" in header(app)
        assert app.view.reproduced_through == 2 and app.view.marks == {}
        assert "▎ 1" in screen_text(app)  # the mark column


@asynced
async def test_replay_marks_the_divergence(runs: dict[str, Path], tmp_path: Path) -> None:
    events, _ = read_stored(runs["a"])
    for e in events:
        if e["type"] == "tool_call" and e["step"] == 2:
            e["decision"]["reason"] = "allowed because someone edited the trace"
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(rechain(events))
    shutil.copy(runs["a"].parent / "agent.yaml", tmp_path / "agent.yaml")
    app = inspect_app(edited)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("G", "r")
        await wait_for(pilot, lambda: "diverged" in app.replay_note)
        assert app.view.marks == {2: "diverged"} and app.view.reproduced_through == 1
        assert app.cursor.row == 2 and app.tl.type_of(app.cursor.seq) == "tool_call"
        assert "replay diverged at step 2 (tool_call)" in header(app)
        assert "◆ replay diverged here" in detail(app)
        assert "◆ 2" in screen_text(app)


# --- diff -----------------------------------------------------------------------------------


@asynced
async def test_diff_mode_selects_the_first_divergence(runs: dict[str, Path]) -> None:
    d = diff_trajectories(load_trajectory(runs["a"]), load_trajectory(runs["b"]))
    app = DiffApp(d)
    async with app.run_test(size=(100, 30)) as pilot:
        assert [p.kind for p in app.pairs] == ["same", "changed", "inserted", "same"]
        assert app.index == 1
        text = app.query_one("#pair-detail").text  # type: ignore[attr-defined]
        assert "step 2 · changed" in text and "call 1 arguments.path" in text
        assert "b.md" in text and "c.md" in text
        assert "first divergence step 2:" in header(app)
        await pilot.press("d")
        assert app.index == 2
        assert "step 3 · only in b (inserted)" in app.query_one("#pair-detail").text  # type: ignore[attr-defined]
        await pilot.press("j")
        assert app.index == 3
        await pilot.press("D")
        assert app.index == 2
        await pilot.press("g")
        assert app.index == 0
        await pilot.press("colon", "4", "enter")  # a has no step 4: b's
        assert app.index == 3
        screen = screen_text(app)
        assert "~ 2" in screen and "fs_write(content='x', path='c.md')" in screen


@asynced
async def test_diff_of_identical_runs_says_so(runs: dict[str, Path]) -> None:
    t = load_trajectory(runs["a"])
    app = DiffApp(diff_trajectories(t, t))
    async with app.run_test(size=(80, 24)):
        assert app.index == 0
        assert "no divergence" in header(app)


@asynced
async def test_diff_opens_on_a_first_divergence_at_step_1(tmp_path: Path) -> None:
    """The first pair is the divergence: header and detail show it as soon as the app
    opens, before any key (the selection did not change, so nothing used to draw them)."""
    manifest = scripted_manifest(tools=fs_tools("read"))
    traces = [
        run_in(
            tmp_path / name,
            manifest,
            script=[calls(call("fs_read", {"path": path})), answer("done")],
            files={"a.md": "one\n", "c.md": "two\n"},
        )[0].trace_path
        for name, path in (("a", "a.md"), ("b", "c.md"))
    ]
    app = DiffApp(diff_trajectories(*(load_trajectory(Path(t)) for t in traces)))
    async with app.run_test(size=(100, 30)):
        assert [p.kind for p in app.pairs] == ["changed", "same"] and app.index == 0
        assert "pair 1/2 · first divergence step 1: calls[0].arguments.path" in header(app)
        text = app.query_one("#pair-detail").text  # type: ignore[attr-defined]
        assert "step 1 · changed" in text and "call 1 arguments.path" in text
        assert "a.md" in text and "c.md" in text
        assert "step 1 · changed" in screen_text(app)


# --- following a live run -------------------------------------------------------------------


class LiveRun:
    """A run written event by event while the app follows it."""

    def __init__(self, path: Path) -> None:
        self.w = TraceWriter(path, run_id="live-1", clock=FixedClock())
        self.w.append(ev.RunStarted(agent="live", manifest={}, manifest_hash="0" * 64, input="t"))

    def asks(self, step: int) -> None:
        w = self.w
        w.append(ev.StepStarted(step=step))
        w.append(
            ev.ModelRequest(
                step=step, model="m", messages_added=[], message_count=1, prompt_hash="0" * 64
            )
        )

    def proposes(self, step: int, tool: str) -> None:
        self.w.append(
            ev.ModelResponse(
                step=step,
                model="m",
                tool_calls=[{"id": f"c{step}", "name": tool, "arguments": "{}"}],
            )
        )
        self.w.append(
            ev.PolicyDecision(step=step, call_id=f"c{step}", tool=tool, effect="ask", rule="r")
        )
        self.w.append(
            ev.ApprovalRequested(step=step, call_id=f"c{step}", tool=tool, call_hash="0" * 64)
        )

    def approved_and_started(self, step: int, tool: str) -> None:
        common = {"step": step, "call_id": f"c{step}", "tool": tool, "call_hash": "0" * 64}
        self.w.append(ev.ApprovalDecided(**common, decision="approve", approver="me", via="auto"))
        self.w.append(ev.ToolStarted(**common, arguments={}))

    def finishes_step(self, step: int, tool: str) -> None:
        self.w.append(ev.ToolFinished(step=step, call_id=f"c{step}", tool=tool, ok=True))
        self.w.append(ev.StepFinished(step=step, outcome="continue", tokens=10))

    def finishes_run(self, steps: int) -> None:
        self.w.append(
            ev.RunFinished(
                status="completed", steps=steps, event_count=self.w.seq + 1, head=self.w.head
            )
        )
        self.w.close()


@asynced
async def test_follow_a_growing_trace(tmp_path: Path) -> None:
    run = LiveRun(tmp_path / "live.jsonl")
    app = inspect_app(tmp_path / "live.jsonl", poll_s=0.02)
    async with app.run_test(size=(100, 30)) as pilot:
        assert app.following and "running" in header(app)

        run.asks(1)
        await wait_for(pilot, lambda: app.cursor.row == 1)
        assert "waiting for the model" in header(app)
        run.proposes(1, "write_file")
        await wait_for(pilot, lambda: "awaiting approval" in header(app))
        assert "⏳ awaiting approval: write_file" in header(app)
        assert app.tl.row(1).status == "awaiting_approval"
        assert app.cursor.seq == app.tl.events - 1  # the newest event stays selected
        run.approved_and_started(1, "write_file")
        await wait_for(pilot, lambda: "tool in flight: write_file" in header(app))
        assert app.tl.row(1).status == "running"
        assert "1 ⟳" in screen_text(app)
        run.finishes_step(1, "write_file")
        run.asks(2)
        await wait_for(pilot, lambda: app.cursor.row == 2)  # kept the newest step in view

        await pilot.press("k")  # the user moves away: the selection stays put
        for step in (2, 3, 4):
            if step > 2:
                run.asks(step)
            run.proposes(step, "write_file")
            run.approved_and_started(step, "write_file")
            run.finishes_step(step, "write_file")
        await wait_for(pilot, lambda: app.tl.rows == 5)
        assert app.cursor.row == 1
        assert "▼ 2 new steps (G)" in header(app)
        await pilot.press("G")
        assert app.cursor.row == 4 and "new step" not in header(app)

        run.finishes_run(4)
        await wait_for(pilot, lambda: not app.following)
        assert "completed" in header(app) and app.tl.finished
        assert "the run finished: completed" in notices(app)


@asynced
async def test_a_finished_trace_is_not_followed_unless_asked(tmp_path: Path) -> None:
    app = inspect_app(GOLDEN)
    async with app.run_test(size=(80, 24)):
        assert not app.following and app.cursor.row == 0
    run = LiveRun(tmp_path / "live.jsonl")
    run.asks(1)
    app = inspect_app(tmp_path / "live.jsonl", follow=False)
    async with app.run_test(size=(80, 24)) as pilot:
        run.asks(2)
        await pilot.pause(0.1)
        assert app.tl.rows == 2  # not polled


# --- large traces, themes, damage -----------------------------------------------------------


def write_many_steps(path: Path, steps: int) -> None:
    with TraceWriter(path, run_id="many", clock=FixedClock()) as w:
        w.append(ev.RunStarted(agent="many", manifest={}, manifest_hash="0" * 64, input="t"))
        for step in range(1, steps + 1):
            w.append(ev.StepStarted(step=step))
            w.append(ev.ModelResponse(step=step, model="m", content=f"thought {step}"))
            w.append(ev.StepFinished(step=step, outcome="continue", tokens=step))
        w.append(
            ev.RunFinished(status="completed", steps=steps, event_count=w.seq + 1, head=w.head)
        )


@asynced
async def test_a_large_trace_draws_only_the_rows_on_screen(tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    write_many_steps(path, 5000)
    app = inspect_app(path)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(TimelineView)
        assert view.virtual_size.height == 5001
        assert view.rows_drawn < 60
        await pilot.press("G")
        assert app.cursor.row == 5000 and "thought 5000" in screen_text(app)
        await pilot.press("colon", *"2500", "enter")
        assert app.cursor.row == 2500 and "2500 ✓  answer: thought 2500" in screen_text(app)
        assert view.rows_drawn < 200  # a few screens (the prompt bar resizes the view), not 5,000


@asynced
async def test_light_theme() -> None:
    app = inspect_app(GOLDEN)
    async with app.run_test(size=(80, 24)) as pilot:
        dark = Palette.of(app.view)
        app.theme = "textual-light"
        await pilot.pause()
        light = Palette.of(app.view)
        assert light.base.bgcolor != dark.base.bgcolor and light.ok.color != dark.ok.color
        await pilot.press("j", "j")
        assert "step 2 · ✗ denied" in screen_text(app)


@asynced
async def test_a_damaged_event_is_a_notice_not_a_traceback(tmp_path: Path) -> None:
    lines = GOLDEN.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b'"content":"Let me', b'"content":Let me')  # not JSON any more
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(b"".join(lines))
    app = inspect_app(damaged)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("j")
        assert app.cursor.row == 1 and app.is_running
        assert any("cannot show this step" in n for n in notices(app))
        assert "cannot read this step" in screen_text(app)
        await pilot.press("j")
        assert "step 2 · ✗ denied" in screen_text(app)


# --- the command ----------------------------------------------------------------------------


ENTRY = "from govrun.cli.main import main; main()"


def on_a_terminal(*args: object) -> tuple[int, str]:
    """``govrun ARGS`` on a pseudo-terminal, run to its end: exit code and screen."""
    term = Screen([sys.executable, "-c", ENTRY, *map(str, args)], rows=24, cols=200)
    try:
        deadline = time.monotonic() + 15
        while not term.eof and time.monotonic() < deadline:
            term._read(0.2)
        term.child.close()
        assert term.eof, f"still running:\n{term.screen}"
        return term.child.exitstatus, " ".join(term.screen.split())
    finally:
        if term.child.isalive():
            term.child.close(force=True)


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    """On a terminal, before the screen is taken over."""
    code, said = on_a_terminal("inspect", tmp_path / "missing.jsonl")
    assert code == 2 and "no such trace" in said and "Traceback" not in said
    junk = tmp_path / "junk.jsonl"
    junk.write_text("hello\n")
    code, said = on_a_terminal("inspect", junk)
    assert code == 2 and "error:" in said and "Traceback" not in said
    code, said = on_a_terminal("inspect", GOLDEN, "--diff", tmp_path / "missing.jsonl")
    assert code == 2 and "no such trace" in said
    assert "--follow" in govrun("inspect", "--help").out


@pytest.mark.parametrize("diff", [False, True])
def test_without_a_terminal_inspect_refuses_at_once(diff: bool) -> None:
    """No terminal to draw on or read keys from: exit 2 at once, one line saying to run it
    in a terminal and what prints the same for a pipe, and nothing on stdout."""
    args = ["inspect", GOLDEN, *(["--diff", GOLDEN] if diff else [])]
    ran = govrun(*args)
    said = " ".join(ran.err.split())  # one message, however the console wraps it
    assert ran.code == 2 and ran.out == "" and said.count("error:") == 1
    assert said.startswith(
        "error: govrun inspect needs a terminal (standard input and standard output are not "
        "one): run it in a terminal, or "
    )
    instead = f"govrun diff {GOLDEN} {GOLDEN}" if diff else f"govrun show {GOLDEN}"
    assert said.endswith(f"`{instead}` for a pipe or a file.")


def test_with_stdout_in_a_pipe_inspect_exits_2_without_escape_codes() -> None:
    """What was reported: stdout a pipe, stdin a terminal. The app used to draw into the
    pipe and never exit; now the process ends at once and the pipe holds nothing."""
    import pexpect

    command = f"{sys.executable} -c '{ENTRY}' inspect {GOLDEN} | od -c"
    child = pexpect.spawn("/bin/sh", ["-c", command], encoding="utf-8", timeout=15)
    try:
        child.expect(pexpect.EOF)
        said = " ".join((child.before or "").split())
        child.close()
        assert "standard output is not one" in said and "033" not in said, said
        assert said.endswith("0000000"), said  # od of an empty pipe: the offset alone
    finally:
        if child.isalive():
            child.close(force=True)


def test_the_command_opens_the_app_on_a_terminal_and_quits() -> None:
    """The real command on a pseudo-terminal: the screen appears, keys work, q quits, exit 0."""
    entry = "from govrun.cli.main import main; main()"
    term = Screen([sys.executable, "-c", entry, "inspect", str(GOLDEN)], rows=24, cols=80)
    try:
        term.wait_for("quickstart · completed")
        term.child.send("j")
        term.wait_for("step 1/5")
        term.child.send("q")
        deadline = time.monotonic() + 15
        while not term.eof and time.monotonic() < deadline:
            term._read(0.2)
        term.child.close()
        assert term.eof and term.child.exitstatus == 0
        assert "Traceback" not in term.screen
    finally:
        if term.child.isalive():
            term.child.close(force=True)


# --- a bug inside the app ----------------------------------------------------------------------


class _Crashing(App[None]):
    def on_mount(self) -> None:
        raise ZeroDivisionError("a bug in a screen")


def test_an_app_that_stops_on_a_bug_is_said_in_one_paragraph_with_a_crash_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where crash reports go
    monkeypatch.delenv("GOVRUN_DEBUG", raising=False)
    with pytest.raises(typer.Exit) as stopped:
        run_app(_Crashing(), headless=True)
    assert stopped.value.exit_code == 1
    said = capsys.readouterr().err
    assert "govrun failed unexpectedly: ZeroDivisionError: a bug in a screen" in " ".join(
        said.split()
    )
    assert "Traceback" not in said
    (report,) = tmp_path.glob("govrun-crash-*.txt")
    assert "ZeroDivisionError" in report.read_text() and "on_mount" in report.read_text()
