"""Snapshots of the inspector's main screens (pytest-textual-snapshot; update with
``--snapshot-update`` after an intended change, and look at the SVGs before committing).

Everything drawn is deterministic: the golden quickstart trace is checked in, and the diff
runs are made with the fixed clock in folders named a and b.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from govrun.cli.inspect.app import InspectApp
from govrun.cli.inspect.diff_app import DiffApp
from govrun.runtime.views.diff import diff_trajectories
from govrun.runtime.views.timeline import Timeline
from govrun.runtime.views.trajectory import load_trajectory
from tests.support.agents import answer, call, calls, fs_tools, run_in, scripted_manifest

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "quickstart.jsonl"

Snap = Callable[..., bool]


def golden() -> InspectApp:
    return InspectApp(Timeline(GOLDEN))


def test_main_screen_80x24(snap_compare: Snap) -> None:
    """Step 2 of the quickstart run: two calls denied by policy, Policy tab."""
    assert snap_compare(golden(), press=["j", "j", "f"], terminal_size=(80, 24))


def test_main_screen_120x40(snap_compare: Snap) -> None:
    """Step 3's tool call finished, on the Tools tab, in a wide terminal."""
    keys = ["colon", "3", "enter", *["n"] * 6]
    assert snap_compare(golden(), press=keys, terminal_size=(120, 40))


def test_raw_events_tab(snap_compare: Snap) -> None:
    """The Raw tab: every event of step 4, the selected one expanded."""
    assert snap_compare(
        golden(), press=["colon", "4", "enter", "7", "n", "n"], terminal_size=(100, 30)
    )


def test_help_screen(snap_compare: Snap) -> None:
    assert snap_compare(golden(), press=["question_mark"], terminal_size=(80, 24))


def test_light_theme(snap_compare: Snap) -> None:
    async def light(pilot: Pilot[Any]) -> None:
        pilot.app.theme = "textual-light"

    assert snap_compare(golden(), press=["j"], terminal_size=(80, 24), run_before=light)


@pytest.fixture(scope="module")
def diff_app_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("snap-diff")
    manifest = scripted_manifest(tools=fs_tools("read", "write"))
    scripts = {
        "a": [
            calls(call("fs_read", {"path": "notes.md"})),
            calls(call("fs_write", {"path": "report.md", "content": "# Report\n"})),
            answer("done"),
        ],
        "b": [
            calls(call("fs_read", {"path": "notes.md"})),
            calls(call("fs_write", {"path": "summary.md", "content": "# Report\n"})),
            calls(call("fs_read", {"path": "summary.md"})),
            answer("done"),
        ],
    }
    traces = [
        Path(
            run_in(folder / name, manifest, script=script, files={"notes.md": "hi\n"})[0].trace_path
        )
        for name, script in scripts.items()
    ]
    return traces[0], traces[1]


def test_diff_mode(snap_compare: Snap, diff_app_runs: tuple[Path, Path]) -> None:
    """Two runs side by side, the first divergence (step 2) selected."""
    a, b = diff_app_runs
    app = DiffApp(diff_trajectories(load_trajectory(a), load_trajectory(b)))
    assert snap_compare(app, terminal_size=(100, 30))
