"""Traces written by earlier govrun versions keep verifying and replaying (issue 15, 17).

The files in ``fixtures/traces/compat/`` were written by the version named in
``traces.json`` and are never re-recorded: their hashes are checked first.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import govrun

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
    assert LISTED[name]["expect"] == {"replay": "identical"}
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
