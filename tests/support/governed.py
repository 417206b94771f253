"""One run that shows every kind of span govrun exports: an allowed, a denied, an approved
and a rejected call, a failed verification, a retried model call and a budget interrupt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from govrun.runtime.ports import ApprovalDecision, ApprovalRequest, Clock
from tests.support.agents import answer, call, calls, fs_tools, scripted_manifest

NOTES = "# Notes\n\nThe verifier ships on Friday.\n"
SECRET_ENV = {"NOTES_TOKEN": "tok-s3cret-42"}
"""A secret the workspace holds: the trace, and so any export, must hold it redacted."""

SCRIPT: list[dict[str, Any]] = [
    calls(call("fs_read", {"path": "notes.md"}), call("fs_read", {"path": ".env"})),
    {"error": {"status": 429, "message": "rate limited", "retry_after_s": 0.01}},
    calls(call("fs_write", {"path": "report.md", "content": "no title here\n"})),
    calls(call("fs_delete", {"path": "notes.md"})),
    calls(call("fs_read", {"path": "secret.txt"})),
    answer("never reached: the step budget stops the run first"),
]


def governed_manifest(**sections: Any) -> dict[str, Any]:
    """Reads allowed (but not .env), writes and deletes asked, every write checked."""
    check = {"check": "file_contains", "id": "has-title", "path": "{args.path}", "pattern": "^# "}
    read, write = fs_tools("read", "write")
    delete = {"name": "fs_delete", "uses": "fs.delete", "scope": {"roots": ["ws"]}}
    rules = [
        {
            "id": "no-dotenv",
            "tools": ["fs_read"],
            "when": {"path": {"glob": "*.env"}},
            "effect": "deny",
            "reason": ".env files hold secrets",
        },
        {"id": "reads", "tools": ["fs_read"], "effect": "allow"},
        {"id": "writes-ask", "tools": ["fs_write"], "effect": "ask"},
        {"id": "deletes-ask", "tools": ["fs_delete"], "effect": "ask"},
    ]
    return scripted_manifest(
        name="governed",
        tools=[read, {**write, "verify": [check]}, delete],
        policy={"default": "deny", "rules": rules},
        **{"secrets": list(SECRET_ENV), "budgets": {"max_steps": 4}, **sections},
    )


FILES = {"notes.md": NOTES, ".env": "KEY=1\n", "secret.txt": f"token {SECRET_ENV['NOTES_TOKEN']}\n"}


class WritesYesDeletesNo:
    """alice approves writes and rejects deletes."""

    def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        if request.tool == "fs_write":
            return ApprovalDecision(
                decision="approve", approver="alice", via="prompt", reason="looks fine"
            )
        return ApprovalDecision(
            decision="reject", approver="alice", via="prompt", reason="keep the notes"
        )


def run_governed(folder: Path, *, clock: Clock | None = None) -> Path:
    """Run the scenario in ``folder`` (checked and replayed like every test run); its trace."""
    from tests.support.agents import run_in

    result, _ = run_in(
        folder,
        governed_manifest(),
        script=SCRIPT,
        files=FILES,
        env=SECRET_ENV,
        approver=WritesYesDeletesNo(),
        clock=clock,
    )
    return Path(result.trace_path)
