"""How a record written by an earlier minor revision of the trace schema is compared.

A minor revision only adds: a field that a newer govrun writes and the record's revision
did not have is not a divergence. Revision 2 decides each call on its canonical form: the
call hash covers the canonical arguments, and ``tool_started`` records them. A revision-1
record hashed and started the arguments as the model sent them, so replaying it rewrites
what the loop writes into that older shape before comparing — everything is still
compared, in the record's own terms. A decision that the canonical policy makes
differently is then the one honest divergence, reported as such.
"""

from __future__ import annotations

from typing import Any

from govrun.runtime.trace.canonical import call_hash
from govrun.runtime.trace.events import SCHEMA_MINOR

ADDED_IN: dict[tuple[str, str], int] = {
    ("run_started", "schema_minor"): 2,
    ("tool_call_proposed", "canonical"): 2,
    ("run_started", "tools"): 2,
}
"""(event type, field) -> the minor revision that added it."""

_BY_CALL_HASH = frozenset({"approval_requested", "approval_decided", "tool_started"})


def record_revision(run_started: dict[str, Any]) -> int:
    """The minor revision a record was written in (1 when it does not say)."""
    minor = run_started.get("schema_minor")
    return minor if isinstance(minor, int) and minor > 0 else 1


class Revision:
    """Shapes events the replaying loop writes as the record's revision wrote them."""

    def __init__(self, minor: int) -> None:
        self.minor = minor
        self.current = minor >= SCHEMA_MINOR
        self._as_sent: dict[tuple[int, str], tuple[str, Any]] = {}
        """(step, call id) -> (call hash, arguments) as a revision-1 run recorded them."""

    def shape(self, event: dict[str, Any]) -> dict[str, Any]:
        """``event`` (as stored by this govrun) in the record's revision."""
        if self.current:
            return event
        kind = event["type"]
        shaped = {k: v for k, v in event.items() if ADDED_IN.get((kind, k), 0) <= self.minor}
        if self.minor >= 2:
            return shaped
        if kind == "tool_call_proposed":
            sent = event.get("arguments")
            digest = event.get("call_hash", "")
            if sent is not None and event.get("canonical") is not None:
                digest = call_hash(event["tool"], sent, event["step"])
            self._as_sent[(event["step"], event["call_id"])] = (digest, sent)
            shaped["call_hash"] = digest
        elif kind in _BY_CALL_HASH:
            known = self._as_sent.get((event["step"], event.get("call_id", "")))
            if known is not None:
                shaped["call_hash"] = known[0]
                if kind == "tool_started" and known[1] is not None:
                    shaped["arguments"] = known[1]
        return shaped

    def recorded_hash(self, step: int, call_id: str, current: str) -> str:
        """The hash the record holds for a call this govrun hashes as ``current``."""
        if self.current:
            return current
        known = self._as_sent.get((step, call_id))
        return known[0] if known is not None else current

    def changed_decision_hint(self) -> str:
        """Why a revision-1 record's decision may differ on purpose."""
        if self.minor >= 2:
            return ""
        return (
            "The record was written before calls were judged on their canonical form "
            "(schema 1.2); this govrun judges the call as its tool would execute it "
            "(resolved path, argv, typed values), so this decision changed on purpose."
        )
