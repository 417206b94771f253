"""Every failure class, produced by a real run, and a trace that says so.

The model is the scripted adapter (a YAML script in the run folder); tools are real and act
on a real workspace. Every run goes through ``run_agent`` and every trace is verified and read
back as typed events (``tests.support.agents.run_in``), so each test also proves that the
run ended through ``run_finished`` whatever went wrong.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any, Literal

import pytest

from govrun.runtime import RunCrashed, RunInterrupted
from govrun.runtime.govern.approvers import DenyApprover
from govrun.runtime.govern.toolbox import LiveTools, PreparedCall
from govrun.runtime.ports import ApprovalDecision, ApprovalRequest, Control, FixedClock
from govrun.runtime.run import run_agent
from govrun.runtime.tools import ToolResult
from govrun.runtime.trace import events as ev
from tests.support.agents import (
    WORKSPACE,
    answer,
    call,
    calls,
    checked_events,
    decided,
    executed,
    fs_tools,
    last,
    new_trace_path,
    of_type,
    one,
    prepare,
    python_tool,
    run_in,
    scripted_manifest,
    shell_tool,
    told,
    types,
)

# --- helpers -------------------------------------------------------------------------------


def write(path: str, content: str = "x", **kw: Any) -> dict[str, Any]:
    return call("fs_write", {"path": path, "content": content}, **kw)


def ws(tmp_path: Path) -> Path:
    return tmp_path / WORKSPACE


def assert_ended(events: list[ev.Event], status: str, failure_class: str | None) -> ev.RunFinished:
    finished = last(events, ev.RunFinished)
    assert (finished.status, finished.failure_class) == (status, failure_class), finished.reason
    return finished


def assert_stop_interrupt(events: list[ev.Event], kind: str, rule: str) -> ev.Interrupt:
    """The run was stopped by exactly one interrupt, the last event before run_finished
    except for the step_finished that closes a step it stopped in the middle."""
    interrupt = one(events, ev.Interrupt)
    assert (interrupt.kind, interrupt.rule, interrupt.action) == (kind, rule, "stop")
    tail = events[events.index(interrupt) + 1 :]
    assert [e.type for e in tail] in (["run_finished"], ["step_finished", "run_finished"])
    if tail[0].type == "step_finished":
        assert (tail[0].step, tail[0].outcome) == (interrupt.step, "stop")
    return interrupt


def budget_stop(events: list[ev.Event], rule: str) -> ev.Interrupt:
    interrupt = assert_stop_interrupt(events, "budget", rule)
    assert interrupt.failure_class == "budget_exceeded"
    finished = assert_ended(events, "stopped", "budget_exceeded")
    assert finished.reason == interrupt.reason
    return interrupt


class ScriptedApprover:
    """Answers every approval request with one fixed decision, and remembers the requests."""

    def __init__(self, decision: Literal["approve", "reject", "stop"], reason: str = "") -> None:
        self.decision = decision
        self.reason = reason
        self.requests: list[ApprovalRequest] = []

    def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        self.requests.append(request)
        return ApprovalDecision(
            decision=self.decision, approver="tester", via="prompt", reason=self.reason
        )


class ResumingOperator:
    """Resumes every pause, and remembers why it was asked."""

    identity = "tester"

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def on_pause(self, reason: str) -> Literal["resume", "stop"]:
        self.reasons.append(reason)
        return "resume"


# --- policy_denied --------------------------------------------------------------------------


def test_policy_rule_denies_and_the_model_is_told(tmp_path: Path) -> None:
    policy = {
        "default": "allow",
        "rules": [
            {
                "id": "no-secrets",
                "tools": ["fs.read"],
                "when": {"path": {"glob": "secret*"}},
                "effect": "deny",
                "reason": "secrets stay secret",
            }
        ],
    }
    script = [calls(call("fs_read", {"path": "secret.txt"}, id="c1")), answer("ok")]

    result, events = run_in(
        tmp_path,
        scripted_manifest(policy=policy),
        script=script,
        files={"secret.txt": "hunter2"},
    )

    assert result.status == "completed"
    decision = one(events, ev.ToolCall).decision
    assert (decision.effect, decision.rule, decision.failure_class) == (
        "deny",
        "no-secrets",
        "policy_denied",
    )
    assert executed(events) == []
    assert told(events, "c1").startswith("[policy_denied] call not executed:")
    assert "hunter2" not in str([e.model_dump() for e in events])
    assert last(events, ev.RunFinished).totals["denials"] == 1


def test_policy_default_deny_names_no_rule(tmp_path: Path) -> None:
    policy = {
        "default": "deny",
        "rules": [{"id": "reads", "tools": ["fs.read"], "effect": "allow"}],
    }
    script = [calls(write("a.txt", id="c1")), answer()]

    _, events = run_in(tmp_path, scripted_manifest(policy=policy), script=script)

    decision = one(events, ev.ToolCall).decision
    assert (decision.effect, decision.rule, decision.failure_class) == (
        "deny",
        None,
        "policy_denied",
    )
    assert not (ws(tmp_path) / "a.txt").exists()


def test_scope_denies_before_any_rule_with_rule_scope(tmp_path: Path) -> None:
    """An allow-everything policy cannot let a call leave its tool's scope."""
    script = [calls(write("../escaped.txt", id="c1")), answer()]

    result, events = run_in(tmp_path, scripted_manifest(), script=script)

    assert result.status == "completed"
    decision = one(events, ev.ToolCall).decision
    assert (decision.effect, decision.rule, decision.failure_class) == (
        "deny",
        "scope",
        "policy_denied",
    )
    assert "outside" in decision.reason
    assert executed(events) == []
    assert not (tmp_path / "escaped.txt").exists()


