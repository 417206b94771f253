"""A schema-1 record read as schema 2: what happened, in the shapes the current loop writes.

Records are forever (DESIGN section 4): a trace written with schema 1 keeps replaying with
a loop that writes schema 2. Replay compares what happened — prompts, calls, decisions,
results, outcome — not event shapes, so a schema-1 record is seen as the schema-2 events
the same run writes today: no ``step_started`` (a step begins with its first event), each
``tool_call_proposed`` and its ``policy_decision`` one ``tool_call``, and ``tool_started``
naming its call only. Events are renumbered in that sequence; their chain fields (``prev``,
``hash``) belong to the file and are left as they were (verify reads the file, not this).
Where each event came from in the file is kept (:data:`Origin`), so that what a reader is
told — "event 9 (policy_decision)" — points at the file's own lines.
"""

from __future__ import annotations

from typing import Any

from govrun.runtime.trace.events import SCHEMA_MAJOR

_DECISION = ("effect", "rule", "reason", "risk", "failure_class")
_PROPOSED = ("call_id", "tool", "arguments", "call_hash")

Origin = tuple[tuple[int, str], ...]
"""The (seq, type) in the file of the events one upgraded event was made of: one, or for a
``tool_call`` its proposal and then its decision."""


def major_of(events: list[dict[str, Any]]) -> int:
    """The schema major a record was written with (its first event's ``v``)."""
    v = events[0].get("v") if events else None
    return v if isinstance(v, int) else 1


def as_schema_2(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Origin]]:
    """``events`` (stored schema-1 dicts, in order) as the schema-2 events of the same run,
    and the origin of each."""
    out: list[dict[str, Any]] = []
    origins: list[Origin] = []
    proposed: dict[tuple[int, str], dict[str, Any]] = {}
    for e in events:
        kind = e["type"]
        origin: Origin = ((e["seq"], kind),)
        if kind == "step_started":
            continue
        if kind == "tool_call_proposed":
            proposed[(e["step"], e["call_id"])] = e
            continue
        if kind == "policy_decision":
            proposal = proposed.pop((e["step"], e["call_id"]), None)
            if proposal is not None:
                origin = ((proposal["seq"], "tool_call_proposed"), *origin)
            e = _tool_call(proposal, e)
        elif kind == "tool_started":
            e = {k: v for k, v in e.items() if k not in ("tool", "arguments")}
        elif kind == "run_finished":  # the count of the events as read here, itself included
            e = {**e, "event_count": len(out) + 1}
        else:
            e = dict(e)
        e["seq"] = len(out)
        e["v"] = SCHEMA_MAJOR
        out.append(e)
        origins.append(origin)
    return out, origins


def _tool_call(proposed: dict[str, Any] | None, decided: dict[str, Any]) -> dict[str, Any]:
    """One ``tool_call`` from a proposal and its decision (a decision without its proposal,
    which only a damaged record has, keeps what it holds)."""
    call: dict[str, Any] = {k: v for k, v in decided.items() if k not in _DECISION}
    call["type"] = "tool_call"
    if proposed is not None:
        call.update({k: proposed[k] for k in _PROPOSED if k in proposed})
        for optional in ("raw_arguments", "canonical"):
            if proposed.get(optional) is not None:
                call[optional] = proposed[optional]
        call["ts"] = proposed.get("ts", call.get("ts"))
    call.setdefault("arguments", None)
    call.setdefault("call_hash", "")
    call["decision"] = {k: decided.get(k) for k in _DECISION}
    call["decision"].setdefault("reason", "")
    if call["decision"]["reason"] is None:
        call["decision"]["reason"] = ""
    return call
