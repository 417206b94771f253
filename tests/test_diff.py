"""`govrun.runtime.views.trajectory` and `govrun.runtime.views.diff` on real traces: each pair of
runs goes through the real loop with a scripted model (``tests.support.agents.run_in``) and differs
in one thing — an argument, an extra or a missing step, a policy rule, a tool's output, the final
answer, the model, an approval — and the diff must name the step and the fields that changed.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from govrun.runtime.errors import TraceError
from govrun.runtime.ports import ApprovalDecision, ApprovalRequest, FixedClock
from govrun.runtime.views.diff import align, diff_trajectories
from govrun.runtime.views.trajectory import FINAL, NO_REPLY, Trajectory, load_trajectory
from tests.support.agents import answer, call, calls, run_in, scripted_manifest

# --- helpers -------------------------------------------------------------------------------


def write(path: str, content: str = "x") -> dict[str, Any]:
    return calls(call("fs_write", {"path": path, "content": content}))


def read(path: str) -> dict[str, Any]:
    return calls(call("fs_read", {"path": path}))


BASE = [write("a.txt", "alpha"), write("b.txt", "beta"), write("c.txt", "gamma"), answer("done")]


def run(folder: Path, script: list[dict[str, Any]], **kw: Any) -> Trajectory:
    """Run the scripted agent in ``folder`` and load its trace as a trajectory."""
    manifest = scripted_manifest(**kw.pop("manifest", {}))
    result, _ = run_in(folder, manifest, script=script, **kw)
    return load_trajectory(result.trace_path)


def pair(
    tmp_path: Path,
    script_a: list[dict[str, Any]],
    script_b: list[dict[str, Any]] | None = None,
    *,
    a: dict[str, Any] | None = None,
    b: dict[str, Any] | None = None,
) -> tuple[Trajectory, Trajectory]:
    ta = run(tmp_path / "a", script_a, **(a or {}))
    tb = run(tmp_path / "b", script_a if script_b is None else script_b, **(b or {}))
    return ta, tb


def replaced(script: list[dict[str, Any]], at: int, turn: dict[str, Any]) -> list[dict[str, Any]]:
    return [*script[:at], turn, *script[at + 1 :]]


def on_path(rule: str, glob: str, effect: str) -> dict[str, Any]:
    """A policy that allows everything but applies ``effect`` to writes matching ``glob``."""
    when = {"path": {"glob": glob}}
    return {
        "default": "allow",
        "rules": [{"id": rule, "tools": ["fs_write"], "when": when, "effect": effect}],
    }


# --- the trajectory --------------------------------------------------------------------------


def test_a_trajectory_holds_each_step_and_what_governance_did(tmp_path: Path) -> None:
    t = run(tmp_path, BASE, manifest={"policy": on_path("no-c", "c.txt", "deny")})

    assert t.run_id and t.agent == "test-agent" and t.input
    assert [s.step for s in t.steps] == [1, 2, 3, 4]
    first = t.steps[0]
    assert first.signature == (("fs_write", '{"content":"alpha","path":"a.txt"}'),)
    assert first.models == ("scripted",)
    assert first.outcome == "continue"
    [c] = first.calls
    assert c.arguments == {"path": "a.txt", "content": "alpha"}
    assert (c.policy and c.policy.effect) == "allow"
    assert c.result is not None and c.result.ok and "a.txt" in c.result.output
    assert c.checks and all(k.passed for k in c.checks)
    denied = t.steps[2].calls[0]
    assert denied.policy is not None
    assert (denied.policy.effect, denied.policy.rule) == ("deny", "no-c")
    assert denied.result is None  # never ran
    last = t.steps[-1]
    assert last.is_final and last.signature == ((FINAL, "done"),) and last.outcome == "final"
    assert t.totals.steps == 4 and t.totals.status == "completed"
    assert t.totals.tokens == sum(s.tokens for s in t.steps) > 0
    assert t.totals.tool_calls == 2 and t.totals.model_calls == 4
    assert t.final_answer == "done" and t.torn is None and t.finished


def test_a_failed_model_call_is_a_step_without_reply(tmp_path: Path) -> None:
    script = [write("a.txt"), {"error": {"status": 400}}]
    t = run(tmp_path, script)

    last = t.steps[-1]
    assert last.signature == ((NO_REPLY, ""),)
    assert last.model_errors and last.outcome == "failed"
    assert t.totals.status == "failed"


# --- same ------------------------------------------------------------------------------------


def test_two_runs_of_the_same_script_are_the_same(tmp_path: Path) -> None:
    """Different run ids, folders, timestamps and durations never make runs differ."""
    a, b = pair(
        tmp_path,
        BASE,
        a={"clock": FixedClock(start=1_700_000_000.0, tick=0.001)},
        b={"clock": FixedClock(start=1_800_000_000.0, tick=0.25)},
    )
    assert a.run_id != b.run_id
    assert a.steps[0].duration_ms != b.steps[0].duration_ms

    d = diff_trajectories(a, b)

    assert d.same
    assert d.first_divergence is None
    assert d.entries == () and d.run_changes == ()


def test_a_trace_is_the_same_as_itself(tmp_path: Path) -> None:
    t = run(tmp_path, BASE)
    assert diff_trajectories(t, t).same


# --- one change at a time ----------------------------------------------------------------------


def test_a_changed_argument_is_a_changed_step(tmp_path: Path) -> None:
    a, b = pair(tmp_path, BASE, replaced(BASE, 1, write("b.txt", "BETA")))

    d = diff_trajectories(a, b)

    assert not d.same
    [entry] = d.entries
    assert (entry.kind, entry.a_step, entry.b_step) == ("changed", 2, 2)
    assert entry.fields == ("calls[0].arguments.content",)
    assert (entry.changes[0].a, entry.changes[0].b) == ("beta", "BETA")
    first = d.first_divergence
    assert first is not None
    assert (first.a_step, first.b_step, first.kind) == (2, 2, "changed")
    assert first.fields == ("calls[0].arguments.content",)
    assert "'beta' → 'BETA'" in first.summary


def test_a_different_path_changes_the_argument_and_the_output(tmp_path: Path) -> None:
    a, b = pair(tmp_path, BASE, replaced(BASE, 0, write("z.txt", "alpha")))

    [entry] = diff_trajectories(a, b).entries

    assert (entry.a_step, entry.b_step) == (1, 1)
    assert entry.fields == ("calls[0].arguments.path", "calls[0].output")


def test_an_extra_step_is_inserted_and_the_rest_still_lines_up(tmp_path: Path) -> None:
    longer = [*BASE[:2], write("extra.txt"), *BASE[2:]]
    a, b = pair(tmp_path, BASE, longer)

    d = diff_trajectories(a, b)

    [entry] = d.entries
    assert (entry.kind, entry.a_step, entry.b_step) == ("inserted", None, 3)
    assert entry.b is not None
    assert entry.b.calls[0].arguments == {"path": "extra.txt", "content": "x"}
    first = d.first_divergence
    assert first is not None
    assert (first.a_step, first.b_step, first.kind, first.fields) == (3, 3, "inserted", ())
    assert "extra.txt" in first.summary
    assert (a.totals.steps, b.totals.steps) == (4, 5)


def test_a_missing_step_is_removed(tmp_path: Path) -> None:
    shorter = [BASE[0], *BASE[2:]]
    a, b = pair(tmp_path, BASE, shorter)

    d = diff_trajectories(a, b)

    [entry] = d.entries
    assert (entry.kind, entry.a_step, entry.b_step) == ("removed", 2, None)
    first = d.first_divergence
    assert first is not None and (first.a_step, first.b_step, first.kind) == (2, 2, "removed")


def test_a_different_policy_rule_is_a_changed_decision(tmp_path: Path) -> None:
    """Same calls, same effect, another rule decided: the policy decision changed."""

    def allow_by(rule: str) -> dict[str, Any]:
        return {
            "policy": {
                "default": "deny",
                "rules": [{"id": rule, "tools": ["fs_write"], "effect": "allow"}],
            }
        }

    a, b = pair(tmp_path, BASE, a={"manifest": allow_by("writes")}, b={"manifest": allow_by("w2")})

    d = diff_trajectories(a, b)

    assert [e.kind for e in d.entries] == ["changed"] * 3  # every write step
    entry = d.entries[0]
    assert entry.a_step == 1
    assert entry.fields[0] == "calls[0].policy.rule"
    assert (entry.changes[0].a, entry.changes[0].b) == ("writes", "w2")
    assert "calls[0].arguments.path" not in entry.fields


def test_a_denial_changes_the_decision_the_result_and_the_verification(tmp_path: Path) -> None:
    deny_b = on_path("no-b", "b.txt", "deny")
    a, b = pair(tmp_path, BASE, b={"manifest": {"policy": deny_b}})

    d = diff_trajectories(a, b)

    [entry] = d.entries
    assert entry.a_step == entry.b_step == 2
    assert entry.fields == (
        "calls[0].policy.effect",
        "calls[0].policy.rule",
        "calls[0].policy.reason",
        "calls[0].result",
        "calls[0].verification",
    )
    result = {c.field: c for c in entry.changes}["calls[0].result"]
    assert result.a["ok"] is True and result.b is None


def test_a_different_tool_output_is_a_changed_step(tmp_path: Path) -> None:
    script = [read("notes.md"), answer("done")]
    a, b = pair(
        tmp_path,
        script,
        a={"files": {"notes.md": "version one\n"}},
        b={"files": {"notes.md": "version two\n"}},
    )

    d = diff_trajectories(a, b)

    [entry] = d.entries
    assert (entry.a_step, entry.fields) == (1, ("calls[0].output",))
    assert (entry.changes[0].a, entry.changes[0].b) == ("version one\n", "version two\n")


def test_a_different_final_answer(tmp_path: Path) -> None:
    a, b = pair(tmp_path, BASE, replaced(BASE, 3, answer("all done")))

    d = diff_trajectories(a, b)

    [entry] = d.entries
    assert (entry.kind, entry.a_step, entry.b_step) == ("changed", 4, 4)
    assert entry.fields == ("answer",)
    assert (entry.changes[0].a, entry.changes[0].b) == ("done", "all done")


def test_a_different_model_changes_every_step(tmp_path: Path) -> None:
    a, b = pair(
        tmp_path,
        BASE,
        a={"manifest": {"model": {"name": "small"}}},
        b={"manifest": {"model": {"name": "large"}}},
    )

    d = diff_trajectories(a, b)

    assert len(d.entries) == 4
    assert all(e.fields == ("models",) for e in d.entries)
    first = d.first_divergence
    assert first is not None and (first.a_step, first.fields) == (1, ("models",))


class Decides:
    """Approves or rejects every call at the gate."""

    def __init__(self, decision: str) -> None:
        self.decision = decision

    def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        return ApprovalDecision(decision=self.decision, approver="tester", via="prompt")  # type: ignore[arg-type]


def test_an_approval_rejected_instead_of_approved(tmp_path: Path) -> None:
    ask = on_path("ask-c", "c.txt", "ask")
    a, b = pair(
        tmp_path,
        BASE,
        a={"manifest": {"policy": ask}, "approver": Decides("approve")},
        b={"manifest": {"policy": ask}, "approver": Decides("reject")},
    )

    d = diff_trajectories(a, b)

    [entry] = d.entries
    assert entry.a_step == 3
    assert entry.fields == (
        "calls[0].approval.decision",
        "calls[0].result",
        "calls[0].verification",
    )


def test_an_interrupted_run_differs_in_steps_and_status(tmp_path: Path) -> None:
    a, b = pair(tmp_path, BASE, b={"manifest": {"budgets": {"max_steps": 2}}})

    d = diff_trajectories(a, b)

    assert b.totals.status == "stopped"
    assert {c.field for c in d.run_changes} == {"status", "failure_class"}
    assert [e.kind for e in d.entries][-1] == "removed"
    first = d.first_divergence
    assert first is not None and first.a_step is not None


def test_a_failed_success_check_changes_the_last_step_and_the_run(tmp_path: Path) -> None:
    """Same calls and answer; b's manifest also requires a file nobody wrote."""
    check = {"success": [{"check": "file_exists", "path": "ws/missing.txt"}]}
    a, b = pair(tmp_path, BASE, b={"manifest": check})

    d = diff_trajectories(a, b)

    [entry] = d.entries
    assert (entry.a_step, entry.fields) == (4, ("verification", "outcome"))
    assert entry.changes[1].b == "failed"
    assert {c.field: c.b for c in d.run_changes} == {
        "status": "failed",
        "failure_class": "verification_failed",
    }