# --- unknown_tool and invalid_arguments ------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "failure_class"),
    [
        (call("rm_rf", {"path": "."}), "unknown_tool"),
        (call("fs_write", '{"path": "a.txt", "content": '), "invalid_arguments"),
        (call("fs_write", {"path": "a.txt"}), "invalid_arguments"),
        (call("fs_write", {"path": "a.txt", "content": "x", "mode": "0777"}), "invalid_arguments"),
        (call("fs_write", {"path": "", "content": "x"}), "invalid_arguments"),
    ],
    ids=["unknown-tool", "malformed", "missing-argument", "extra-argument", "empty-path"],
)
def test_calls_that_cannot_reach_policy(tmp_path: Path, bad: dict, failure_class: str) -> None:
    script = [calls({**bad, "id": "c1"}), answer()]

    result, events = run_in(tmp_path, scripted_manifest(), script=script)

    assert result.status == "completed"
    decision = one(events, ev.ToolCall).decision
    assert (decision.effect, decision.failure_class) == ("deny", failure_class)
    assert executed(events) == []
    assert told(events, "c1").startswith(f"[{failure_class}]")
    assert list(ws(tmp_path).iterdir()) == []


# --- approval_rejected --------------------------------------------------------------------


ASK_WRITES = {
    "default": "allow",
    "rules": [{"id": "ask-writes", "tools": ["fs.write"], "effect": "ask"}],
}


def test_ask_with_the_deny_approver_rejects_and_the_run_goes_on(tmp_path: Path) -> None:
    script = [calls(write("a.txt", id="c1")), calls(call("fs_list", id="c2")), answer()]

    result, events = run_in(
        tmp_path,
        scripted_manifest(policy=ASK_WRITES),
        script=script,
        approver=DenyApprover(identity="nobody"),
    )

    assert result.status == "completed"
    assert types(events, step=1)[2:] == [
        "tool_call",
        "approval_requested",
        "approval_decided",
        "step_finished",
    ]
    assert decided(events, "c1").effect == "ask"
    requested = one(events, ev.ApprovalRequested)
    approval = one(events, ev.ApprovalDecided)
    assert (requested.rule, requested.risk) == ("ask-writes", "medium")
    assert (approval.decision, approval.approver, approval.via) == ("reject", "nobody", "deny")
    assert (
        approval.call_hash
        == requested.call_hash
        == one(events, ev.ToolCall, call_id="c1").call_hash
    )
    assert approval.policy_hash == one(events, ev.RunStarted).policy_hash
    assert approval.decided_at
    assert executed(events) == ["c2"]
    assert not (ws(tmp_path) / "a.txt").exists()
    assert told(events, "c1").startswith("[approval_rejected] nobody rejected this call")


