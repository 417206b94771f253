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

COMPAT = Path(__file__).parents[1] / "fixtures" / "traces" / "compat"
LISTED: dict[str, dict[str, Any]] = json.loads((COMPAT / "traces.json").read_text())


def test_every_compat_trace_is_listed_and_unchanged() -> None:
    on_disk = sorted(p.name for p in COMPAT.glob("*.jsonl"))
    assert on_disk == sorted(LISTED)
    for name, entry in LISTED.items():
        digest = hashlib.sha256((COMPAT / name).read_bytes()).hexdigest()
        assert digest == entry["sha256"], f"{name} was re-recorded or edited; restore it"


@pytest.mark.parametrize("name", sorted(LISTED))
def test_a_compat_trace_verifies(name: str) -> None:
    ran = govrun("verify", COMPAT / name)
    assert ran.code == 0 and "intact" in ran.flat and "run finished" in ran.flat, ran.flat


@pytest.mark.parametrize("name", sorted(LISTED))
def test_a_compat_trace_replays_as_expected(name: str, tmp_path: Path) -> None:
    expect = LISTED[name]["expect"]
    ran = govrun("replay", COMPAT / name, "-o", tmp_path / "replay.jsonl")
    if expect["replay"] == "identical":
        assert ran.code == 0 and "identical" in ran.flat, ran.flat
        return
    assert expect["replay"] == "changed_decision"
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
