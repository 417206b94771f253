"""A trace replays anywhere (issue 17): the record holds what strict replay needs — the
tool definitions the model was shown, each call's canonical form, every answer — so a
trace copied alone to another folder, without the agent's code, model script or
workspace, still verifies and replays identically."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

TOOLS_MODULE = '''
"""A Python tool only this test's agent folder has."""


def tally(count: int, label: str = "items") -> str:
    """Count things."""
    return f"{count} {label}"
'''


def govrun_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real executable, in ``folder``, with nothing of the agent on its path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", "from govrun.cli.main import main; main()", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_trace_with_a_python_tool_replays_alone_in_an_empty_folder(tmp_path: Path) -> None:
    agent = tmp_path / "agent"
    (agent / "ws").mkdir(parents=True)
    (agent / "ws" / "notes.md").write_text("# notes\n")
    (agent / "counting_tools_xyz.py").write_text(TOOLS_MODULE)
    doc = {
        "name": "anywhere",
        "model": {"provider": "scripted", "script": "script.yaml"},
        "tools": [
            {"name": "tally", "python": "counting_tools_xyz:tally"},
            {"name": "read_file", "uses": "fs.read", "scope": {"roots": ["ws"]}},
        ],
        "policy": {
            "rules": [
                {
                    "id": "no-big",
                    "tools": ["tally"],
                    "when": {"count": {"min": 100}},
                    "effect": "deny",
                },
                {"id": "rest", "effect": "allow"},
            ]
        },
        "success": [{"check": "final_answer_matches", "pattern": "done"}],
    }
    script = [
        {
            "tool_calls": [
                {"name": "tally", "arguments": {"count": "7"}},  # coerced: canonical 7
                {"name": "tally", "arguments": {"count": 500, "label": "x"}},  # denied
                {"name": "read_file", "arguments": {"path": "./notes.md/"}},
                {"name": "nope", "arguments": {}},  # unknown tool
            ]
        },
        {"content": "done"},
    ]
    (agent / "agent.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (agent / "script.yaml").write_text(yaml.safe_dump(script, sort_keys=False))
    ran = govrun_in(agent, "run", "agent.yaml", "-o", "trace.jsonl", "-i", "count")
    assert ran.returncode == 0, ran.stdout + ran.stderr

    elsewhere = tmp_path / "incident"
    elsewhere.mkdir()
    shutil.copy(agent / "trace.jsonl", elsewhere / "trace.jsonl")
    shutil.rmtree(agent)  # the code, script and workspace are gone

    verified = govrun_in(elsewhere, "verify", "trace.jsonl")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    replayed = govrun_in(elsewhere, "replay", "trace.jsonl", "-o", "replay.jsonl")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "identical" in " ".join(replayed.stdout.split())
    assert govrun_in(elsewhere, "diff", "trace.jsonl", "replay.jsonl").returncode == 0
