"""Strict replay names the first divergence when exactly one thing changes.

One real run is recorded (scripted model, fs and shell tools in a temporary workspace, a
policy with a few rules, budgets, verify checks). Each test changes one thing — the
manifest it is replayed under, or the trace itself (re-chained) — and asserts the step, the
event and the fields of the first divergence, and that the message people see names them.
Unchanged inputs replay as identical even though run ids, signatures and durations differ.
"""

from __future__ import annotations

import copy
import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
import yaml

from govrun.runtime.govern.approvers import AutoApprover
from govrun.runtime.manifest.schema import Manifest, load_manifest
from govrun.runtime.ports import SystemClock
from govrun.runtime.replayer.adapters import ReplayClock, _result
from govrun.runtime.replayer.session import IGNORED, ReplayOutcome, assert_replays, replay
from govrun.runtime.tools import ToolResult
from govrun.runtime.trace import events as ev
from govrun.runtime.trace.reader import read_stored
from govrun.runtime.trace.record import Record
from tests.support.agents import (
    MANIFEST,
    SCRIPT,
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
)
from tests.support.cli import invoke
from tests.support.traces import rechain

POLICY: dict[str, Any] = {
    "default": "deny",
    "rules": [
        {"id": "reads", "tools": ["fs_list", "fs_read"], "effect": "allow"},
        {"id": "writes", "tools": ["fs_write"], "effect": "allow"},
        {"id": "echo", "tools": ["sh"], "effect": "allow"},
    ],
}
SHELL = shell_tool(
    {"echo": {}},
    verify=[
        {"id": "greets", "check": "output_matches", "pattern": "hello"},
        {"id": "exits-0", "check": "exit_code", "equals": 0},
    ],
)
PAD = {"name": "pad", "python": "tests.support.pytools:long_text", "description": "Make padding."}
BASE = scripted_manifest(
    tools=[*fs_tools("list", "read", "write"), SHELL, PAD],
    policy=POLICY,
    budgets={"max_steps": 10, "max_tool_calls": 10},
)
SCRIPT_TURNS = [
    calls(call("fs_list", {"path": "."}, id="c1")),
    calls(call("fs_read", {"path": "notes.md"}, id="c2")),
    calls(call("fs_write", {"path": "out.md", "content": "hi"}, id="c3")),
    calls(call("sh", {"command": "echo hello"}, id="c4")),
    answer("done"),
]
"""Step 1 lists, 2 reads, 3 writes, 4 runs a checked command, 5 answers."""


@dataclass(frozen=True)
class Recorded:
    """The recorded run: its folder (manifest, script, workspace) and its trace."""

    folder: Path
    trace: Path
    events: list[ev.Event]

    def stored(self) -> list[dict[str, Any]]:
        """The trace's events as stored (dicts), for editing."""
        return read_stored(self.trace)[0]

    def seq(self, kind: str, step: int) -> int:
        """The seq of the first event of ``kind`` at ``step``."""
        return next(e.seq for e in self.events if e.type == kind and e.step == step)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    folder = tmp_path_factory.mktemp("divergence")
    with pytest.MonkeyPatch.context() as mp:  # never sign with the developer's real key
        mp.setenv("GOVRUN_HOME", str(tmp_path_factory.mktemp("home")))
        result, events = run_in(folder, BASE, script=SCRIPT_TURNS, files={"notes.md": "# notes\n"})
    assert result.status == "completed" and result.steps == 5
    yield Recorded(folder, Path(result.trace_path), events)


def changed(rec: Recorded, name: str, edit: Callable[[dict[str, Any]], None]) -> Path:
    """The recorded manifest with one edit, written next to the original as NAME.yaml."""
    data = copy.deepcopy(BASE)
    edit(data)
    path = rec.folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def strict(record: Path, out: Path, manifest: Manifest | None = None) -> ReplayOutcome:
    return replay(Record.load(record), out, manifest=manifest, strict=True)


