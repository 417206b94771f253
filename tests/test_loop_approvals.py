"""What the loop hands the approval gate: the exact call, the manifest's timeout, and a
preview of what a file write would change; and what it records."""

from __future__ import annotations

from pathlib import Path

from govrun.runtime.ports import ApprovalDecision, ApprovalRequest
from govrun.runtime.trace import events as ev
from tests.support.agents import WORKSPACE, answer, call, calls, one, run_in, scripted_manifest

ASK_WRITES = {
    "default": "allow",
    "rules": [{"id": "ask-writes", "tools": ["fs_write"], "effect": "ask"}],
}


class Recorder:
    def __init__(self) -> None:
        self.requests: list[ApprovalRequest] = []

    def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        self.requests.append(request)
        return ApprovalDecision(decision="approve", approver="tester", via="prompt")


def test_the_gate_gets_the_timeout_and_a_diff_of_the_write(tmp_path: Path) -> None:
    recorder = Recorder()
    manifest = scripted_manifest(policy=ASK_WRITES, approvals={"timeout_s": 30})
    script = [calls(call("fs_write", {"path": "notes.md", "content": "new line\n"})), answer()]

    _, events = run_in(
        tmp_path,
        manifest,
        script=script,
        approver=recorder,
        files={"notes.md": "old line\n"},
    )

    [request] = recorder.requests
    assert request.timeout_s == 30
    assert request.preview is not None
    assert "-old line" in request.preview and "+new line" in request.preview
    assert one(events, ev.ApprovalRequested).timeout_s == 30
    assert (tmp_path / WORKSPACE / "notes.md").read_text() == "new line\n"