def test_an_approved_ask_runs_and_counts(tmp_path: Path) -> None:
    approver = ScriptedApprover("approve", "looks fine")
    script = [calls(write("a.txt", "hi", id="c1")), answer()]

    result, events = run_in(
        tmp_path, scripted_manifest(policy=ASK_WRITES), script=script, approver=approver
    )

    assert result.status == "completed"
    assert (ws(tmp_path) / "a.txt").read_text() == "hi"
    assert [r.arguments for r in approver.requests] == [{"path": "a.txt", "content": "hi"}]
    assert one(events, ev.ApprovalDecided).decision == "approve"
    assert last(events, ev.RunFinished).totals["approvals"] == 1


def test_an_approver_that_stops_ends_the_run(tmp_path: Path) -> None:
    approver = ScriptedApprover("stop", "enough")
    script = [calls(write("a.txt", id="c1"), write("b.txt", id="c2")), answer()]

    result, events = run_in(
        tmp_path, scripted_manifest(policy=ASK_WRITES), script=script, approver=approver
    )

    assert (result.status, result.failure_class) == ("stopped", "approval_rejected")
    assert "tester stopped the run at fs_write: enough" in result.reason
    assert one(events, ev.ApprovalDecided).decision == "stop"
    assert types(events)[-3:] == ["approval_decided", "step_finished", "run_finished"]
    assert last(events, ev.StepFinished).outcome == "stop"
    assert executed(events) == []
    assert len(approver.requests) == 1  # the second call was never even asked about
    assert list(ws(tmp_path).iterdir()) == []


def test_ctrl_c_at_once_stops_the_run_and_carries_its_result(tmp_path: Path) -> None:
    """A KeyboardInterrupt mid-call (a second Ctrl-C) is the operator's stop: recorded and
    sealed, then raised on as a KeyboardInterrupt that says how the run ended."""
    manifest = scripted_manifest(tools=[python_tool("interrupted")])
    m = prepare(tmp_path, manifest, script=[calls(call("interrupted", {}, id="c1")), answer()])
    trace = new_trace_path(tmp_path)

    with pytest.raises(RunInterrupted) as caught:
        run_agent(m, task="t", trace_path=trace, clock=FixedClock())

    assert isinstance(caught.value, KeyboardInterrupt)
    result = caught.value.result
    assert (result.status, result.failure_class) == ("stopped", "operator_stop")
    assert result.reason == "interrupted (Ctrl-C twice)"
    events = checked_events(trace)
    finished = assert_ended(events, "stopped", "operator_stop")
    assert (result.head, result.events, result.trace_path) == (
        finished.hash,
        len(events),
        str(trace),
    )
    assert "tool_finished" not in types(events)  # stopped inside the call


# --- tool_error ------------------------------------------------------------------------------


def test_a_command_exiting_non_zero_is_a_tool_error(tmp_path: Path) -> None:
    manifest = scripted_manifest(tools=[shell_tool({"ls": {}})])
    script = [calls(call("sh", {"command": "ls no-such-dir"}, id="c1")), answer()]

    result, events = run_in(tmp_path, manifest, script=script)

    assert result.status == "completed"
    finished = one(events, ev.ToolFinished)
    assert (finished.ok, finished.failure_class) == (False, "tool_error")
    assert finished.data["exit_code"] != 0
    assert "exited with" in (finished.error or "")
    assert of_type(events, ev.Verification) == []  # a failed call is not verified
    assert told(events, "c1") == finished.output


def test_a_python_tool_that_raises_is_a_tool_error_not_a_crash(tmp_path: Path) -> None:
    manifest = scripted_manifest(tools=[python_tool("explode")])
    script = [calls(call("explode", {"message": "boom"}, id="c1")), answer("carried on")]

    result, events = run_in(tmp_path, manifest, script=script)

    assert (result.status, result.final_answer) == ("completed", "carried on")
    finished = one(events, ev.ToolFinished)
    assert (finished.ok, finished.failure_class) == (False, "tool_error")
    assert finished.error == "ValueError: exploded: boom"
    assert "Traceback" not in finished.output
    assert told(events, "c1") == finished.output


# --- verification_failed and missing_evidence --------------------------------------------------


