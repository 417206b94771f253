"""Traces written by earlier govrun versions keep verifying and replaying (issues 15, 17,
18): schema 1 (1.1, 1.2) and schema 2 alike verify, show, inspect, roll back, replay
identically, and a schema-1 and a schema-2 trace of the same run diff as the same.

The files in ``fixtures/traces/compat/`` were written by the version named in
``traces.json`` and are never re-recorded: their hashes are checked first.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from govrun.cli.inspect.app import InspectApp
from govrun.cli.inspect.palette import PLAIN
from govrun.cli.inspect.sections import TABS, build
from govrun.cli.inspect.steps import StepLoader
from govrun.runtime.trace.verify import verify_trace
from govrun.runtime.views.timeline import Timeline
from tests.support.cli import govrun
from tests.support.signed_runs import MACHINE, write_events
from tests.support.tui import asynced

TRACES = Path(__file__).parents[1] / "fixtures" / "traces"
COMPAT = TRACES / "compat"
CHANGED = TRACES / "changed"
LISTED: dict[str, dict[str, Any]] = json.loads((COMPAT / "traces.json").read_text())
CHANGES: dict[str, dict[str, Any]] = json.loads((CHANGED / "traces.json").read_text())


@pytest.mark.parametrize(("folder", "listed"), [(COMPAT, LISTED), (CHANGED, CHANGES)])
def test_every_kept_trace_is_listed_and_unchanged(folder: Path, listed: dict[str, Any]) -> None:
    on_disk = sorted(p.name for p in folder.glob("*.jsonl"))
    assert on_disk == sorted(listed)
    for name, entry in listed.items():
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert digest == entry["sha256"], f"{name} was re-recorded or edited; restore it"


@pytest.mark.parametrize(
    "path", [COMPAT / n for n in sorted(LISTED)] + [CHANGED / n for n in sorted(CHANGES)]
)
def test_a_kept_trace_verifies(path: Path) -> None:
    ran = govrun("verify", path)
    assert ran.code == 0 and "intact" in ran.flat and "run finished" in ran.flat, ran.flat


@pytest.mark.parametrize("name", sorted(LISTED))
def test_a_compat_trace_replays_identically(name: str, tmp_path: Path) -> None:
    assert LISTED[name]["expect"]["replay"] == "identical"
    ran = govrun("replay", COMPAT / name, "-o", tmp_path / "replay.jsonl")
    assert ran.code == 0 and "identical" in ran.flat, ran.flat


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_a_changed_decision_is_reported_as_such(name: str, tmp_path: Path) -> None:
    expect = CHANGES[name]["expect"]
    ran = govrun("replay", CHANGED / name, "-o", tmp_path / "replay.jsonl")
    assert ran.code == 1, ran.flat
    assert f"event {expect['seq']} ({expect['event']}" in ran.flat
    assert f"effect: recorded '{expect['recorded']}', replayed '{expect['replayed']}'" in ran.flat
    assert "changed on purpose" in ran.flat


GOLDEN = Path(__file__).parents[1] / "fixtures" / "golden" / "quickstart.jsonl"


def test_the_golden_trace_replays_under_its_recorded_manifest(tmp_path: Path) -> None:
    """Recorded before the manifest gained `budgets.per_model`: a default a newer govrun
    adds is not a divergence."""
    ran = govrun("replay", GOLDEN, "-o", tmp_path / "replay.jsonl")
    assert ran.code == 0 and "identical" in ran.flat, ran.flat


SAME_RUN = {
    n: e["expect"]["diff_same_as"] for n, e in LISTED.items() if "diff_same_as" in e["expect"]
}


def test_every_schema_has_its_kept_traces() -> None:
    majors = {orjson.loads((COMPAT / n).read_bytes().split(b"\n", 1)[0])["v"] for n in LISTED}
    assert majors == {1, 2}
    assert len(SAME_RUN) == 3


@pytest.mark.parametrize("name", sorted(SAME_RUN))
def test_a_schema_1_and_a_schema_2_trace_of_one_run_diff_as_the_same(name: str) -> None:
    """Event shapes changed between the schemas; what happened did not."""
    for a, b in ((SAME_RUN[name], name), (name, SAME_RUN[name])):
        ran = govrun("diff", COMPAT / a, COMPAT / b)
        assert ran.code == 0, ran.flat
        assert "✓ same:" in ran.flat and "step for step" in ran.flat


@pytest.mark.parametrize("name", sorted(LISTED))
def test_a_kept_trace_shows(name: str) -> None:
    ran = govrun("show", COMPAT / name)
    assert ran.code == 0, ran.flat
    assert ran.err == "" and "Traceback" not in ran.flat


@pytest.mark.parametrize("name", sorted(LISTED))
def test_a_kept_trace_draws_on_every_tab(name: str) -> None:
    """Every step of every kept trace, on every tab of the inspector: drawn, and each
    denied call shown as denied on the Tools and Policy tabs, whichever schema holds it."""
    tl = Timeline(COMPAT / name)
    loader = StepLoader(tl)
    console = Console(width=120, file=io.StringIO(), color_system=None)
    denied = 0
    for row in range(tl.rows):
        step = loader.load(row, tl.seq_range(row)[0])
        assert not step.problems, step.problems
        drawn = {}
        for tab, _ in TABS:
            with console.capture() as capture:
                for section in build(tab, step, PLAIN, None):
                    console.print(section.title)
                    if section.body is not None:
                        console.print(section.body)
            drawn[tab] = capture.get()
            assert drawn[tab].strip(), (row, tab)
        if tl.row(row).status == "denied":
            denied += 1
            assert "deny" in drawn["tools"] + drawn["policy"], row
    assert denied or "gated" in name  # the quickstart and the Python run deny calls


@pytest.mark.parametrize("name", sorted(LISTED))
@asynced
async def test_a_kept_trace_opens_in_the_inspector(name: str) -> None:
    app = InspectApp(Timeline(COMPAT / name))
    app.animation_level = "none"
    async with app.run_test(size=(120, 40)) as pilot:
        for row in range(1, app.tl.rows):
            await pilot.press("j")
            assert app.cursor.row == row and app.detail.view.text.strip()


@pytest.mark.parametrize("name", ["v1.2-quickstart.jsonl", "v2-quickstart.jsonl"])
def test_a_kept_trace_rolls_back(name: str, tmp_path: Path) -> None:
    """The quickstart's write of report.md, undone from either schema's record. The record
    names the workspace it ran in; the copy here names this test's (re-chained and sealed
    again by a key of the test's)."""
    events = [orjson.loads(line) for line in (COMPAT / name).read_bytes().splitlines()]
    ws = tmp_path / "quickstart-workspace"
    ws.mkdir()
    sent = {
        e["call_id"]: e["arguments"]
        for e in events
        if e["type"] in ("tool_call", "tool_call_proposed")
    }
    undone = 0
    for e in events:
        undo = (e.get("evidence") or {}).get("undo") if e["type"] == "tool_finished" else None
        if undo:
            undo["root"] = e["evidence"]["root"] = str(ws)
            (ws / undo["path"]).write_text(sent[e["call_id"]]["content"])
            undone += 1
    assert undone == 1
    trace = write_events(tmp_path / name, events, reseal=MACHINE)  # re-chained, re-sealed
    report = ws / "report.md"
    assert verify_trace(trace).ok

    ran = govrun("rollback", trace)

    assert ran.code == 0, ran.flat
    assert not report.exists()
    assert verify_trace(trace.with_suffix(".rollback.jsonl")).ok
    shutil.rmtree(ws)
