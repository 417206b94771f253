"""`govrun validate` checks what `govrun run` checks before its first step (issue 17): each
gap that used to pass validate and fail (or misrun) at run time is now a problem at its
file:line, and `run` refuses it before creating a trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cli import govrun

MODEL = {"provider": "scripted", "script": "script.yaml"}


def agent(tmp_path: Path, **sections: Any) -> Path:
    (tmp_path / "ws").mkdir(exist_ok=True)
    (tmp_path / "mytools_gap.py").write_text(
        "def add(a: int, b: int = 1) -> int:\n    return a + b\n"
    )
    (tmp_path / "script.yaml").write_text(
        yaml.safe_dump(sections.pop("script", [{"content": "ok"}]))
    )
    doc = {
        "name": "gaps",
        "model": MODEL,
        "tools": [{"name": "read_file", "uses": "fs.read", "scope": {"roots": ["ws"]}}],
        **sections,
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "module-missing": (
        {"tools": [{"name": "add", "python": "no_such_module_xyz:add"}]},
        "tools[0].python",
        "cannot import module 'no_such_module_xyz'",
    ),
    "function-missing": (
        {"tools": [{"name": "add", "python": "mytools_gap:ad"}]},
        "tools[0].python",
        "Did you mean 'add'?",
    ),
    "script-misspelt-key": (
        {"script": [{"contnet": "hello"}]},
        "script.yaml:1",
        "contnet",
    ),
    "root-missing": (
        {"tools": [{"name": "read_file", "uses": "fs.read", "scope": {"roots": ["nowhere"]}}]},
        "tools[0].scope.roots[0]",
        "'nowhere' does not exist",
    ),
    "argument-missing": (
        {
            "policy": {
                "rules": [
                    {
                        "id": "r",
                        "tools": ["read_file"],
                        "when": {"pth": {"glob": "*"}},
                        "effect": "deny",
                    }
                ]
            }
        },
        "policy.rules[0].when.pth",
        "did you mean 'path'?",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_rejects_what_run_would(tmp_path: Path, case: str) -> None:
    sections, where, words = CASES[case]
    manifest = agent(tmp_path, **sections)
    ran = govrun("validate", manifest)
    assert ran.code == 2, ran.flat
    assert where in ran.flat and words in ran.flat, ran.flat
    assert ":" in ran.flat.split(where)[0][-12:] or where.startswith("script.yaml")  # file:line
    trace = tmp_path / "trace.jsonl"
    refused = govrun("run", manifest, "-o", trace, "-i", "go")
    assert refused.code == 2 and not trace.exists(), refused.flat  # no trace left behind