def test_a_failing_verify_check_is_recorded_and_the_model_is_told(tmp_path: Path) -> None:
    tools = fs_tools("write")
    tools[0]["verify"] = [
        {"id": "has-title", "check": "file_contains", "path": "{args.path}", "pattern": "^# "}
    ]
    script = [calls(write("report.md", "no title here", id="c1")), answer()]

    result, events = run_in(tmp_path, scripted_manifest(tools=tools), script=script)

    assert result.status == "completed"  # a failed call check informs; success checks decide
    default, check = of_type(events, ev.Verification)
    assert (default.check_id, default.passed) == ("default", True)
    assert (check.check_id, check.check, check.passed) == ("has-title", "file_contains", False)
    assert check.failure_class == "verification_failed"
    assert check.call_id == "c1"
    assert check.evidence["path"] == "report.md"
    assert told(events, "c1").endswith(f"[verification_failed] file_contains: {check.detail}")


def test_a_failing_success_check_fails_the_run(tmp_path: Path) -> None:
    manifest = scripted_manifest(
        success=[
            {"id": "report", "check": "file_exists", "path": f"{WORKSPACE}/report.md"},
            {"id": "answer", "check": "final_answer_matches", "pattern": "report"},
        ]
    )
    script = [calls(write("notes.md", id="c1")), answer("I wrote the report")]

    result, events = run_in(tmp_path, manifest, script=script)

    assert (result.status, result.failure_class) == ("failed", "verification_failed")
    assert "success check report failed" in result.reason
    assert result.final_answer == "I wrote the report"
    report, said = of_type(events, ev.Verification, call_id=None)
    assert (report.passed, report.failure_class) == (False, "verification_failed")
    assert (said.passed, said.failure_class) == (True, None)
    assert last(events, ev.StepFinished).outcome == "failed"


def test_success_checks_that_hold_complete_the_run(tmp_path: Path) -> None:
    manifest = scripted_manifest(
        success=[{"check": "file_contains", "path": f"{WORKSPACE}/report.md", "pattern": "ok"}]
    )
    script = [calls(write("report.md", "all ok", id="c1")), answer()]

    result, events = run_in(tmp_path, manifest, script=script)

    assert result.status == "completed"
    assert one(events, ev.Verification, call_id=None).passed
    assert last(events, ev.StepFinished).outcome == "final"


def test_a_check_needing_an_argument_the_call_lacks_is_missing_evidence(tmp_path: Path) -> None:
    tools = fs_tools("write")
    tools[0]["verify"] = [{"id": "target", "check": "file_exists", "path": "{args.target}"}]
    script = [calls(write("a.txt", id="c1")), answer()]

    _, events = run_in(tmp_path, scripted_manifest(tools=tools), script=script)

    check = one(events, ev.Verification, check_id="target")
    assert (check.passed, check.failure_class) == (False, "missing_evidence")
    assert "args.target" in check.detail
    assert "[missing_evidence]" in told(events, "c1")


def test_file_sha256_on_a_tool_reporting_no_sha256_is_missing_evidence(tmp_path: Path) -> None:
    tool = shell_tool({"ls": {}}, verify=[{"id": "hash", "check": "file_sha256", "path": "a.txt"}])
    script = [calls(call("sh", {"command": "ls"}, id="c1")), answer()]

    _, events = run_in(
        tmp_path, scripted_manifest(tools=[tool]), script=script, files={"a.txt": "a"}
    )

    assert one(events, ev.ToolFinished).ok
    default = one(events, ev.Verification, check_id="default")
    assert (default.check, default.passed) == ("exit_code", True)
    check = one(events, ev.Verification, check_id="hash")
    assert (check.passed, check.failure_class) == (False, "missing_evidence")
    assert "reported none" in check.detail


# --- budget_exceeded ------------------------------------------------------------------------


def test_max_steps(tmp_path: Path) -> None:
    script = [calls(write(f"{n}.txt")) for n in range(5)] + [answer()]

    result, events = run_in(tmp_path, scripted_manifest(budgets={"max_steps": 3}), script=script)

    interrupt = budget_stop(events, "max_steps")
    assert interrupt.detail == {"limit": 3, "used": 3}
    assert interrupt.step == 3  # checked between steps: it follows step 3, no step 4 starts
    assert max(e.step for e in of_type(events, ev.ModelRequest)) == 3
    assert result.steps == 3
    assert sorted(p.name for p in ws(tmp_path).iterdir()) == ["0.txt", "1.txt", "2.txt"]
    assert len(of_type(events, ev.ModelRequest)) == 3


