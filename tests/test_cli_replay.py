"""`govrun replay` on the command line: verdicts, exit codes, JSON, and bad input.

Also the golden-trace check the README recommends: a trace recorded from the quickstart
agent and kept in the repo replays, under the manifest as it is now, event for event.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from govrun.runtime.replayer.session import assert_replays
from tests.support.agents import answer, call, calls, fs_tools, run_in, scripted_manifest
from tests.support.cli import govrun

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "fixtures" / "golden" / "quickstart.jsonl"
QUICKSTART = REPO / "fixtures" / "agents" / "quickstart.yaml"


def test_the_golden_quickstart_trace_replays_under_the_current_manifest() -> None:
    """Re-record with `just golden` when a change to the quickstart is intended."""
    outcome = assert_replays(GOLDEN, manifest=QUICKSTART)
    assert outcome.result.status == "completed"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("recorded")
    script = [
        calls(call("fs_write", {"path": "a.md", "content": "# A\n"})),
        calls(call("fs_read", {"path": "a.md"})),
        answer("done"),
    ]
    result, _ = run_in(folder, scripted_manifest(tools=fs_tools("read", "write")), script=script)
    return Path(result.trace_path)


def test_identical_replay_exits_0(recorded: Path, tmp_path: Path) -> None:
    ran = govrun("replay", recorded, "-o", tmp_path / "r.jsonl")
    assert ran.code == 0, ran.flat
    assert "✓ identical" in ran.flat
    assert "3 steps" in ran.flat
    assert (tmp_path / "r.jsonl").exists()


def test_a_changed_manifest_replayed_strictly_names_the_divergence(
    recorded: Path, tmp_path: Path
) -> None:
    changed = tmp_path / "agent.yaml"
    text = (recorded.parent / "agent.yaml").read_text()
    changed.write_text(text.replace("You are a careful agent", "You are a reckless agent"))
    (tmp_path / "script.yaml").write_text((recorded.parent / "script.yaml").read_text())

    ran = govrun("replay", recorded, "--manifest", changed, "--strict", "-o", tmp_path / "r.jsonl")

    assert ran.code == 1, ran.flat
    assert "✗ diverged" in ran.flat
    assert "first divergence: step 1, event 1 (model_request)" in ran.flat
    assert "prompt_hash" in ran.flat
    assert "one of them changed" in ran.flat


def test_json_report(recorded: Path, tmp_path: Path) -> None:
    ran = govrun("replay", recorded, "-o", tmp_path / "r.jsonl", "--json")
    assert ran.code == 0
    (doc,) = orjson.loads(ran.out)
    assert doc["identical"] is True
    assert doc["mode"] == "strict"
    assert doc["divergence"] is None
    assert doc["replayed"]["steps"] == doc["recorded"]["steps"] == 3
    assert doc["output"] == str(tmp_path / "r.jsonl")


def test_replay_never_overwrites(recorded: Path) -> None:
    ran = govrun("replay", recorded, "-o", recorded)
    assert ran.code == 2
    assert "already exists; govrun never overwrites a trace" in ran.flat


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--strict",), "--strict goes with --manifest"),
        (("--live-tools",), "--live-tools applies to a counterfactual replay"),
        (("--approvals", "rules.yaml"), "--approvals needs --manifest"),
    ],
)
def test_option_mistakes_exit_2(recorded: Path, args: tuple[str, ...], message: str) -> None:
    ran = govrun("replay", recorded, *args)
    assert ran.code == 2
    assert message in ran.flat


def test_not_a_trace_exits_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.jsonl"
    junk.write_text("hello\n")
    ran = govrun("replay", junk)
    assert ran.code == 2
    assert "junk.jsonl is not a govrun trace: it begins with 'hello'" in ran.flat
    ran = govrun("replay", tmp_path / "missing.jsonl")
    assert ran.code == 2
    assert "missing.jsonl: no such trace" in ran.flat


def test_a_trace_whose_manifest_this_govrun_cannot_rebuild_exits_2() -> None:
    """The synthetic fixture traces hold a made-up manifest snapshot."""
    ran = govrun("replay", REPO / "fixtures" / "traces" / "complete.jsonl")
    assert ran.code == 2
    assert "the manifest recorded in the trace does not validate" in ran.flat


def test_a_crashed_trace_diverges_where_the_record_ends(tmp_path: Path, recorded: Path) -> None:
    lines = recorded.read_bytes().splitlines(keepends=True)
    crashed = tmp_path / "crashed.jsonl"
    crashed.write_bytes(b"".join(lines[:9]) + lines[9][:40])  # torn mid-line
    ran = govrun("replay", crashed, "-o", tmp_path / "r.jsonl")
    assert ran.code == 1
    assert "but the record ends at event 8 (its last line is torn: the run crashed)" in ran.flat
