"""Rollback (issue 7): real runs change a temporary workspace, then `govrun rollback` (or the
run itself, `on_failure: rollback`) puts it back — byte for byte, modes included — refusing
any file that changed since the run unless --force, and never writing outside the root.

Every run here goes through ``run_in``, so each trace also verifies and replays strictly
(a run that rolled itself back included: replay answers the undos from the record).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from govrun.runtime.errors import ManifestError
from govrun.runtime.manifest.schema import NOT_SUPPORTED_YET, parse_manifest
from govrun.runtime.ops.rollback import default_output
from govrun.runtime.tools.base import FileUndo, ToolResult
from govrun.runtime.trace import events as ev
from govrun.runtime.trace.canonical import blob_dir
from govrun.runtime.trace.reader import read_trace
from govrun.runtime.trace.verify import verify_trace
from tests.support.agents import (
    WORKSPACE,
    answer,
    call,
    calls,
    fs_tools,
    of_type,
    one,
    run_in,
    scripted_manifest,
    shell_tool,
    tool_messages,
)
from tests.support.cli import govrun

BINARY = bytes(range(256)) + b"\x00\xff\xfe"
Snapshot = dict[str, tuple[Any, ...]]


def snapshot(root: Path) -> Snapshot:
    """Every entry under ``root``: kind, permission bits and bytes (links: their target)."""
    found: Snapshot = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                found[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes())
    return found


def seed(folder: Path) -> Path:
    """A workspace with a text file, a binary file, an executable and a nested folder."""
    ws = folder / WORKSPACE
    (ws / "docs").mkdir(parents=True)
    (ws / "notes.md").write_text("# Notes\n\nkeep me\n")
    (ws / "blob.bin").write_bytes(BINARY)
    (ws / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (ws / "run.sh").chmod(0o755)
    (ws / "docs" / "old.md").write_text("old doc\n")
    (ws / "tool.sh").write_bytes(b"#!/bin/sh\nexit 0\n")
    (ws / "tool.sh").chmod(0o755)
    return ws


def write(path: str, content: str) -> dict[str, Any]:
    return call("fs_write", {"path": path, "content": content})


def delete(path: str) -> dict[str, Any]:
    return call("fs_delete", {"path": path})


FS = fs_tools("write", "delete")

BUSY = [
    calls(
        write("notes.md", "# Notes\n\nrewritten\n"),
        write("new/deep/made.txt", "made by the run\n"),
        write("blob.bin", "not binary any more"),
    ),
    calls(
        delete("docs/old.md"),
        write("run.sh", "#!/bin/sh\necho changed\n"),
        delete("tool.sh"),
    ),
    calls(write("notes.md", "# Notes\n\nrewritten twice\n"), write("top.txt", "new at top\n")),
    answer("done"),
]
"""Writes, overwrites (a file twice), deletes, a nested folder, a binary file, 0755 files."""


def busy_run(tmp_path: Path, **sections: Any) -> tuple[Any, list[ev.Event], Snapshot]:
    ws = seed(tmp_path)
    before = snapshot(ws)
    result, events = run_in(tmp_path, scripted_manifest(tools=FS, **sections), script=BUSY)
    return result, events, before


def rollback_events(path: str | Path) -> list[ev.Rollback]:
    events, _ = read_trace(path)
    return of_type(events, ev.Rollback)


# --- govrun rollback -------------------------------------------------------------------------


def test_rollback_restores_the_workspace_byte_for_byte(tmp_path: Path) -> None:
    result, events, before = busy_run(tmp_path)
    ws = tmp_path / WORKSPACE
    assert result.status == "completed"
    after = snapshot(ws)
    assert after != before and "new/deep/made.txt" in after and "tool.sh" not in after
    assert after["run.sh"][1] == 0o755  # an overwrite keeps the mode

    ran = govrun("rollback", result.trace_path)
    assert ran.code == 0, ran.out + ran.err
    assert snapshot(ws) == before  # paths, bytes and modes; the run's folders are gone
    assert "8 of 8 effects undone" in ran.flat

    trace = default_output(Path(result.trace_path))
    report = verify_trace(trace)
    assert report.ok and report.finished
    rolled, _ = read_trace(trace)
    started = rolled[0]
    assert isinstance(started, ev.RunStarted)
    assert started.parent == {
        "kind": "rollback",
        "trace": result.trace_path,
        "run_id": result.run_id,
        "step": None,
        "head": result.head,
    }
    assert started.manifest == one(events, ev.RunStarted).manifest
    undos = of_type(rolled, ev.Rollback)
    # newest first: step 3's calls (last call first), then step 2's, then step 1's
    assert [(u.call_step, u.target) for u in undos] == [
        (3, "top.txt"),
        (3, "notes.md"),
        (2, "tool.sh"),
        (2, "run.sh"),
        (2, "docs/old.md"),
        (1, "blob.bin"),
        (1, "new/deep/made.txt"),
        (1, "notes.md"),
    ]
    assert all(u.ok and u.failure_class is None for u in undos)
    assert [u.action for u in undos][:2] == ["removed", "restored"]
    finished = rolled[-1]
    assert isinstance(finished, ev.RunFinished)
    assert (finished.status, finished.failure_class) == ("completed", None)

    again = govrun("rollback", result.trace_path)  # never overwrites a trace
    assert again.code == 2 and "already exists" in again.flat


def test_undo_records_are_evidence_and_pre_images_are_private_blobs(tmp_path: Path) -> None:
    result, events, _ = busy_run(tmp_path)
    finished = {(e.step, e.evidence["path"]): e for e in of_type(events, ev.ToolFinished)}
    overwrite = finished[(1, "blob.bin")].evidence["undo"]
    assert overwrite["kind"] == "restore" and overwrite["mode"] == 0o644
    assert overwrite["root"] == str((tmp_path / WORKSPACE).resolve())
    blob = blob_dir(result.trace_path) / overwrite["pre_image"]
    assert blob.read_bytes() == BINARY
    assert stat.S_IMODE(blob.stat().st_mode) == 0o600
    created = finished[(1, "new/deep/made.txt")].evidence["undo"]
    assert created["kind"] == "remove" and created["pre_image"] is None
    assert created["created_dirs"] == ["new", "new/deep"]
    deleted = finished[(2, "docs/old.md")].evidence["undo"]
    assert deleted["kind"] == "restore" and deleted["post_image"] is None
    assert finished[(2, "tool.sh")].evidence["undo"]["mode"] == 0o755
    # the bytes live in the sidecar only: not in the trace, not in what the model was told
    trace = Path(result.trace_path).read_bytes()
    assert b"keep me" not in trace and b"old doc" not in trace
    assert not any("keep me" in str(m["content"]) for m in tool_messages(events))


def test_tool_result_undo_never_reaches_data_or_dumps() -> None:
    undo = FileUndo(path="a", root="/r", pre_image=b"secret", post_image=None, mode=0o600)
    result = ToolResult(ok=True, output="ok", undo=undo)
    assert "undo" not in result.model_dump() and "secret" not in result.model_dump_json()


def test_to_step_undoes_only_later_steps(tmp_path: Path) -> None:
    result, _, before = busy_run(tmp_path)
    ws = tmp_path / WORKSPACE
    ran = govrun("rollback", result.trace_path, "--to-step", 1)
    assert ran.code == 0, ran.out
    now = snapshot(ws)
    # as after step 1: its writes stand, steps 2 and 3 are undone
    assert (ws / "notes.md").read_text() == "# Notes\n\nrewritten\n"
    assert (ws / "new/deep/made.txt").read_text() == "made by the run\n"
    assert (ws / "blob.bin").read_text() == "not binary any more"
    assert now["docs/old.md"] == before["docs/old.md"]
    assert now["run.sh"] == before["run.sh"] and now["tool.sh"] == before["tool.sh"]
    assert "top.txt" not in now
    undos = rollback_events(default_output(Path(result.trace_path)))
    assert {u.call_step for u in undos} == {2, 3}
    assert read_trace(default_output(Path(result.trace_path)))[0][0].parent["step"] == 1


def test_a_file_changed_after_the_run_is_refused_unless_forced(tmp_path: Path) -> None:
    result, _, before = busy_run(tmp_path)
    ws = tmp_path / WORKSPACE
    (ws / "top.txt").write_text("edited by a person after the run\n")

    ran = govrun("rollback", result.trace_path)
    assert ran.code == 1
    assert "refused: changed since the run" in ran.flat
    assert (ws / "top.txt").read_text() == "edited by a person after the run\n"  # untouched
    expected = {k: v for k, v in before.items()}
    expected["top.txt"] = snapshot(ws)["top.txt"]
    assert snapshot(ws) == expected  # every other file was still restored
    trace = default_output(Path(result.trace_path))
    refused = [u for u in rollback_events(trace) if not u.ok]
    assert [(u.target, u.action, u.failure_class) for u in refused] == [
        ("top.txt", "refused", "verification_failed")
    ]
    finished = read_trace(trace)[0][-1]
    assert isinstance(finished, ev.RunFinished)
    assert (finished.status, finished.failure_class) == ("failed", "verification_failed")

    forced = govrun("rollback", result.trace_path, "--force", "-o", tmp_path / "forced.jsonl")
    assert forced.code == 0, forced.out
    assert snapshot(ws) == before
    undos = rollback_events(tmp_path / "forced.jsonl")
    assert [u.forced for u in undos if u.target == "top.txt"] == [True]
    assert "skipped: already undone" in forced.flat  # the rest was restored the first time


def test_a_file_deleted_after_the_run_is_refused_unless_forced(tmp_path: Path) -> None:
    result, _, before = busy_run(tmp_path)
    ws = tmp_path / WORKSPACE
    (ws / "run.sh").unlink()
    ran = govrun("rollback", result.trace_path)
    assert ran.code == 1
    assert "changed since the run: deleted" in ran.flat
    assert not (ws / "run.sh").exists()
    assert govrun("rollback", result.trace_path, "--force", "-o", tmp_path / "f.jsonl").code == 0
    assert snapshot(ws) == before


def test_a_created_file_deleted_since_still_takes_its_folders_away(tmp_path: Path) -> None:
    result, _, before = busy_run(tmp_path)
    (tmp_path / WORKSPACE / "new" / "deep" / "made.txt").unlink()
    ran = govrun("rollback", result.trace_path)
    assert ran.code == 0, ran.out
    assert "was already gone" in ran.flat
    assert snapshot(tmp_path / WORKSPACE) == before


def test_a_missing_pre_image_is_damage_verify_names_and_rollback_refuses(tmp_path: Path) -> None:
    """A pre-image blob is part of the record (issue 17): verify checks it like a payload
    blob, so a deleted one makes the trace damaged and rollback touches nothing."""
    result, events, _ = busy_run(tmp_path)
    finished = {e.evidence["path"]: e for e in of_type(events, ev.ToolFinished) if e.step == 1}
    digest = finished["blob.bin"].evidence["undo"]["pre_image"]
    (blob_dir(result.trace_path) / digest).unlink()
    before = (tmp_path / WORKSPACE / "notes.md").read_text()
    verified = govrun("verify", result.trace_path)
    assert (
        verified.code == 1 and "pre-image blob" in verified.flat and "is missing" in verified.flat
    )
    ran = govrun("rollback", result.trace_path)
    assert ran.code == 2 and "pre-image blob" in ran.flat
    assert not default_output(Path(result.trace_path)).exists()
    assert (tmp_path / WORKSPACE / "notes.md").read_text() == before


def test_a_symlink_swapped_in_is_refused_and_nothing_outside_is_written(tmp_path: Path) -> None:
    result, _, _ = busy_run(tmp_path)
    ws = tmp_path / WORKSPACE
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.txt").write_text("outside, must stay\n")
    (ws / "notes.md").unlink()
    (ws / "notes.md").symlink_to(outside / "target.txt")
    (ws / "new" / "deep" / "made.txt").unlink()
    (ws / "new" / "deep").rmdir()
    (ws / "new" / "deep").symlink_to(outside)
    (outside / "made.txt").write_text("made by the run\n")  # what the run left, but outside
    before_outside = snapshot(outside)

    ran = govrun("rollback", result.trace_path)
    assert ran.code == 1
    undos = {
        (u.call_step, u.target): u for u in rollback_events(default_output(Path(result.trace_path)))
    }
    assert undos[(3, "notes.md")].failure_class == "verification_failed"
    assert "symlink" in undos[(3, "notes.md")].reason
    assert undos[(1, "new/deep/made.txt")].failure_class == "policy_denied"
    assert snapshot(outside) == before_outside
    assert (ws / "notes.md").is_symlink()

    forced = govrun("rollback", result.trace_path, "--force", "-o", tmp_path / "f.jsonl")
    assert forced.code == 1  # the symlinked folder is refused even with --force
    assert snapshot(outside) == before_outside  # the link was replaced, not written through
    assert not (ws / "notes.md").is_symlink()
    assert (ws / "notes.md").read_text() == "# Notes\n\nkeep me\n"
    undos = {(u.call_step, u.target): u for u in rollback_events(tmp_path / "f.jsonl")}
    assert undos[(1, "new/deep/made.txt")].failure_class == "policy_denied"


def test_dry_run_touches_nothing_and_writes_no_trace(tmp_path: Path) -> None:
    result, _, _ = busy_run(tmp_path)
    ws = tmp_path / WORKSPACE
    after = snapshot(ws)
    ran = govrun("rollback", result.trace_path, "--dry-run")
    assert ran.code == 0, ran.out
    assert "would be undone (dry run)" in ran.flat and "8 of 8 effects would be undone" in ran.flat
    assert "refused" not in ran.flat  # notes.md, written twice, is planned in order
    assert snapshot(ws) == after
    assert not default_output(Path(result.trace_path)).exists()


def test_shell_undo_commands_run_newest_first(tmp_path: Path) -> None:
    tools = [
        shell_tool(
            {"mkdir": {"max_args": 1}, "rmdir": {"max_args": 1}}, name="mk", undo="rmdir {argv.1}"
        ),
        shell_tool({"touch": {}, "rm": {}}, name="touch", undo="rm -- {argv.1}"),
    ]
    script = [
        calls(call("mk", {"command": "mkdir made"})),
        calls(call("touch", {"command": "touch made/file.txt"})),
        answer(),
    ]
    (tmp_path / WORKSPACE).mkdir(parents=True)
    before = snapshot(tmp_path / WORKSPACE)
    result, events = run_in(tmp_path, scripted_manifest(tools=tools), script=script)
    undos = [e.evidence["undo"] for e in of_type(events, ev.ToolFinished)]
    assert undos == [
        {"kind": "command", "argv": ["rmdir", "made"]},
        {"kind": "command", "argv": ["rm", "--", "made/file.txt"]},
    ]
    assert (tmp_path / WORKSPACE / "made" / "file.txt").exists()
    ran = govrun("rollback", result.trace_path)
    assert ran.code == 0, ran.out
    assert snapshot(tmp_path / WORKSPACE) == before
    done = rollback_events(default_output(Path(result.trace_path)))
    assert [(u.target, u.action, u.evidence["exit_code"]) for u in done] == [
        ("rm -- made/file.txt", "undone", 0),
        ("rmdir made", "undone", 0),
    ]


def test_an_undo_the_scope_refuses_is_recorded_irreversible(tmp_path: Path) -> None:
    """`mkdir -p a` renders `rmdir -p`: rmdir may not take -p, so nothing will run later."""
    commands = {"mkdir": {"flags": ["-p"]}, "rmdir": {}}
    tools = [shell_tool(commands, name="mk", undo="rmdir {argv.1}")]
    script = [calls(call("mk", {"command": "mkdir -p a"})), answer()]
    result, events = run_in(tmp_path, scripted_manifest(tools=tools), script=script)
    undo = one(events, ev.ToolFinished).evidence["undo"]
    assert undo["kind"] == "irreversible" and "'-p' is not allowed" in undo["reason"]
    ran = govrun("rollback", result.trace_path)
    assert ran.code == 1 and "skipped: irreversible" in ran.flat
    assert (tmp_path / WORKSPACE / "a").is_dir()


def test_a_file_over_the_undo_limit_is_irreversible_not_skipped(tmp_path: Path) -> None:
    tools = [{**FS[0], "undo_max_bytes": 8}]
    script = [calls(write("big.txt", "small"), write("tiny.txt", "t")), answer()]
    files = {"big.txt": "more than eight bytes", "tiny.txt": "8 bytes!"}
    result, events = run_in(tmp_path, scripted_manifest(tools=tools), script=script, files=files)
    undo = [e.evidence["undo"] for e in of_type(events, ev.ToolFinished)]
    assert undo[0]["kind"] == "irreversible" and "undo_max_bytes" in undo[0]["reason"]
    assert undo[1]["kind"] == "restore"  # exactly at the limit is kept
    ran = govrun("rollback", result.trace_path)
    assert ran.code == 1
    assert "skipped: irreversible" in ran.flat and "1 of 2 effects undone" in ran.flat
    assert (tmp_path / WORKSPACE / "tiny.txt").read_text() == "8 bytes!"
    assert (tmp_path / WORKSPACE / "big.txt").read_text() == "small"
    finished = read_trace(default_output(Path(result.trace_path)))[0][-1]
    assert isinstance(finished, ev.RunFinished) and finished.failure_class == "missing_evidence"


def test_a_tampered_trace_is_refused(tmp_path: Path) -> None:
    result, _, _ = busy_run(tmp_path)
    ws = tmp_path / WORKSPACE
    after = snapshot(ws)
    path = Path(result.trace_path)
    lines = path.read_bytes().splitlines(keepends=True)
    for i, line in enumerate(lines):
        event = json.loads(line)
        if event["type"] == "tool_finished":
            event["evidence"]["undo"]["root"] = str(tmp_path / "elsewhere")
            lines[i] = json.dumps(event, sort_keys=True, separators=(",", ":")).encode() + b"\n"
            break
    path.write_bytes(b"".join(lines))
    ran = govrun("rollback", result.trace_path)
    assert ran.code == 2
    assert "does not verify" in ran.flat
    assert snapshot(ws) == after
    assert not default_output(path).exists()


def test_a_missing_trace_and_a_negative_step_are_bad_input(tmp_path: Path) -> None:
    assert govrun("rollback", tmp_path / "nope.jsonl").code == 2
    result, _, _ = busy_run(tmp_path)
    assert govrun("rollback", result.trace_path, "--to-step", -1).code == 2


def test_nothing_to_roll_back_after_the_last_step(tmp_path: Path) -> None:
    result, _, _ = busy_run(tmp_path)
    ran = govrun("rollback", result.trace_path, "--to-step", 3)
    assert ran.code == 0 and "nothing to roll back" in ran.flat
    assert not default_output(Path(result.trace_path)).exists()


# --- on_failure: rollback --------------------------------------------------------------------


def test_on_failure_rolls_back_a_run_whose_success_check_fails(tmp_path: Path) -> None:
    success = [{"check": "file_exists", "path": f"{WORKSPACE}/never.md"}]
    result, events, before = busy_run(tmp_path, on_failure="rollback", success=success)
    assert (result.status, result.failure_class) == ("failed", "verification_failed")
    assert snapshot(tmp_path / WORKSPACE) == before
    tail = [e.type for e in events][-10:]
    assert tail == ["step_finished", *["rollback"] * 8, "run_finished"]
    assert all(e.ok for e in of_type(events, ev.Rollback))
    assert "rolled back (on_failure): 8 of 8 effects undone" in result.reason
    # the effects are undone already: `govrun rollback` finds nothing left to do
    ran = govrun("rollback", result.trace_path)
    assert ran.code == 0 and "8 already undone by the run itself" in ran.flat


def test_on_failure_rolls_back_after_a_failed_verification(tmp_path: Path) -> None:
    ws = seed(tmp_path)
    before = snapshot(ws)
    checked = {
        **FS[0],
        "verify": [{"check": "file_contains", "path": "{args.path}", "pattern": "^# "}],
    }
    script = [calls(write("notes.md", "# fine\n"), write("plain.txt", "no title\n")), answer()]
    result, events = run_in(
        tmp_path, scripted_manifest(tools=[checked], on_failure="rollback"), script=script
    )
    assert (result.status, result.failure_class) == ("failed", "verification_failed")
    assert result.reason.startswith("a verification failed during the run; rolled back")
    assert snapshot(ws) == before
    assert [e.target for e in of_type(events, ev.Rollback)] == ["plain.txt", "notes.md"]
    assert [e.type for e in events][-1] == "run_finished"


def test_on_failure_leaves_a_completed_run_alone(tmp_path: Path) -> None:
    result, events, before = busy_run(tmp_path, on_failure="rollback")
    assert result.status == "completed"
    assert not of_type(events, ev.Rollback)
    assert snapshot(tmp_path / WORKSPACE) != before


def test_on_failure_refuses_a_file_changed_during_the_run(tmp_path: Path) -> None:
    """A file changed behind the record's back (here by a shell tool that declares no undo)
    is refused like any other, with no --force in a run; the rest is still rolled back."""
    tools = [*FS, shell_tool({"cp": {}}, name="cp")]
    script = [
        calls(write("a.txt", "A from the run\n"), write("b.txt", "B from the run\n")),
        calls(call("cp", {"command": "cp b.txt a.txt"})),
        answer(),
    ]
    success = [{"check": "file_exists", "path": f"{WORKSPACE}/never.md"}]
    manifest = scripted_manifest(tools=tools, on_failure="rollback", success=success)
    result, events = run_in(tmp_path, manifest, script=script)
    assert result.status == "failed"
    assert "1 of 2 effects undone (1 refused)" in result.reason
    undos = {e.target: e for e in of_type(events, ev.Rollback)}
    assert undos["b.txt"].ok and not (tmp_path / WORKSPACE / "b.txt").exists()
    assert (undos["a.txt"].action, undos["a.txt"].failure_class) == (
        "refused",
        "verification_failed",
    )
    assert (tmp_path / WORKSPACE / "a.txt").read_text() == "B from the run\n"


# --- the manifest ----------------------------------------------------------------------------

OPENAI = "model: {provider: openai, name: m}\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source="agent.yaml", env={})
    return caught.value.problems


@pytest.mark.parametrize(
    ("tool", "expected"),
    [
        (
            "{name: w, uses: fs.write, scope: {roots: [x]}, undo: 'rm x'}",
            "tools[0].undo: expected `undo` only on shell tools",
        ),
        (
            "{name: s, uses: shell, scope: {roots: [x], commands: {mkdir: {}}}, "
            "undo: 'rmdir {argv.1}'}",
            "tools[0].undo: expected a command allowed by scope.commands (mkdir); got 'rmdir'",
        ),
        (
            "{name: s, uses: shell, scope: {roots: [x], commands: {rm: {}}}, undo: 'rm -rf x'}",
            "expected flags allowed for rm in scope.commands (none); got '-rf'",
        ),
        (
            "{name: s, uses: shell, scope: {roots: [x], commands: {rm: {}}}, undo: 'rm {cwd}'}",
            "expected only {argv.N} or {args.NAME} placeholders; got {cwd}",
        ),
        (
            "{name: s, uses: shell, scope: {roots: [x], commands: {rm: {}}}, undo_max_bytes: 5}",
            "tools[0].undo_max_bytes: expected `undo_max_bytes` only on fs.write and fs.delete",
        ),
    ],
)
def test_manifest_refuses_misplaced_or_disallowed_undo(tool: str, expected: str) -> None:
    found = problems(f"name: x\n{OPENAI}tools:\n  - {tool}\n")
    assert any(expected in p for p in found), found


def test_manifest_accepts_undo_and_on_failure_and_documents_them() -> None:
    from govrun.runtime.manifest.schema import manifest_json_schema

    text = (
        f"name: x\n{OPENAI}on_failure: rollback\ntools:\n"
        "  - {name: s, uses: shell, scope: {roots: [x], commands: {mkdir: {}, rmdir: {}}}, "
        "undo: 'rmdir {argv.1}'}\n"
    )
    m = parse_manifest(text, env={})
    assert m.on_failure == "rollback" and m.tools[0].undo == "rmdir {argv.1}"
    assert "on_failure" not in NOT_SUPPORTED_YET and "tools[].undo" not in NOT_SUPPORTED_YET
    schema = manifest_json_schema()
    assert "rollback" in json.dumps(schema["properties"]["on_failure"])
    tool = schema["$defs"]["ToolSpec"]["properties"]
    assert "undo" in tool and "undo_max_bytes" in tool
    assert any("on_failure" in p for p in problems(f"name: x\n{OPENAI}on_failure: retry\n"))


def test_an_edited_pre_image_fails_verify_even_with_the_head_and_pinned_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before issue 17, `verify --head --trusted-keys` passed this trace and only rollback
    noticed: the bytes a restore would write are part of the record."""
    home = tmp_path / "home"
    monkeypatch.setenv("GOVRUN_HOME", str(home))
    assert govrun("keys", "init").code == 0
    from govrun.runtime.govern.approvers import local_identity
    from govrun.runtime.trace.signing import load_default_signer, trusted_key_line

    keys = tmp_path / "trusted.txt"
    keys.write_text(trusted_key_line(load_default_signer(), local_identity()) + "\n")
    result, events, _ = busy_run(tmp_path / "run")
    finished = {e.evidence["path"]: e for e in of_type(events, ev.ToolFinished) if e.step == 1}
    digest = finished["notes.md"].evidence["undo"]["pre_image"]
    pinned = govrun("verify", result.trace_path, "--head", result.head, "--trusted-keys", keys)
    assert pinned.code == 0, pinned.flat
    (blob_dir(result.trace_path) / digest).write_bytes(b"# Notes\n\nsomething else\n")
    ran = govrun("verify", result.trace_path, "--head", result.head, "--trusted-keys", keys)
    assert ran.code == 1
    assert f"pre-image blob {digest[:12]}" in ran.flat and "was edited" in ran.flat
