"""Non-interactive approvers and operators: what decides when no person is asked.

Every decision names who made it and how, so an automatic approval is never mistaken for
a person's in the trace. Standing rules (``--approvals FILE``) live in
``govrun.runtime.govern.approval_rules``.
"""

from __future__ import annotations

import getpass
import socket
from typing import Literal

from govrun.runtime.errors import GovrunError
from govrun.runtime.ports import ApprovalDecision, ApprovalRequest


def local_identity() -> str:
    """``user@host`` of whoever runs govrun: the default approver identity."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class AutoApprover:
    """Approves every ``ask`` call; recorded as automatic (``--approve auto``)."""

    def __init__(self, identity: str | None = None) -> None:
        self.identity = identity or f"auto ({local_identity()})"

    def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        return ApprovalDecision(
            decision="approve", approver=self.identity, via="auto", reason="--approve auto"
        )


class DenyApprover:
    """Rejects every ``ask`` call (``--approve deny``, the default without a terminal):
    an undecided call is a rejected call, with an explanation the model is told."""

    def __init__(self, identity: str | None = None) -> None:
        self.identity = identity or f"deny ({local_identity()})"

    def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        return ApprovalDecision(
            decision="reject",
            approver=self.identity,
            via="deny",
            reason="no approver is available (--approve deny); the call needs a person's approval",
        )


class StopOperator:
    """Without a terminal nobody can answer a pause, so a pause stops the run."""

    identity = "no operator (non-interactive)"

    def on_pause(self, reason: str) -> Literal["resume", "stop"]:
        return "stop"


APPROVERS = {"auto": AutoApprover, "deny": DenyApprover}


def approver_for(mode: str, identity: str | None = None) -> AutoApprover | DenyApprover:
    try:
        return APPROVERS[mode](identity)
    except KeyError:
        raise GovrunError(
            f"unknown approval mode {mode!r}; use one of: {', '.join(APPROVERS)}"
        ) from None
