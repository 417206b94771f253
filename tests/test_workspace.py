"""`workspace:` (issue 17): each run works on its own fresh copy of a template folder, made
next to its trace, so runs start from the same files and the template never changes.

Real runs through ``run_in`` (each trace also verifies and replays strictly) and the real
CLI; the template is compared byte for byte before and after.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from govrun.runtime.errors import ManifestError
from govrun.runtime.manifest.schema import parse_manifest
from govrun.runtime.replayer.session import recorded_manifest
from govrun.runtime.trace import events as ev
from govrun.runtime.trace.record import Record
from tests.support.agents import (
    WORKSPACE,
    answer,
    call,
    calls,
    checked_events,
    fs_tools,
    of_type,
    one,
    prepare,
    run_in,
    scripted_manifest,
    shell_tool,
)
from tests.support.cli import govrun

WITH_WORKSPACE = {"workspace": {"template": WORKSPACE}, "input": "Write out.md."}
SCRIPT = [
    calls(call("fs_list", {"path": "."}), call("fs_read", {"path": "notes.md"})),
    calls(call("fs_write", {"path": "out.md", "content": "# Out\n"})),
    answer("wrote out.md"),
]


def files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_run_works_on_a_fresh_copy_and_never_on_the_template(tmp_path: Path) -> None:
    manifest = scripted_manifest(
        tools=[*fs_tools(), shell_tool({"wc": {"flags": ["-l"]}}, name="sh")],
        success=[{"check": "file_exists", "path": f"{WORKSPACE}/out.md"}],
        **WITH_WORKSPACE,
    )
    manifest["tools"][-1]["scope"]["cwd"] = WORKSPACE
    script = [*SCRIPT[:2], calls(call("sh", {"command": "wc -l out.md"})), SCRIPT[2]]
    result, events = run_in(tmp_path, manifest, script=script, files={"notes.md": "a\n"})

    assert (result.status, result.failure_class) == ("completed", None), result.reason
    folder = tmp_path / "trace-1.jsonl.workspace"
    assert result.workspace == str(folder)
    assert one(events, ev.RunStarted).workspace == str(folder)
    assert files(folder / WORKSPACE) == {"notes.md": b"a\n", "out.md": b"# Out\n"}
    assert files(tmp_path / WORKSPACE) == {"notes.md": b"a\n"}  # the template is untouched
    listed = one(events, ev.ToolFinished, tool="fs_list").output
    assert "notes.md" in listed and "out.md" not in listed
    assert one(events, ev.ToolFinished, tool="sh").output == "1 out.md\n"  # cwd is the copy
    [success] = of_type(events, ev.Verification, call_id=None)
    assert success.passed and success.evidence["path"] == f"{WORKSPACE}/out.md"


def test_two_runs_start_from_the_same_files(tmp_path: Path) -> None:
    manifest = scripted_manifest(**WITH_WORKSPACE)
    first, _ = run_in(tmp_path, manifest, script=SCRIPT, files={"notes.md": "a\n"})
    second, events = run_in(tmp_path, manifest, script=SCRIPT, files={"notes.md": "a\n"})
    assert first.workspace != second.workspace
    assert "out.md" not in one(events, ev.ToolFinished, tool="fs_list").output
    diff = govrun("diff", first.trace_path, second.trace_path)
    assert diff.code == 0, diff.flat


def test_policy_folders_name_the_copy(tmp_path: Path) -> None:
    """`inside:` the template means inside the run's copy: the write is allowed there."""
    policy = {
        "default": "deny",
        "rules": [
            {"id": "in-ws", "tools": ["fs_*"], "when": {"path": {"inside": [WORKSPACE]}}}
            | {"effect": "allow"}
        ],
    }
    manifest = scripted_manifest(policy=policy, **WITH_WORKSPACE)
    result, events = run_in(tmp_path, manifest, script=SCRIPT, files={"notes.md": "a\n"})
    assert result.status == "completed", result.reason
    assert {c.decision.rule for c in of_type(events, ev.ToolCall)} == {"in-ws"}


def test_a_missing_template_is_a_manifest_problem(tmp_path: Path) -> None:
    text = "name: x\nmodel: {provider: openai, name: m}\nworkspace:\n  template: nowhere\n"
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source="agent.yaml", base_dir=tmp_path, env={})
    assert caught.value.problems == [
        f"agent.yaml:4:3 workspace.template: expected an existing folder relative to "
        f"{tmp_path.resolve()}; got 'nowhere'"
    ]