# --- torn and bad traces -----------------------------------------------------------------------


def torn_copy(trace: Path, folder: Path, keep_lines: int) -> Path:
    """The first ``keep_lines`` lines, then half of the next: a crash mid-write."""
    lines = trace.read_bytes().split(b"\n")
    cut = folder / "torn.jsonl"
    cut.write_bytes(b"\n".join(lines[:keep_lines]) + b"\n" + lines[keep_lines][:40])
    return cut


def test_a_torn_trace_loads_up_to_the_torn_line(tmp_path: Path) -> None:
    full = run(tmp_path / "full", BASE)
    cut = torn_copy(full.path, tmp_path, 12)

    t = load_trajectory(cut)

    assert t.torn is not None and t.torn.line == 13 and t.torn.after_seq == 11
    assert not t.finished and t.totals.status == "unfinished"
    assert 0 < len(t.steps) < len(full.steps)
    d = diff_trajectories(full, t)
    assert not d.same
    assert {c.field for c in d.run_changes} == {"status"}


def test_a_final_line_without_newline_is_not_torn(tmp_path: Path) -> None:
    full = run(tmp_path / "full", BASE)
    copy = tmp_path / "no-newline.jsonl"
    copy.write_bytes(full.path.read_bytes().rstrip(b"\n"))

    t = load_trajectory(copy)

    assert t.torn is None and t.finished
    assert diff_trajectories(full, t).same


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"name: agent\nmodel: {}\n", "not a govrun trace"),
        (b'{"hello": "world"}\n', "does not begin with run_started"),
        (b'{"type": "run_started", "agent": "x"', "torn first line"),
    ],
)
def test_not_a_trace_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(TraceError, match=message):
        load_trajectory(path)