def test_max_steps_counts_the_final_answer(tmp_path: Path) -> None:
    """Exactly at the limit: the step that answers is the last one allowed."""
    script = [calls(write("0.txt")), calls(write("1.txt")), answer()]

    result, _ = run_in(tmp_path, scripted_manifest(budgets={"max_steps": 3}), script=script)

    assert (result.status, result.steps) == ("completed", 3)


def test_max_model_calls_counts_retries(tmp_path: Path) -> None:
    script = [{"error": {"status": 503}}, {"error": {"status": 503}}, answer()]

    result, events = run_in(
        tmp_path, scripted_manifest(budgets={"max_model_calls": 2}), script=script
    )

    interrupt = budget_stop(events, "max_model_calls")
    assert interrupt.detail == {"limit": 2, "used": 2}
    assert [r.attempt for r in of_type(events, ev.ModelResponse)] == [1, 2]
    assert result.counters.model_calls == 2


def test_max_tool_calls(tmp_path: Path) -> None:
    script = [calls(write("a.txt"), write("b.txt")), calls(write("c.txt", id="c3")), answer()]

    _, events = run_in(tmp_path, scripted_manifest(budgets={"max_tool_calls": 2}), script=script)

    interrupt = budget_stop(events, "max_tool_calls")
    assert interrupt.detail == {"limit": 2, "used": 2}
    assert sorted(p.name for p in ws(tmp_path).iterdir()) == ["a.txt", "b.txt"]
    assert decided(events, "c3").effect == "allow"  # allowed, not run


def test_max_tool_calls_per_tool(tmp_path: Path) -> None:
    budgets = {"max_tool_calls_per_tool": {"fs_write": 1}}
    script = [
        calls(write("a.txt"), call("fs_list"), call("fs_list"), write("b.txt", id="c4")),
        answer(),
    ]

    result, events = run_in(tmp_path, scripted_manifest(budgets=budgets), script=script)

    interrupt = budget_stop(events, "max_tool_calls_per_tool.fs_write")
    assert interrupt.detail == {"limit": 1, "used": 1}
    assert [p.name for p in ws(tmp_path).iterdir()] == ["a.txt"]
    assert result.counters.per_tool == {"fs_write": 1, "fs_list": 2}


def test_max_tokens(tmp_path: Path) -> None:
    usage = {"prompt_tokens": 40, "completion_tokens": 10}
    script = [calls(write(f"{n}.txt"), usage=usage) for n in range(4)] + [answer()]

    result, events = run_in(tmp_path, scripted_manifest(budgets={"max_tokens": 100}), script=script)

    interrupt = budget_stop(events, "max_tokens")
    assert interrupt.detail == {"limit": 100, "used": 100}
    assert result.counters.tokens == 100
    assert len(of_type(events, ev.ModelResponse)) == 2


def test_max_cost_usd(tmp_path: Path) -> None:
    model = {"pricing": {"input_per_mtok": 1000, "output_per_mtok": 0}}  # $0.001 a token
    usage = {"prompt_tokens": 100, "completion_tokens": 0}  # $0.10 a call
    script = [calls(write(f"{n}.txt"), usage=usage) for n in range(4)] + [answer()]

    result, events = run_in(
        tmp_path,
        scripted_manifest(model=model, budgets={"max_cost_usd": 0.25}),
        script=script,
    )

    interrupt = budget_stop(events, "max_cost_usd")
    assert interrupt.detail["limit"] == 0.25
    assert interrupt.detail["used"] == pytest.approx(0.3)
    assert [r.cost_usd for r in of_type(events, ev.ModelResponse)] == pytest.approx([0.1] * 3)
    assert last(events, ev.RunFinished).totals["cost_usd"] == pytest.approx(0.3)
    assert result.counters.cost_usd == pytest.approx(0.3)


def test_max_wall_time_s(tmp_path: Path) -> None:
    script = [calls(write(f"{n}.txt")) for n in range(50)] + [answer()]

    _, events = run_in(
        tmp_path,
        scripted_manifest(budgets={"max_wall_time_s": 1}),
        script=script,
        clock=FixedClock(tick=0.05),  # virtual time: every clock reading is 50 ms later
    )

    interrupt = budget_stop(events, "max_wall_time_s")
    assert interrupt.detail["limit"] == 1
    assert interrupt.detail["used"] >= 1


