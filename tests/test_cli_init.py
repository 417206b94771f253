"""`govrun init` (issue 17): a small agent that validates and runs offline at once, and is
never written over anything.

The agent is run in a real process with no input, as a newcomer would, then verified.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.cli import govrun

WRITTEN = ["agent.yaml", "script.yaml", "workspace", "workspace/notes.md"]
HEAD = re.compile(r"^head ([0-9a-f]{64})$", re.MULTILINE)


def tree(folder: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every entry under ``folder`` with its bytes and mtime (None for a folder)."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        if p.is_file()
        else None
        for p in sorted(folder.rglob("*"))
    }


def test_init_writes_an_agent_that_validates_runs_and_verifies(tmp_path: Path) -> None:
    folder = tmp_path / "hello"
    made = govrun("init", folder)
    assert made.code == 0, made.flat
    assert sorted(tree(folder)) == WRITTEN
    assert f"govrun run {folder}/agent.yaml" in made.flat
    assert "govrun verify TRACE --head HEAD" in made.flat
    assert yaml.safe_load((folder / "agent.yaml").read_text())["name"] == "hello"

    checked = govrun("validate", folder / "agent.yaml")
    assert checked.code == 0, checked.flat

    entry = "from govrun.cli.main import main; main()"
    ran = subprocess.run(  # a real process with no input: asks are rejected, nothing waits
        [sys.executable, "-c", entry, "run", str(folder / "agent.yaml")],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "COMPLETED" in ran.stdout
    [trace] = (tmp_path / "runs").glob("hello-*.jsonl")
    [head] = HEAD.findall(ran.stdout)
    verified = govrun("verify", trace, "--head", head)
    assert verified.code == 0, verified.flat

    shown = govrun("show", trace)
    assert "no-scripts" in shown.flat  # the deny rule stopped the script
    copy = trace.with_name(trace.name + ".workspace") / "workspace"
    assert (copy / "summary.md").read_text().startswith("# Summary")
    assert sorted(tree(folder)) == WRITTEN  # the template never changes


def test_init_never_writes_over_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "agent"
    assert govrun("init", folder).code == 0
    (folder / "script.yaml").write_text("# mine\n")
    before = tree(folder)

    again = govrun("init", folder)

    assert again.code == 2
    assert f"{folder}/agent.yaml already exists; govrun init never writes over a file" in (
        again.flat
    )
    assert tree(folder) == before


def test_init_into_a_folder_with_other_files_and_into_the_current_one(
    tmp_path: Path, monkeypatch
) -> None:
    (tmp_path / "README.md").write_text("mine\n")
    monkeypatch.chdir(tmp_path)
    made = govrun("init")
    assert made.code == 0, made.flat
    assert "govrun run agent.yaml" in made.flat
    assert (tmp_path / "README.md").read_text() == "mine\n"
    assert (tmp_path / "workspace" / "notes.md").is_file()


def test_init_refuses_a_file_and_quotes_an_odd_name(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    refused = govrun("init", tmp_path / "taken")
    assert refused.code == 2 and "is a file" in refused.flat
    assert govrun("init", tmp_path / "1.0").code == 0
    assert yaml.safe_load((tmp_path / "1.0" / "agent.yaml").read_text())["name"] == "1.0"
    assert govrun("validate", tmp_path / "1.0" / "agent.yaml").code == 0
    assert govrun("init", tmp_path / "two words").code == 0
    assert yaml.safe_load((tmp_path / "two words" / "agent.yaml").read_text())["name"] == "my-agent"