def test_a_root_above_the_template_is_refused(tmp_path: Path) -> None:
    """A tool rooted at the manifest folder would reach the template itself."""
    (tmp_path / "ws").mkdir()
    text = (
        "name: x\nmodel: {provider: openai, name: m}\nworkspace: {template: ws}\n"
        "tools:\n  - {name: r, uses: fs.read, scope: {roots: [ws, .]}}\n"
    )
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source="agent.yaml", base_dir=tmp_path, env={})
    [problem] = caught.value.problems
    assert problem.startswith("agent.yaml:5:50 tools[0].scope.roots[1]: expected a folder")
    assert "the tool would reach the template rather than the run's copy" in problem


def test_the_run_refuses_a_trace_inside_the_template(tmp_path: Path) -> None:
    prepare(tmp_path, scripted_manifest(**WITH_WORKSPACE), script=SCRIPT)
    before = files(tmp_path / WORKSPACE)
    ran = govrun("run", tmp_path / "agent.yaml", "-o", tmp_path / WORKSPACE / "t.jsonl")
    assert ran.code == 2, ran.flat
    assert "is inside the workspace template" in ran.flat
    assert files(tmp_path / WORKSPACE) == before


def test_the_run_never_works_in_another_runs_workspace(tmp_path: Path) -> None:
    prepare(tmp_path, scripted_manifest(**WITH_WORKSPACE), script=SCRIPT, files={"a": "1"})
    taken = tmp_path / "t.jsonl.workspace"
    taken.mkdir()
    (taken / "theirs.txt").write_text("keep")
    ran = govrun("run", tmp_path / "agent.yaml", "-o", tmp_path / "t.jsonl")
    assert ran.code == 2, ran.flat
    assert "already exists; a run never works in another run's workspace" in ran.flat
    assert not (tmp_path / "t.jsonl").exists()
    assert files(taken) == {"theirs.txt": b"keep"}


def test_rollback_and_replay_use_the_runs_own_copy(tmp_path: Path) -> None:
    manifest = scripted_manifest(**WITH_WORKSPACE)
    result, _ = run_in(tmp_path, manifest, script=SCRIPT, files={"notes.md": "a\n"})
    copy = Path(result.workspace or "") / WORKSPACE
    record = Record.load(result.trace_path)
    assert recorded_manifest(record).resolve_path(f"{WORKSPACE}/x") == copy / "x"

    rolled = govrun("rollback", result.trace_path)
    assert rolled.code == 0, rolled.flat
    assert files(copy) == {"notes.md": b"a\n"}
    assert files(tmp_path / WORKSPACE) == {"notes.md": b"a\n"}

    shutil.rmtree(copy.parent)  # a trace replays anywhere: the copy is not needed
    replayed = govrun("replay", result.trace_path, "-o", tmp_path / "r.jsonl")
    assert replayed.code == 0, replayed.flat


def test_a_run_without_workspace_is_recorded_as_before(tmp_path: Path) -> None:
    result, _ = run_in(tmp_path, scripted_manifest(), script=SCRIPT, files={"notes.md": "a\n"})
    first = Path(result.trace_path).read_text().splitlines()[0]
    assert '"workspace"' not in first and result.workspace is None
    assert files(tmp_path / WORKSPACE) == {"notes.md": b"a\n", "out.md": b"# Out\n"}


def test_a_fork_goes_on_in_the_recorded_runs_copy(tmp_path: Path) -> None:
    manifest = scripted_manifest(**WITH_WORKSPACE)
    result, _ = run_in(tmp_path, manifest, script=SCRIPT, files={"notes.md": "a\n"})
    copy = Path(result.workspace or "") / WORKSPACE
    (copy / "out.md").unlink()  # so the fork's live write shows where it lands

    fork = tmp_path / "fork.jsonl"
    ran = govrun("replay", result.trace_path, "--live-from", "2", "-o", fork)

    assert ran.code == 0, ran.flat
    started = one(checked_events(fork), ev.RunStarted)
    assert started.workspace == result.workspace
    assert (copy / "out.md").read_text() == "# Out\n"  # step 2 ran live, in the run's copy
    assert files(tmp_path / WORKSPACE) == {"notes.md": b"a\n"}
    assert not (tmp_path / "fork.jsonl.workspace").exists()