def test_a_missing_file_or_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no such trace"):
        load_trajectory(tmp_path / "nope.jsonl")
    with pytest.raises(TraceError, match="folder"):
        load_trajectory(tmp_path)


def test_a_newer_schema_major_is_refused(tmp_path: Path) -> None:
    t = run(tmp_path / "run", BASE)
    lines = t.path.read_bytes().split(b"\n")
    event = orjson.loads(lines[3])
    event["v"] = 99
    lines[3] = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    newer = tmp_path / "newer.jsonl"
    newer.write_bytes(b"\n".join(lines))
    with pytest.raises(TraceError, match="schema v99"):
        load_trajectory(newer)


def test_a_damaged_line_before_the_end_is_refused(tmp_path: Path) -> None:
    t = run(tmp_path / "run", BASE)
    lines = t.path.read_bytes().split(b"\n")
    lines[5] = lines[5][:30]
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(b"\n".join(lines))
    with pytest.raises(TraceError, match=":6: not a JSON object"):
        load_trajectory(damaged)


def test_an_event_missing_a_required_field_is_refused(tmp_path: Path) -> None:
    t = run(tmp_path / "run", BASE)
    lines = t.path.read_bytes().split(b"\n")
    index = next(i for i, line in enumerate(lines) if b'"type":"tool_call"' in line)
    event = orjson.loads(lines[index])
    del event["decision"]["effect"]
    lines[index] = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join(lines))
    with pytest.raises(TraceError, match=f":{index + 1}: not a valid govrun event"):
        load_trajectory(bad)