def rewritten(rec: Recorded, out: Path, edit: Callable[[list[dict[str, Any]]], None]) -> Path:
    """A copy of the trace with its events edited and the hash chain rebuilt."""
    events = rec.stored()
    edit(events)
    out.write_bytes(rechain(events))
    return out


# --- one manifest change at a time ----------------------------------------------------------


def _system(m: dict[str, Any]) -> None:
    m["system"] = "You are a reckless agent."


def _description(m: dict[str, Any]) -> None:
    m["tools"][1]["description"] = "Read any file you like."


def _parameter(m: dict[str, Any]) -> None:
    m["tools"][4]["python"] = "tests.support.pytools:slow"  # n: int becomes seconds: float


def _allowed_commands(m: dict[str, Any]) -> None:
    m["tools"][3]["scope"]["commands"]["ls"] = {}  # the model is told: echo, ls


def _order(m: dict[str, Any]) -> None:
    m["tools"] = m["tools"][::-1]


def _new_deny_rule(m: dict[str, Any]) -> None:
    rule = {"id": "no-out", "tools": ["fs_write"], "when": {"path": {"glob": "out*"}}}
    m["policy"]["rules"].insert(1, {**rule, "effect": "deny"})


def _rule_effect(m: dict[str, Any]) -> None:
    m["policy"]["rules"][1]["effect"] = "deny"  # rule `writes` keeps its id


def _max_tool_calls(m: dict[str, Any]) -> None:
    m["budgets"]["max_tool_calls"] = 2


def _max_steps(m: dict[str, Any]) -> None:
    m["budgets"]["max_steps"] = 2


def _output_pattern(m: dict[str, Any]) -> None:
    m["tools"][3]["verify"][0]["pattern"] = "goodbye"


def _exit_code(m: dict[str, Any]) -> None:
    m["tools"][3]["verify"][1]["equals"] = 1


@dataclass(frozen=True)
class Case:
    """One manifest edit and the first divergence it must produce."""

    edit: Callable[[dict[str, Any]], None]
    step: int
    event: str
    fields: tuple[str, ...]
    recorded_type: str | None = None
    """For a divergence of kind: what the record held there."""


