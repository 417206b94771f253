"""`govrun verify` and `govrun show` through the real typer app (CliRunner), on the golden
traces in fixtures/traces (see its README for what verify must say about each) and on a
trace written by a real `govrun run` of the offline quickstart agent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.cli import govrun
from tests.support.traces import rechain

REPO = Path(__file__).resolve().parent.parent
TRACES = REPO / "fixtures" / "traces"
COMPLETE_HEAD = "16856f78c8d43ed8fecc36710e0ef16d9214f01ca0cc15dfc330473020817545"
TORN_HEAD = "e4218372b421129611ed1b610dea591dabe11f4d673d7b213a924ed6339753f9"
BLOB = "d48d77c09b0a75472ab6a1a27a49b009f2357969e5eca9886514d44502247975"

ENTRY = "from govrun.cli.main import main; main()"


def events_of(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


# --- verify: the golden traces ---------------------------------------------------------------


def test_verify_complete() -> None:
    ran = govrun("verify", TRACES / "complete.jsonl")
    assert ran.code == 0, ran.flat
    assert "✓ intact" in ran.flat
    assert "39 events of run run-0001" in ran.flat
    assert f"head {COMPLETE_HEAD}" in ran.flat


def test_verify_complete_with_the_right_head() -> None:
    ran = govrun("verify", TRACES / "complete.jsonl", "--head", COMPLETE_HEAD)
    assert ran.code == 0, ran.flat
    assert "intact" in ran.flat
    assert "matches the head given" in ran.flat


@pytest.mark.parametrize("head", [TORN_HEAD, "0" * 64, "not-a-hash"])
def test_verify_complete_with_a_wrong_head(head: str) -> None:
    """A head kept elsewhere that differs means events were cut off, appended or
    re-chained: the chain alone cannot tell."""
    ran = govrun("verify", TRACES / "complete.jsonl", "--head", head)
    assert ran.code == 1, ran.flat
    assert "✗ head mismatch" in ran.flat
    assert "cut off" in ran.flat
    assert COMPLETE_HEAD[:16] in ran.flat  # the head the trace actually has
    assert "✓" not in ran.flat


def test_verify_torn() -> None:
    ran = govrun("verify", TRACES / "torn.jsonl")
    assert ran.code == 1, ran.flat
    assert "✗ incomplete" in ran.flat
    assert "intact up to seq 30, then a torn final line (line 32)" in ran.flat
    assert "a crash mid-write, not tampering" in ran.flat
    assert "Nothing was altered" in ran.flat
    assert TORN_HEAD in ran.flat


def test_verify_unfinished() -> None:
    ran = govrun("verify", TRACES / "unfinished.jsonl")
    assert ran.code == 1, ran.flat
    assert "✗ incomplete" in ran.flat
    assert "intact up to seq 30, then no run_finished" in ran.flat
    assert "Nothing was altered" in ran.flat
    assert TORN_HEAD in ran.flat  # same head as torn.jsonl


def test_verify_tampered() -> None:
    ran = govrun("verify", TRACES / "tampered.jsonl")
    assert ran.code == 1, ran.flat
    assert "✗ edited" in ran.flat
    assert "seq 22 (line 23) does not match its hash: the event was edited" in ran.flat
    assert "verified up to seq 21" in ran.flat
    assert "Nothing was altered" not in ran.flat  # tampering is never excused as a crash


def test_verify_with_blob() -> None:
    ran = govrun("verify", TRACES / "with_blob.jsonl")
    assert ran.code == 0, ran.flat
    assert "✓ intact" in ran.flat
    assert "30 events of run run-0002, 2 blobs" in ran.flat


def copy_with_blobs(tmp_path: Path) -> Path:
    trace = tmp_path / "with_blob.jsonl"
    shutil.copy(TRACES / "with_blob.jsonl", trace)
    shutil.copytree(TRACES / "with_blob.jsonl.blobs", tmp_path / "with_blob.jsonl.blobs")
    return trace


def test_verify_a_copy_with_its_blobs_is_intact(tmp_path: Path) -> None:
    ran = govrun("verify", copy_with_blobs(tmp_path))
    assert ran.code == 0, ran.flat


def test_verify_with_an_edited_blob(tmp_path: Path) -> None:
    trace = copy_with_blobs(tmp_path)
    blob = tmp_path / "with_blob.jsonl.blobs" / BLOB
    content = blob.read_bytes()
    blob.write_bytes(content.replace(b"PASSED", b"FAILED", 1))
    assert blob.read_bytes() != content
    ran = govrun("verify", trace)
    assert ran.code == 1, ran.flat
    assert "✗ bad blob" in ran.flat
    assert f"blob {BLOB[:12]}… of seq 22 (line 23) does not match its hash" in ran.flat
    assert "the blob was edited" in ran.flat


def test_verify_with_a_missing_blob(tmp_path: Path) -> None:
    trace = copy_with_blobs(tmp_path)
    (tmp_path / "with_blob.jsonl.blobs" / BLOB).unlink()
    ran = govrun("verify", trace)
    assert ran.code == 1, ran.flat
    assert "✗ bad blob" in ran.flat
    assert "missing" in ran.flat


def test_a_fifo_in_place_of_a_blob_is_never_waited_on(tmp_path: Path) -> None:
    trace = copy_with_blobs(tmp_path)
    blob = tmp_path / "with_blob.jsonl.blobs" / BLOB
    blob.unlink()
    os.mkfifo(blob)  # opened for reading, it would wait for a writer forever
    ran = govrun("verify", trace)
    assert ran.code == 1 and "✗ bad blob" in ran.flat, ran.flat
    ran = govrun("show", trace)
    assert ran.code == 0, ran.flat


# --- verify --json ----------------------------------------------------------------------------

JSON_VERDICTS = {
    # fixture: (ok, intact, problem kind, crash)
    "complete": (True, True, None, None),
    "torn": (False, True, "torn", True),
    "unfinished": (False, True, "unfinished", True),
    "tampered": (False, False, "edited", False),
    "with_blob": (True, True, None, None),
}


@pytest.mark.parametrize("name", sorted(JSON_VERDICTS))
def test_verify_json(name: str) -> None:
    ok, intact, kind, crash = JSON_VERDICTS[name]
    ran = govrun("verify", TRACES / f"{name}.jsonl", "--json")
    assert ran.code == (0 if ok else 1), ran.flat
    doc = json.loads(ran.out)
    assert doc["ok"] is ok
    assert doc["intact"] is intact
    assert doc["path"] == str(TRACES / f"{name}.jsonl")
    if kind is None:
        assert doc["problem"] is None
        assert doc["finished"] is True
    else:
        assert doc["problem"]["kind"] == kind
        assert doc["problem"]["crash"] is crash
        assert doc["problem"]["message"]
    if name == "tampered":
        assert (doc["problem"]["seq"], doc["problem"]["line"]) == (22, 23)
    if name == "complete":
        assert (doc["events"], doc["head"], doc["run_id"]) == (39, COMPLETE_HEAD, "run-0001")


def test_verify_json_with_a_wrong_head() -> None:
    ran = govrun("verify", TRACES / "complete.jsonl", "--json", "--head", TORN_HEAD)
    assert ran.code == 1
    doc = json.loads(ran.out)
    assert doc["head_checked"] is True
    assert doc["problem"]["kind"] == "head_mismatch"
    assert doc["intact"] is False


# --- verify: not a trace ----------------------------------------------------------------------


def test_verify_missing_file(tmp_path: Path) -> None:
    ran = govrun("verify", tmp_path / "nope.jsonl")
    assert ran.code == 2
    assert "no such trace" in ran.flat


NOT_TRACES = {
    "random_text": "Lorem ipsum dolor sit amet,\nconsectetur adipiscing elit.\n",
    "one_line_no_newline": "just some words",
    "json_but_not_events": '{"name": "x", "value": 1}\n{"name": "y"}\n',
    "binary": "\x00\x01\x02\xff garbage \x7f\n",
}


@pytest.mark.parametrize("name", sorted(NOT_TRACES))
def test_verify_a_file_that_is_not_a_trace(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.jsonl"
    path.write_text(NOT_TRACES[name], errors="surrogateescape")
    ran = govrun("verify", path)
    assert ran.code == 2, ran.flat  # bad input, not a failed check
    assert "✓" not in ran.flat
    assert "not a govrun trace" in ran.flat, ran.flat
    ran_json = govrun("verify", path, "--json")
    assert ran_json.code == 2
    verdict = json.loads(ran_json.out)
    assert (verdict["ok"], verdict["problem"]["kind"]) == (False, "not_a_trace")


def test_damage_to_the_first_line_of_a_real_trace_is_not_called_foreign(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    lines = (TRACES / "complete.jsonl").read_bytes().splitlines(keepends=True)
    path.write_bytes(b"{garbage" + lines[0][8:] + b"".join(lines[1:]))
    ran = govrun("verify", path)
    assert ran.code == 1, ran.flat
    assert "edited" in ran.flat and "not a govrun trace" not in ran.flat


def test_show_says_when_a_trace_does_not_verify() -> None:
    assert "integrity ✓ intact and complete" in govrun("show", TRACES / "complete.jsonl").flat
    tampered = govrun("show", TRACES / "tampered.jsonl").flat
    assert "integrity ✗ edited: seq 22" in tampered and "govrun verify" in tampered
    assert "ends early (torn)" in govrun("show", TRACES / "torn.jsonl").flat


def test_events_schema_accepts_blob_references_as_stored() -> None:
    import jsonschema

    schema = json.loads(govrun("schema", "events").out)
    validator = jsonschema.Draft202012Validator(schema)
    lines = (TRACES / "with_blob.jsonl").read_bytes().splitlines()
    assert sum(b'"$blob"' in line for line in lines) == 2
    for line in lines:
        assert not list(validator.iter_errors(json.loads(line))), line[:120]
    forged = json.loads(lines[0])
    forged["agent"] = {"$blob": "not-a-hash", "size": 1}
    assert list(validator.iter_errors(forged))


@pytest.mark.parametrize("name", sorted(NOT_TRACES))
def test_show_a_file_that_is_not_a_trace(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.jsonl"
    path.write_text(NOT_TRACES[name], errors="surrogateescape")
    ran = govrun("show", path)  # says what verify says: not a govrun trace (issue 17)
    assert ran.code == 2, ran.flat
    assert ran.out == ""
    if NOT_TRACES[name].startswith("{"):
        assert f"error: {path}:1: " in ran.flat  # file:line of the first bad line
        assert "govrun verify" in ran.flat  # and what to do next
    else:  # a trace, even one torn by a crash in its first event, begins with "{"
        assert f"error: {path} is not a govrun trace: it begins with " in ran.flat


def test_verify_and_show_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.touch()
    for command in ("verify", "show"):
        ran = govrun(command, path)
        assert ran.code == 2
        assert f"error: {path}: the trace is empty" in ran.flat


# --- newer schema ----------------------------------------------------------------------------


def test_show_and_verify_refuse_a_newer_schema(tmp_path: Path) -> None:
    events = events_of(TRACES / "complete.jsonl")
    for event in events:
        event["v"] = 3
    path = tmp_path / "v3.jsonl"
    path.write_bytes(rechain(events))
    for command in ("verify", "show"):
        ran = govrun(command, path)
        assert ran.code == 2, (command, ran.flat)
        assert "schema v3" in ran.flat
        assert "Upgrade govrun" in ran.flat
        assert ran.out == "", command  # an error, on stderr, not a verdict or a summary
    ran = govrun("verify", path, "--json")
    assert ran.code == 2
    assert "Upgrade govrun" in ran.flat


def test_rechained_v1_trace_still_verifies(tmp_path: Path) -> None:
    """Control for the test above: re-chaining alone does not make a trace unreadable."""
    path = tmp_path / "v1.jsonl"
    path.write_bytes(rechain(events_of(TRACES / "complete.jsonl")))
    assert govrun("verify", path).code == 0


# --- show ------------------------------------------------------------------------------------


def test_show_complete() -> None:
    ran = govrun("show", TRACES / "complete.jsonl")
    assert ran.code == 0, ran.flat
    finished = events_of(TRACES / "complete.jsonl")[-1]
    totals = finished["totals"]
    text = ran.flat
    assert "agent notes-agent" in text
    assert "run run-0001" in text
    assert "status COMPLETED The model gave a final answer." in text
    assert f"steps {finished['steps']} (39 events)" in text
    assert f"model calls {totals['model_calls']}" in text
    assert f"tool calls {totals['tool_calls']}" in text
    assert f"tokens {totals['tokens']:,}" in text
    assert f"cost ${totals['cost_usd']:.4f}" in text
    assert "denials 1" in text
    # the denials table: step, tool, rule, reason
    assert "denied calls" in text
    row = re.search(r"│ 2 +│ shell\.run +│ no-network +│ Network access", ran.out)
    assert row, ran.out
    assert "answer Done: wrote notes/summary.md" in text
    assert "torn" not in text and "No run_finished" not in text


@pytest.mark.parametrize("name", ["torn", "unfinished"])
def test_show_a_crashed_trace_still_works(name: str) -> None:
    ran = govrun("show", TRACES / f"{name}.jsonl")
    assert ran.code == 0, ran.flat
    text = ran.flat
    assert "agent notes-agent" in text
    assert "status UNFINISHED" in text
    assert "(31 events)" in text
    assert "denied calls" in text
    if name == "torn":
        assert "torn line (line 32" in text
        assert "crashed mid-write" in text
    else:
        assert "No run_finished" in text
        assert "torn line" not in text


def test_show_with_blob_inlines_nothing_huge() -> None:
    ran = govrun("show", TRACES / "with_blob.jsonl")
    assert ran.code == 0, ran.flat
    assert "status COMPLETED" in ran.flat
    assert "run run-0002" in ran.flat
    assert len(ran.out.splitlines()) < 60  # one screen, not the 70 kB blob


def test_show_missing_file(tmp_path: Path) -> None:
    ran = govrun("show", tmp_path / "nope.jsonl")
    assert ran.code == 2
    assert "no such trace" in ran.flat


# --- a trace written by a real run ------------------------------------------------------------


def test_show_and_verify_a_real_run(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    run = govrun("run", REPO / "fixtures/agents/quickstart.yaml", "-o", trace)
    assert run.code == 0, run.flat
    head = events_of(trace)[-1]["hash"]

    verify = govrun("verify", trace, "--head", head)
    assert verify.code == 0, verify.flat
    assert "matches the head given" in verify.flat

    ran = govrun("show", trace)
    assert ran.code == 0, ran.flat
    text = ran.flat
    assert "agent quickstart" in text
    assert f"workspace {trace}.workspace" in text  # where the run's files are
    assert "status COMPLETED" in text
    assert "steps 5" in text
    assert "tool calls 4" in text
    assert "denials 2" in text
    assert re.search(r"│ 2 +│ read_file +│ no-dotenv +│", ran.out), ran.out
    assert re.search(r"│ 2 +│ write_file +│ scope +│", ran.out), ran.out
    assert "answer Done — the summary is in report.md" in text


def test_verify_json_is_plain_even_when_colour_is_forced() -> None:
    """A real process with FORCE_COLOR: `--json` is for programs, so no escape codes."""
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, "verify", "--json", str(TRACES / "tampered.jsonl")],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "FORCE_COLOR": "1", "COLUMNS": "40"},
    )
    assert done.returncode == 1, done.stderr
    assert "\x1b[" not in done.stdout
    assert json.loads(done.stdout)["problem"]["kind"] == "edited"