def test_sidecar_blobs_are_compared_by_content(tmp_path: Path) -> None:
    fixtures = Path(__file__).resolve().parent.parent / "fixtures" / "traces"
    t = load_trajectory(fixtures / "with_blob.jsonl")
    outputs = [c.result.output for s in t.steps for c in s.calls if c.result]
    assert any(len(o) == 70_000 for o in outputs)
    copy = tmp_path / "with_blob.jsonl"
    shutil.copy(fixtures / "with_blob.jsonl", copy)  # without its blobs folder
    d = diff_trajectories(t, load_trajectory(copy))
    [entry] = d.entries
    assert entry.fields == ("calls[0].output",)


# --- the report --------------------------------------------------------------------------------


def test_to_json_holds_the_first_divergence_and_every_entry(tmp_path: Path) -> None:
    longer = [*BASE[:2], write("extra.txt"), *BASE[2:]]
    a, b = pair(tmp_path, BASE, replaced(longer, 0, write("a.txt", "ALPHA")))

    report = orjson.loads(diff_trajectories(a, b).to_json())

    assert report["same"] is False
    assert report["first_divergence"]["a_step"] == 1
    assert report["first_divergence"]["fields"] == ["calls[0].arguments.content"]
    assert report["counts"] == {"changed": 1, "inserted": 1, "removed": 0}
    assert [e["kind"] for e in report["entries"]] == ["changed", "inserted"]
    assert report["entries"][1]["b"]["calls"][0]["arguments"]["path"] == "extra.txt"
    assert report["totals"]["delta"]["steps"] == 1
    assert report["a"]["run_id"] == a.run_id and report["b"]["torn"] is None