CASES = {
    "system-prompt": Case(_system, 1, "model_request", ("messages_added", "prompt_hash")),
    "tool-description": Case(_description, 1, "model_request", ("prompt_hash",)),
    "tool-parameter": Case(_parameter, 1, "model_request", ("prompt_hash",)),
    "tool-allowed-commands": Case(_allowed_commands, 1, "model_request", ("prompt_hash",)),
    "tool-order": Case(_order, 1, "model_request", ("prompt_hash",)),
    "new-deny-rule": Case(
        _new_deny_rule,
        3,
        "tool_call",
        ("decision.effect", "decision.failure_class", "decision.reason", "decision.rule"),
    ),
    "rule-effect": Case(
        _rule_effect,
        3,
        "tool_call",
        ("decision.effect", "decision.failure_class", "decision.reason"),
    ),
    "max-tool-calls": Case(_max_tool_calls, 3, "interrupt", ("type",), "tool_started"),
    "max-steps": Case(_max_steps, 2, "interrupt", ("type",), "model_request"),
    "output-matches": Case(
        _output_pattern, 4, "verification", ("detail", "evidence", "failure_class", "passed")
    ),
    "exit-code": Case(
        _exit_code, 4, "verification", ("detail", "evidence", "failure_class", "passed")
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_one_manifest_change_names_the_first_divergence(
    recorded: Recorded, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    path = changed(recorded, name, case.edit)

    outcome = strict(recorded.trace, tmp_path / "replay.jsonl", load_manifest(path))

    d = outcome.divergence
    assert d is not None and not outcome.identical
    assert (d.step, d.event, d.fields) == (case.step, case.event, case.fields), d.message
    assert d.replayed is not None and d.recorded is not None
    assert d.recorded["type"] == (case.recorded_type or case.event)
    assert recorded.events[d.seq].type == d.recorded["type"]
    assert (outcome.result.status, outcome.result.failure_class) == ("failed", "divergence")
    assert d.headline.startswith(f"step {case.step}, event {d.seq}")
    for field in (f for f in case.fields if f != "type"):
        assert field in d.message
    # the CLI prints it as the first divergence and exits 1
    ran = invoke("replay", recorded.trace, "--manifest", path, "--strict", "-o", tmp_path / "c")
    ran.assert_clean()
    assert ran.code == 1
    assert f"first divergence: step {case.step}, event {d.seq} ({case.event})" in ran.flat
    assert "✗ diverged" in ran.flat


def test_a_prompt_change_explains_what_builds_the_prompt(recorded: Recorded) -> None:
    path = changed(recorded, "hint", _description)

    with pytest.raises(AssertionError) as raised:
        assert_replays(recorded.trace, manifest=path)

    text = str(raised.value)
    assert text.startswith(f"{recorded.trace} does not replay: step 1, event 1 (model_request)")
    assert "differs in prompt_hash" in text
    assert "system prompt, the task, the tool definitions and the history" in text


def test_a_new_deny_rule_is_named_with_both_effects(recorded: Recorded, tmp_path: Path) -> None:
    path = changed(recorded, "deny-named", _new_deny_rule)

    d = strict(recorded.trace, tmp_path / "r.jsonl", load_manifest(path)).divergence

    assert d is not None and d.recorded is not None and d.replayed is not None
    recorded_decision, replayed_decision = d.recorded["decision"], d.replayed["decision"]
    assert (d.recorded["tool"], recorded_decision["effect"], recorded_decision["rule"]) == (
        "fs_write",
        "allow",
        "writes",
    )
    assert (replayed_decision["effect"], replayed_decision["rule"]) == ("deny", "no-out")
    assert "decision.effect: recorded 'allow', replayed 'deny'" in d.message
    assert "tool_call fs_write" in d.headline


@pytest.mark.parametrize(
    ("name", "rule", "went_on_to"),
    [
        ("max-tool-calls", "max_tool_calls", "tool_started"),
        ("max-steps", "max_steps", "model_request"),
    ],
)
def test_a_lowered_budget_trips_where_the_record_went_on(
    recorded: Recorded, tmp_path: Path, name: str, rule: str, went_on_to: str
) -> None:
    """The interrupt is written where the record went on: the third tool call, or the
    start of step 3 (a step budget trips between steps, recorded on the step that ended)."""
    case = CASES[name]
    outcome = strict(
        recorded.trace, tmp_path / "r.jsonl", load_manifest(changed(recorded, name, case.edit))
    )

    d = outcome.divergence
    assert d is not None and d.replayed is not None and d.recorded is not None
    assert (d.replayed["kind"], d.replayed["rule"], d.replayed["action"]) == (
        "budget",
        rule,
        "stop",
    )
    assert d.replayed["detail"] == {"limit": 2, "used": 2}
    assert d.recorded["step"] == 3
    where = f"step {case.step}, event {d.seq}"
    assert d.message == (
        f"{where}: the record holds {went_on_to}, but the loop wrote interrupt {rule}"
    )
    assert (outcome.result.status, outcome.result.failure_class) == ("failed", "divergence")


def test_a_verification_change_names_the_check(recorded: Recorded, tmp_path: Path) -> None:
    path = changed(recorded, "check-named", _exit_code)

    d = strict(recorded.trace, tmp_path / "r.jsonl", load_manifest(path)).divergence

    assert d is not None and d.recorded is not None and d.replayed is not None
    assert (d.recorded["check_id"], d.recorded["passed"]) == ("exits-0", True)
    assert (d.replayed["check_id"], d.replayed["passed"]) == ("exits-0", False)
    assert "passed: recorded 'true', replayed 'false'" in d.message


def test_a_change_the_model_never_sees_keeps_the_replay_identical(
    recorded: Recorded, tmp_path: Path
) -> None:
    def timeout(m: dict[str, Any]) -> None:
        m["tools"][3]["timeout_s"] = 99

    outcome = strict(
        recorded.trace, tmp_path / "r.jsonl", load_manifest(changed(recorded, "timeout", timeout))
    )

    assert outcome.identical, outcome.divergence


# --- edits to the trace itself ----------------------------------------------------------------


def test_an_edited_model_reply_diverges_at_the_proposed_call(
    recorded: Recorded, tmp_path: Path
) -> None:
    def edit(events: list[dict[str, Any]]) -> None:
        reply = events[recorded.seq("model_response", 3)]
        [tool_call] = reply["tool_calls"]
        reply["tool_calls"] = [{**tool_call, "arguments": '{"path": "other.md", "content": "hi"}'}]

    trace = rewritten(recorded, tmp_path / "edited.jsonl", edit)

    outcome = strict(trace, tmp_path / "r.jsonl")

    d = outcome.divergence
    assert d is not None
    assert (d.step, d.event, d.fields) == (3, "tool_call", ("arguments", "call_hash"))
    assert d.seq == recorded.seq("tool_call", 3)
    assert d.recorded is not None and d.replayed is not None
    assert (d.recorded["arguments"]["path"], d.replayed["arguments"]["path"]) == (
        "out.md",
        "other.md",
    )
    assert "tool_call fs_write" in d.message and "arguments" in d.message
    with pytest.raises(AssertionError, match=r"step 3, event \d+ \(tool_call fs_write\)"):
        assert_replays(trace)


def test_an_edited_task_diverges_at_the_first_model_request(
    recorded: Recorded, tmp_path: Path
) -> None:
    def edit(events: list[dict[str, Any]]) -> None:
        events[0]["input"] = "Delete everything."

    trace = rewritten(recorded, tmp_path / "task.jsonl", edit)

    d = strict(trace, tmp_path / "r.jsonl").divergence

    assert d is not None and d.replayed is not None
    assert (d.seq, d.step, d.event, d.fields) == (
        1,
        1,
        "model_request",
        ("messages_added", "prompt_hash"),
    )
    assert {"role": "user", "content": "Delete everything."} in d.replayed["messages_added"]
    assert "step 1, event 1 (model_request) differs in messages_added, prompt_hash" in d.message


# --- identical ----------------------------------------------------------------------------


def test_the_unchanged_manifest_file_replays_identically(
    recorded: Recorded, tmp_path: Path
) -> None:
    outcome = strict(
        recorded.trace, tmp_path / "r.jsonl", load_manifest(recorded.folder / MANIFEST)
    )

    assert outcome.identical and outcome.divergence is None
    assert outcome.result.events == len(recorded.events)
    assert assert_replays(recorded.trace, manifest=recorded.folder / MANIFEST).identical
    ran = invoke("replay", recorded.trace, "-o", tmp_path / "govrun.cli.jsonl")
    assert ran.code == 0 and "✓ identical" in ran.flat


def test_identical_although_run_ids_signatures_and_times_differ(tmp_path: Path) -> None:
    """A live run with a real clock and a signed approval; the replay re-signs with its own
    key, gets a new run id and its own durations, and is still identical."""
    policy = {
        "default": "allow",
        "rules": [{"id": "ask-writes", "tools": ["fs_write"], "effect": "ask"}],
    }
    script = [calls(call("fs_write", {"path": "a.md", "content": "x"}, id="c1")), answer()]
    result, _ = run_in(
        tmp_path / "run",
        scripted_manifest(policy=policy),
        script=script,
        approver=AutoApprover("auto (ci)"),
        clock=SystemClock(),
    )
    out = tmp_path / "replay.jsonl"

    outcome = strict(Path(result.trace_path), out)

    assert outcome.identical
    before, after = read_stored(result.trace_path)[0], read_stored(out)[0]
    assert len(before) == len(after)
    differ = {
        k
        for a, b in zip(before, after, strict=True)
        for k in a.keys() | b.keys()
        if a.get(k) != b.get(k)
    }
    assert {"run_id", "signature", "key_fingerprint", "public_key", "seal", "decided_at"} <= differ
    assert "duration_ms" in differ
    assert differ - {"totals"} <= IGNORED  # totals differ only in duration_ms
    assert before[-1]["totals"]["duration_ms"] != after[-1]["totals"]["duration_ms"]
    decided = [e for e in after if e["type"] == "approval_decided"]
    assert [(e["decision"], e["approver"], e["via"]) for e in decided] == [
        ("approve", "auto (ci)", "replay")
    ]


def test_a_policy_change_shows_at_the_first_decision_that_differs(tmp_path: Path) -> None:
    """Step 1's approval records the hash of the whole policy in force; a rule changed for
    step 2 must be named at step 2's decision, not at step 1's approval."""
    policy = {
        "default": "allow",
        "rules": [{"id": "ask-writes", "tools": ["fs_write"], "effect": "ask"}],
    }
    script = [
        calls(call("fs_write", {"path": "a.md", "content": "x"}, id="c1")),
        calls(call("fs_read", {"path": "a.md"}, id="c2")),
        answer(),
    ]
    folder = tmp_path / "run"
    result, _ = run_in(
        folder,
        scripted_manifest(policy=policy),
        script=script,
        approver=AutoApprover("auto (ci)"),
    )
    changed_policy = {
        "default": "allow",
        "rules": [
            {"id": "ask-writes", "tools": ["fs_write"], "effect": "ask"},
            {"id": "no-reads", "tools": ["fs_read"], "effect": "deny"},
        ],
    }
    doc = scripted_manifest(policy=changed_policy)
    (folder / "changed.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    manifest = load_manifest(folder / "changed.yaml", env={})

    outcome = strict(Path(result.trace_path), tmp_path / "replay.jsonl", manifest)

    divergence = outcome.divergence
    assert divergence is not None
    assert (divergence.step, divergence.event) == (2, "tool_call"), divergence.message
    assert "decision.rule" in divergence.fields and "decision.effect" in divergence.fields


# --- records that end early -----------------------------------------------------------------


def test_a_crashed_record_ends_the_replay_without_calling_a_model(
    recorded: Recorded, tmp_path: Path
) -> None:
    """The run crashed while waiting for step 3's model reply. The recorded manifest's
    script would answer LIVE if anything asked it."""
    folder = tmp_path / "crashed"
    shutil.copytree(recorded.folder, folder, ignore=shutil.ignore_patterns("*.jsonl"))
    (folder / SCRIPT).write_text(yaml.safe_dump([answer("LIVE")]), encoding="utf-8")
    cut = recorded.seq("model_request", 3) + 1
    trace = folder / "crashed.jsonl"
    trace.write_bytes(b"".join(recorded.trace.read_bytes().splitlines(keepends=True)[:cut]))
    out = tmp_path / "r.jsonl"

    outcome = strict(trace, out, load_manifest(folder / MANIFEST))

    d = outcome.divergence
    assert d is not None and d.recorded is None and d.fields == ("type",)
    assert (d.seq, d.step, d.event) == (cut, 3, "step_finished")
    assert f"but the record ends at event {cut - 1}" in d.message
    assert outcome.session.ended_for == (
        "the record holds no model reply for step 3 (the recorded run ends there without finishing)"
    )
    assert not outcome.identical
    replayed = read_stored(out)[0]
    assert [e["type"] for e in replayed].count("model_response") == 2
    assert b"LIVE" not in out.read_bytes()
    assert replayed[-1]["type"] == "run_finished" and replayed[-1]["failure_class"] == "divergence"


def test_a_call_in_flight_at_the_crash_is_not_run_again(recorded: Recorded, tmp_path: Path) -> None:
    """The run crashed while writing out.md: strict replay stops there, and the replay's
    workspace stays empty."""
    folder = tmp_path / "inflight"
    shutil.copytree(recorded.folder, folder, ignore=shutil.ignore_patterns("*.jsonl", WORKSPACE))
    (folder / WORKSPACE).mkdir()
    cut = recorded.seq("tool_started", 3) + 1
    trace = folder / "crashed.jsonl"
    trace.write_bytes(b"".join(recorded.trace.read_bytes().splitlines(keepends=True)[:cut]))

    outcome = strict(trace, tmp_path / "r.jsonl", load_manifest(folder / MANIFEST))

    d = outcome.divergence
    assert d is not None and d.recorded is None
    assert (d.seq, d.step) == (cut, 3)
    assert "the record ends" in d.message
    assert outcome.session.ended_for is not None
    assert outcome.session.ended_for.startswith("step 3 fs_write would run now")
    assert list((folder / WORKSPACE).iterdir()) == []


def test_a_torn_trace_replays_to_the_torn_line_and_says_so(
    recorded: Recorded, tmp_path: Path
) -> None:
    lines = recorded.trace.read_bytes().splitlines(keepends=True)
    torn_at = recorded.seq("tool_started", 3)
    trace = tmp_path / "torn.jsonl"
    trace.write_bytes(b"".join(lines[:torn_at]) + lines[torn_at][: len(lines[torn_at]) // 2])
    record = Record.load(trace)
    assert record.torn is not None and len(record.events) == torn_at

    outcome = replay(record, tmp_path / "r.jsonl")

    d = outcome.divergence
    assert d is not None and d.recorded is None
    assert (d.seq, d.step, d.event, d.fields) == (torn_at, 3, "tool_started", ("type",))
    assert f"the record ends at event {torn_at - 1} (its last line is torn: the run crashed)" in (
        d.message
    )
    replayed = read_stored(outcome.result.trace_path)[0]
    assert [e["type"] for e in replayed[:torn_at]] == [e["type"] for e in record.events]
    ran = invoke("replay", trace, "-o", tmp_path / "govrun.cli.jsonl")
    ran.assert_clean()
    assert ran.code == 1 and "its last line is torn" in ran.flat


def test_the_recorded_run_exercises_what_the_cases_change(recorded: Recorded) -> None:
    """The recorded run exercises what the cases above change: four tools ran, three checks
    passed, the run completed."""
    assert len(of_type(recorded.events, ev.ToolFinished)) == 4
    assert {(v.check_id, v.passed) for v in of_type(recorded.events, ev.Verification)} >= {
        ("greets", True),
        ("exits-0", True),
    }
    assert one(recorded.events, ev.RunFinished).status == "completed"
    assert orjson.loads(recorded.trace.read_bytes().splitlines()[0])["input"] == "Do the task."


def test_a_recorded_outcome_is_the_result_the_tool_returned(recorded: Recorded) -> None:
    """Replay builds a plain success without validating; it must be the same object field
    for field as the validated one, and a failure still goes through validation."""
    record = Record.load(recorded.trace)
    finished = [e for e in record.events if e["type"] == "tool_finished"]
    failed = {**finished[0], "ok": False, "error": "boom", "failure_class": "tool_error"}
    for e in [*finished, failed]:
        expected = ToolResult(
            ok=e["ok"],
            output=e.get("output", ""),
            data=e.get("data") or {},
            evidence=e.get("evidence") or {},
            error=e.get("error"),
            failure_class=e.get("failure_class"),
        )
        got = _result(record, e)
        assert got == expected
        assert got.model_dump() == expected.model_dump()


def test_recorded_times_read_as_datetime_reads_them() -> None:
    """The replay clock parses the writer's timestamps by arithmetic; any other form (an
    offset, a hand-edited trace, garbage) goes through datetime, and garbage reads as 0."""
    rng = random.Random(8)
    writer = [
        datetime.fromtimestamp(rng.uniform(0, 4e9), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for _ in range(20_000)
    ]
    for stamps in (writer, [*writer[:50], "2026-11-21T19:21:43+01:00", "nonsense", None]):
        events = [{"ts": ts} for ts in stamps]
        session = SimpleNamespace(record=SimpleNamespace(events=events), live=False)
        clock = ReplayClock(session)  # type: ignore[arg-type]
        for seq, ts in enumerate(stamps):
            try:
                expected = datetime.fromisoformat(str(ts)).timestamp()
            except ValueError:
                expected = 0.0
            assert clock._at(seq) == expected, ts