# --- timeout ------------------------------------------------------------------------------


def _sleepers(seconds: str) -> list[int]:
    """Pids of live ``sleep <seconds>`` processes (whatever path sleep was run by)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")[:-1]
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if argv[-1:] == [seconds.encode()] and argv[0].endswith(b"sleep") and state != "Z":
                found.append(int(proc.name))
    return found


def test_a_command_over_its_time_limit_is_a_timeout_and_is_killed(tmp_path: Path) -> None:
    seconds = "5.0371"  # distinctive, so the process can be looked for afterwards
    probe = subprocess.Popen(["sleep", seconds])  # the search finds a live one
    try:
        assert _sleepers(seconds) == [probe.pid]
    finally:
        probe.kill()
        probe.wait()
    manifest = scripted_manifest(tools=[shell_tool({"sleep": {}}, timeout_s=0.5)])
    script = [calls(call("sh", {"command": f"sleep {seconds}"}, id="c1")), answer("gave up")]
    started = time.monotonic()

    result, events = run_in(tmp_path, manifest, script=script)

    assert time.monotonic() - started < 4
    assert result.status == "completed"
    finished = one(events, ev.ToolFinished)
    assert (finished.ok, finished.failure_class) == (False, "timeout")
    assert "timed out" in (finished.error or "")
    assert finished.evidence["argv"] == ["sleep", seconds]
    assert told(events, "c1") == finished.output
    assert _sleepers(seconds) == []


# --- anomaly -----------------------------------------------------------------------------------


def test_repeat_call_stops_before_the_repeat_runs(tmp_path: Path) -> None:
    """The same call twice, arguments in a different key order: still the same call."""
    interrupts = {"repeat_call": {"max_repeats": 2}}
    script = [
        calls(call("fs_write", '{"path": "a.txt", "content": "1"}', id="c1")),
        calls(call("fs_write", '{"content": "1", "path": "a.txt"}', id="c2")),
        answer(),
    ]

    result, events = run_in(tmp_path, scripted_manifest(interrupts=interrupts), script=script)

    interrupt = assert_stop_interrupt(events, "anomaly", "repeat_call")
    assert interrupt.failure_class == "anomaly"
    assert interrupt.detail == {"tool": "fs_write", "count": 2}
    assert interrupt.step == 2
    assert_ended(events, "stopped", "anomaly")
    assert executed(events) == ["c1"]
    assert result.counters.tool_calls == 1


def test_forbidden_sequence_stops_before_the_last_tool_runs(tmp_path: Path) -> None:
    """read → (list) → write is forbidden; the tools match by builtin glob, not adjacent."""
    interrupts = {
        "forbidden_sequences": [{"id": "read-then-write", "sequence": ["fs.read", "fs.write"]}]
    }
    script = [
        calls(call("fs_read", {"path": "in.txt"}, id="c1")),
        calls(call("fs_list", id="c2")),
        calls(write("exfil.txt", "copied", id="c3")),
        answer(),
    ]

    _, events = run_in(
        tmp_path,
        scripted_manifest(interrupts=interrupts),
        script=script,
        files={"in.txt": "secret"},
    )

    interrupt = assert_stop_interrupt(events, "anomaly", "forbidden_sequences.read-then-write")
    assert interrupt.detail == {"sequence": ["fs.read", "fs.write"], "tool": "fs_write"}
    assert_ended(events, "stopped", "anomaly")
    assert executed(events) == ["c1", "c2"]
    assert not (ws(tmp_path) / "exfil.txt").exists()


def test_a_denied_call_does_not_start_a_forbidden_sequence(tmp_path: Path) -> None:
    """Only executed calls count towards a sequence."""
    interrupts = {
        "forbidden_sequences": [{"id": "read-then-write", "sequence": ["fs.read", "fs.write"]}]
    }
    script = [
        calls(call("fs_read", {"path": "../in.txt"}, id="c1")),
        calls(write("out.txt", id="c2")),
        answer(),
    ]

    result, events = run_in(tmp_path, scripted_manifest(interrupts=interrupts), script=script)

    assert result.status == "completed"
    assert executed(events) == ["c2"]


def test_argument_size_counts_utf8_bytes(tmp_path: Path) -> None:
    """60 characters, but 180 bytes of UTF-8: over a 150-byte limit."""
    interrupts = {"argument_size": {"max_bytes": 150}}
    script = [calls(write("big.txt", "€" * 60, id="c1")), answer()]

    _, events = run_in(tmp_path, scripted_manifest(interrupts=interrupts), script=script)

    interrupt = assert_stop_interrupt(events, "anomaly", "argument_size")
    raw = one(events, ev.ModelResponse).tool_calls[0]["arguments"]
    assert interrupt.detail == {"bytes": len(raw.encode()), "limit": 150}
    assert_ended(events, "stopped", "anomaly")
    assert executed(events) == []
    assert not (ws(tmp_path) / "big.txt").exists()


def test_argument_size_at_the_limit_passes(tmp_path: Path) -> None:
    arguments = '{"content": "xx", "path": "a.txt"}'
    interrupts = {"argument_size": {"max_bytes": len(arguments)}}
    script = [calls(call("fs_write", arguments)), answer()]

    result, _ = run_in(tmp_path, scripted_manifest(interrupts=interrupts), script=script)

    assert result.status == "completed"
    assert (ws(tmp_path) / "a.txt").read_text() == "xx"


def test_an_anomaly_that_pauses_resumes_when_the_operator_says_so(tmp_path: Path) -> None:
    interrupts = {"repeat_call": {"max_repeats": 2, "action": "pause"}}
    script = [calls(write("a.txt", id="c1")), calls(write("a.txt", id="c2")), answer()]
    operator = ResumingOperator()

    result, events = run_in(
        tmp_path, scripted_manifest(interrupts=interrupts), script=script, operator=operator
    )

    assert result.status == "completed"
    pause, resume = of_type(events, ev.Interrupt)
    assert (pause.kind, pause.rule, pause.action) == ("anomaly", "repeat_call", "pause")
    assert (resume.kind, resume.action, resume.by) == ("operator", "resume", "tester")
    assert operator.reasons == [pause.reason]
    assert executed(events) == ["c1", "c2"]


def test_a_pause_with_no_operator_stops_with_the_pausing_class(tmp_path: Path) -> None:
    interrupts = {"repeat_call": {"max_repeats": 2, "action": "pause"}}
    script = [calls(write("a.txt", id="c1")), calls(write("a.txt", id="c2")), answer()]

    _, events = run_in(tmp_path, scripted_manifest(interrupts=interrupts), script=script)

    pause, stop = of_type(events, ev.Interrupt)
    assert (pause.action, stop.action, stop.kind) == ("pause", "stop", "operator")
    assert stop.failure_class == "anomaly"
    assert_ended(events, "stopped", "anomaly")
    assert executed(events) == ["c1"]


# --- model_error ------------------------------------------------------------------------------


def test_an_exhausted_script_is_a_model_error(tmp_path: Path) -> None:
    script = [calls(write("a.txt"))]

    result, events = run_in(tmp_path, scripted_manifest(), script=script)

    assert (result.status, result.failure_class) == ("failed", "model_error")
    assert "script exhausted" in result.reason
    failed = last(events, ev.ModelResponse)
    assert (failed.step, failed.attempt, failed.failure_class) == (2, 1, "model_error")
    assert len(of_type(events, ev.ModelRequest, step=2)) == 1  # not retryable: one attempt


def test_a_non_retryable_http_error_is_not_retried(tmp_path: Path) -> None:
    script = [{"error": {"status": 400}}, answer()]

    result, events = run_in(tmp_path, scripted_manifest(), script=script)

    assert (result.status, result.failure_class) == ("failed", "model_error")
    assert "after" not in result.reason
    assert len(of_type(events, ev.ModelResponse)) == 1


def test_a_model_timeout_is_a_timeout(tmp_path: Path) -> None:
    script = [{"error": {"timeout": True}}] * 2

    result, events = run_in(tmp_path, scripted_manifest(model={"max_retries": 1}), script=script)

    assert (result.status, result.failure_class) == ("failed", "timeout")
    assert [r.failure_class for r in of_type(events, ev.ModelResponse)] == ["timeout"] * 2


# --- operator_stop ------------------------------------------------------------------------------


def test_an_operator_stop_before_the_run_stops_it_at_once(tmp_path: Path) -> None:
    control = Control()
    control.request("stop", by="tester")
    script = [calls(write("a.txt")), answer()]

    result, events = run_in(tmp_path, scripted_manifest(), script=script, control=control)

    assert (result.status, result.failure_class) == ("stopped", "operator_stop")
    interrupt = assert_stop_interrupt(events, "operator", "operator_request")
    assert (interrupt.by, interrupt.failure_class) == ("tester", "operator_stop")
    assert "stop requested by tester" in interrupt.reason
    assert types(events) == ["run_started", "interrupt", "run_finished"]
    assert list(ws(tmp_path).iterdir()) == []


def test_an_operator_pause_resumed_lets_the_run_complete(tmp_path: Path) -> None:
    control = Control()
    control.request("pause", by="tester")
    operator = ResumingOperator()
    script = [calls(write("a.txt")), answer()]

    result, events = run_in(
        tmp_path, scripted_manifest(), script=script, control=control, operator=operator
    )

    assert result.status == "completed"
    pause, resume = of_type(events, ev.Interrupt)
    assert (pause.kind, pause.action, pause.by) == ("operator", "pause", "tester")
    assert (resume.action, resume.by) == ("resume", "tester")
    assert types(events)[:3] == ["run_started", "interrupt", "interrupt"]
    assert (ws(tmp_path) / "a.txt").exists()


def test_an_operator_pause_with_nobody_to_answer_stops(tmp_path: Path) -> None:
    control = Control()
    control.request("pause", by="tester")

    result, events = run_in(tmp_path, scripted_manifest(), script=[answer()], control=control)

    assert (result.status, result.failure_class) == ("stopped", "operator_stop")
    assert [i.action for i in of_type(events, ev.Interrupt)] == ["pause", "stop"]


def test_a_stop_requested_mid_run_is_honoured_at_the_next_stage(tmp_path: Path) -> None:
    """A port may request a stop (as a signal handler would); the loop acts on it next."""
    control = Control()

    class StoppingTools(LiveTools):
        def execute(self, call: PreparedCall) -> ToolResult:
            result = super().execute(call)
            control.request("stop", by="signal")
            return result

    script = [calls(write("a.txt", id="c1"), write("b.txt", id="c2")), answer()]

    result, events = run_in(
        tmp_path, scripted_manifest(), script=script, control=control, tools=StoppingTools()
    )

    assert (result.status, result.failure_class) == ("stopped", "operator_stop")
    assert executed(events) == ["c1"]
    assert one(events, ev.Interrupt).by == "signal"
    assert [p.name for p in ws(tmp_path).iterdir()] == ["a.txt"]


# --- nothing escapes without run_finished -----------------------------------------------------


class BrokenTools:
    """A Tools adapter with a bug: it raises instead of returning a result."""

    def execute(self, call: PreparedCall) -> ToolResult:
        raise RuntimeError("adapter bug")


class BrokenApprover:
    def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        raise KeyError("approver bug")


@pytest.mark.parametrize(
    ("ports", "policy", "error"),
    [
        ({"tools": BrokenTools()}, None, RuntimeError),
        ({"approver": BrokenApprover()}, ASK_WRITES, KeyError),
    ],
    ids=["tools", "approver"],
)
def test_a_port_that_raises_still_leaves_a_finished_trace(
    tmp_path: Path, ports: dict, policy: dict | None, error: type[Exception]
) -> None:
    manifest = scripted_manifest(**({"policy": policy} if policy else {}))
    m = prepare(tmp_path, manifest, script=[calls(write("a.txt")), answer()])
    trace = new_trace_path(tmp_path)

    with pytest.raises(RunCrashed) as crashed:
        run_agent(m, task="t", trace_path=trace, env={}, **ports)

    assert isinstance(crashed.value.__cause__, error)  # the port's own exception, kept
    assert crashed.value.result.failure_class == "internal_error"
    events = checked_events(trace)
    finished = assert_ended(events, "failed", "internal_error")
    assert f"internal error: {error.__name__}" in finished.reason
    assert crashed.value.result.head == events[-1].hash
