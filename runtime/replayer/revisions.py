"""How a record written with an earlier revision of the trace schema is compared.

A record of an earlier *major* is read as the current one (what happened, in today's
shapes: :mod:`govrun.runtime.trace.upgrade`); this module handles what is left — the
*revisions*, each ``(major, minor)``:

- a field a newer govrun writes that the record's revision did not have is not a
  divergence (:data:`ADDED_IN`);
- revision 1.1 hashed each call over the arguments as the model sent them; 1.2 and later
  over the canonical call. Replaying a 1.1 record rewrites the hash the loop writes into
  the record's terms before comparing, so everything is still compared, and a decision the
  canonical policy makes differently is then the one honest divergence, reported as such.
"""

from __future__ import annotations

from typing import Any

from govrun.runtime.trace.canonical import call_hash
from govrun.runtime.trace.events import SCHEMA_MAJOR, SCHEMA_MINOR

Revision_ = tuple[int, int]

ADDED_IN: dict[tuple[str, str], Revision_] = {
    ("tool_call", "canonical"): (1, 2),
    ("run_started", "tools"): (1, 2),
    ("model_response", "refusal"): (2, 1),
    ("model_response", "estimated_usage"): (2, 1),
}
"""(event type, field) -> the revision that added it."""

CURRENT: Revision_ = (SCHEMA_MAJOR, SCHEMA_MINOR)

_BY_CALL_HASH = frozenset({"approval_requested", "approval_decided", "tool_started"})


def record_revision(run_started: dict[str, Any], major: int) -> Revision_:
    """The revision a record was written in: its major, and ``schema_minor`` (absent:
    1 under schema 1, 0 under later majors)."""
    minor = run_started.get("schema_minor")
    if isinstance(minor, int) and minor >= 0:
        return major, minor
    return major, 1 if major == 1 else 0


class Revision:
    """Shapes events the replaying loop writes as the record's revision wrote them."""

    def __init__(self, revision: Revision_) -> None:
        self.revision = revision
        self.current = revision >= CURRENT
        self.hashed_as_sent = revision < (1, 2)
        """Calls were hashed over the arguments as sent (schema 1.1)."""
        self._as_sent: dict[tuple[int, str], str] = {}
        """(step, call id) -> the call hash as a 1.1 run recorded it."""

    @property
    def minor(self) -> int:
        return self.revision[1]

    def shape(self, event: dict[str, Any]) -> dict[str, Any]:
        """``event`` (as stored by this govrun) in the record's revision."""
        if self.current:
            return event
        kind = event["type"]
        shaped = {
            k: v for k, v in event.items() if ADDED_IN.get((kind, k), (0, 0)) <= self.revision
        }
        if not self.hashed_as_sent:
            return shaped
        if kind == "tool_call":
            sent = event.get("arguments")
            digest = event.get("call_hash", "")
            if sent is not None and event.get("canonical") is not None:
                digest = call_hash(event["tool"], sent, event["step"])
            self._as_sent[(event["step"], event["call_id"])] = digest
            shaped["call_hash"] = digest
        elif kind in _BY_CALL_HASH:
            known = self._as_sent.get((event["step"], event.get("call_id", "")))
            if known is not None:
                shaped["call_hash"] = known
        return shaped

    def recorded_hash(self, step: int, call_id: str, current: str) -> str:
        """The hash the record holds for a call this govrun hashes as ``current``."""
        if not self.hashed_as_sent:
            return current
        return self._as_sent.get((step, call_id), current)

    def changed_decision_hint(self) -> str:
        """Why a 1.1 record's decision may differ on purpose."""
        if not self.hashed_as_sent:
            return ""
        return (
            "The record was written before calls were judged on their canonical form "
            "(schema 1.2); this govrun judges the call as its tool would execute it "
            "(resolved path, argv, typed values), so this decision changed on purpose."
        )