# --- alignment ---------------------------------------------------------------------------------


def test_align_matches_the_common_ends_first() -> None:
    a = list(range(10_000))
    b = [*a[:5_000], -1, *a[5_001:]]
    assert align(a, b) == [
        ("equal", 0, 5_000, 0, 5_000),
        ("replace", 5_000, 5_001, 5_000, 5_001),
        ("equal", 5_001, 10_000, 5_001, 10_000),
    ]


def test_align_handles_empty_and_repetitive_sequences() -> None:
    assert align([], []) == []
    assert align([], [1]) == [("insert", 0, 0, 0, 1)]
    assert align([7] * 3, [7] * 4) == [("equal", 0, 3, 0, 3), ("insert", 3, 3, 3, 4)]


def test_align_stays_minimal_and_fast_on_repetitive_steps() -> None:
    """An agent that makes the same few calls over and over: exact matching would be
    quadratic, and junk heuristics would blur the alignment; Myers finds the three edits."""
    a = [n % 3 for n in range(10_000)]
    b = list(a)
    del b[3_000]
    b.insert(7_000, 99)
    b[8_000] = 77
    ops = align(a, b)
    assert [op for op in ops if op[0] != "equal"] == [
        ("delete", 3_000, 3_001, 3_000, 3_000),
        ("insert", 7_001, 7_001, 7_000, 7_001),
        ("replace", 8_000, 8_001, 8_000, 8_001),
    ]


def test_align_gives_up_on_minimality_when_everything_differs() -> None:
    assert align(list(range(5_000)), list(range(5_000, 10_000))) == [
        ("replace", 0, 5_000, 0, 5_000)
    ]


@pytest.mark.parametrize("seed", range(20))
def test_align_is_a_valid_edit_script(seed: int) -> None:
    rng = random.Random(seed)
    a = [rng.randrange(3) for _ in range(1_200)]
    b = [x for x in a if rng.random() > 0.01]
    for _ in range(10):
        b.insert(rng.randrange(len(b)), rng.randrange(3))
    rebuilt: list[int] = []
    i = j = 0
    for tag, i1, i2, j1, j2 in align(a, b):
        assert (i1, j1) == (i, j)
        if tag == "equal":
            assert a[i1:i2] == b[j1:j2]
        rebuilt += b[j1:j2]
        i, j = i2, j2
    assert (i, j) == (len(a), len(b)) and rebuilt == b
