"""The approval audit: signed approvals cover exactly the calls that ran, the seal catches a
re-chained trace, and pinned keys say who signed.

Every trace here is written by the real TraceWriter and signed with govrun.runtime.trace.signing
(see tests/support/signed_runs.py); every forgery is what someone with the format spec would do:
edit events, re-sign with a key of their own, and re-chain so the hash chain holds. Every test
runs on a schema-2 trace and on a schema-1 one (records are forever: so is their audit).
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from govrun.cli.render.verify import UNPINNED
from govrun.runtime.errors import TraceError
from govrun.runtime.trace.audit import AuditFeed, audit_approvals
from govrun.runtime.trace.canonical import call_hash
from govrun.runtime.trace.reader import read_trace
from govrun.runtime.trace.signing import (
    APPROVAL_FIELDS,
    approval_message,
    fingerprint,
    load_trusted_keys,
    verify_signature,
)
from govrun.runtime.trace.verify import VerifyReport, verify_trace
from govrun.runtime.trace.writer import BLOB_THRESHOLD, REDACTED
from tests.support.cli import govrun
from tests.support.signed_runs import (
    ATTACKER,
    MACHINE,
    OWNER,
    Call,
    allow,
    approvals_in,
    ask,
    deny,
    events_of,
    sign_approval,
    trusted_file,
    write_events,
    write_signed_run,
)
from tests.support.traces import write_run

PINNED = {OWNER.fingerprint: "alice"}
CALLS = [allow(), ask("approve"), ask("reject"), deny(), ask("approve", path="b.md", content="b")]
"""call_1 allowed, call_2 approved and run, call_3 rejected, call_4 denied, call_5 approved."""
SIGNATURE_FIELDS = ("key_fingerprint", "public_key", "key_source", "signature")
SCHEMA = 2
"""The schema the test at hand writes its traces in (set by the ``schema`` fixture)."""


@pytest.fixture(autouse=True, params=[2, 1], ids=["schema-2", "schema-1"])
def schema(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys.modules[__name__], "SCHEMA", request.param)
    return request.param


def signed(tmp_path: Path, calls: list[Call] = CALLS, name: str = "run.jsonl", **kw: Any) -> Path:
    return write_signed_run(tmp_path / name, calls, schema=SCHEMA, **kw)


def _proposal(e: dict[str, Any]) -> bool:
    """The event that holds a call as proposed: schema 2's tool_call, schema 1's proposal."""
    return e["type"] in ("tool_call", "tool_call_proposed")


def _effect(e: dict[str, Any]) -> str | None:
    """Policy's effect, on the event that holds it (tool_call, or schema 1's decision)."""
    if e["type"] == "tool_call":
        return str(e["decision"]["effect"])
    return e["effect"] if e["type"] == "policy_decision" else None


def _call_of(events: list[dict[str, Any]], started: int) -> dict[str, Any]:
    """What the tool_started at ``started`` ran: itself in schema 1, else its tool_call."""
    t = events[started]
    if "arguments" in t:
        return t
    return next(
        e
        for e in reversed(events[:started])
        if _proposal(e) and (e["step"], e["call_id"]) == (t["step"], t["call_id"])
    )


def index_of(events: list[dict[str, Any]], type_: str, call_id: str) -> int:
    return next(
        i for i, e in enumerate(events) if e["type"] == type_ and e.get("call_id") == call_id
    )


def run_call(events: list[dict[str, Any]], call_id: str, step: int | None = None) -> None:
    """Insert the execution of a proposed call (of ``step``, else the first with that id)
    right after its last gate event, as a forger who wants a rejected or denied call to
    look as if it ran."""
    proposed = next(
        e for e in events if _proposal(e) and e["call_id"] == call_id and step in (None, e["step"])
    )
    gate = max(
        i
        for i, e in enumerate(events)
        if e.get("call_id") == call_id and e["step"] == proposed["step"]
    )
    common = {k: proposed[k] for k in ("v", "ts", "run_id", "step", "call_id")}
    started = {**common, "type": "tool_started", "call_hash": proposed["call_hash"]}
    if proposed["type"] == "tool_call_proposed":  # schema 1 names the call again
        started.update(tool=proposed["tool"], arguments=proposed["arguments"])
    finished = {**common, "tool": proposed["tool"], "type": "tool_finished", "ok": True}
    finished["output"] = "done"
    events[gate + 1 : gate + 1] = [started, finished]


def assert_names(report: VerifyReport, event: dict[str, Any]) -> None:
    """verify failed on the approval problem at ``event``, naming its seq and call id."""
    p = report.problem
    assert p is not None and not report.ok and not report.intact
    assert p.kind == "approval", p
    assert p.seq == event["seq"], p
    assert f"approval seq {event['seq']} ({event['call_id']}, step {event['step']})" in p.message


def kinds(report: VerifyReport) -> set[str]:
    assert report.approvals is not None
    return {v.kind for v in report.approvals.violations}


# --- a valid signed run --------------------------------------------------------------------


def test_a_signed_run_verifies_but_unpinned_keys_prove_only_integrity(tmp_path: Path) -> None:
    report = verify_trace(signed(tmp_path))
    assert report.ok and report.finished, report.problem
    audit = report.approvals
    assert audit is not None and audit.ok
    assert [(a.call_id, a.decision, a.status) for a in audit.approvals] == [
        ("call_2", "approve", "unpinned"),
        ("call_3", "reject", "unpinned"),
        ("call_5", "approve", "unpinned"),
    ]
    assert audit.seal == "unpinned"
    assert audit.unpinned and audit.signers == {OWNER.fingerprint: None}
    assert {a.fingerprint for a in audit.approvals} == {OWNER.fingerprint}


def test_pinned_when_the_trusted_keys_hold_the_signer(tmp_path: Path) -> None:
    keys = load_trusted_keys(trusted_file(tmp_path / "trusted", alice=OWNER))
    report = verify_trace(signed(tmp_path), trusted_keys=keys)
    assert report.ok, report.problem
    audit = report.approvals
    assert audit is not None
    assert {(a.status, a.owner) for a in audit.approvals} == {("pinned", "alice")}
    assert (audit.seal, audit.seal_owner) == ("pinned", "alice")
    assert not audit.unpinned and audit.signers == {OWNER.fingerprint: "alice"}


def test_untrusted_when_the_trusted_keys_do_not_hold_the_signer(tmp_path: Path) -> None:
    path = signed(tmp_path)
    keys = load_trusted_keys(trusted_file(tmp_path / "trusted", mallory=ATTACKER))
    report = verify_trace(path, trusted_keys=keys)
    assert_names(report, events_of(path)[approvals_in(events_of(path))[0]])
    assert report.problem is not None
    assert "signed by a key that is not trusted" in report.problem.message
    audit = report.approvals
    assert audit is not None
    assert {a.status for a in audit.approvals} == {"untrusted"}
    assert audit.seal == "untrusted"
    assert {"untrusted", "untrusted_seal", "unapproved"} == kinds(report)


def test_a_trace_with_nothing_to_audit_skips_the_audit(tmp_path: Path) -> None:
    write_run(tmp_path / "plain.jsonl")
    report = verify_trace(tmp_path / "plain.jsonl")
    assert report.ok and report.approvals is None


def test_a_sealed_run_without_approvals(tmp_path: Path) -> None:
    report = verify_trace(signed(tmp_path, [allow(), deny()]), trusted_keys=PINNED)
    assert report.ok, report.problem
    assert report.approvals is not None
    assert (report.approvals.approvals, report.approvals.seal) == ([], "pinned")


def test_the_audit_is_a_pure_function_of_the_events(tmp_path: Path) -> None:
    events, _ = read_trace(signed(tmp_path))
    assert audit_approvals(events, trusted=PINNED) == audit_approvals(events, trusted=PINNED)
    audit = audit_approvals(events, trusted=None)
    assert audit.ok and audit.seal == "unpinned" and not audit.trusted_checked


# --- editing any signed field of an approval ------------------------------------------------

EDITS: dict[str, Callable[[dict[str, Any], list[dict[str, Any]]], Any]] = {
    "step": lambda e, _: e["step"] + 1,
    "call_id": lambda e, _: "call_9",
    "tool": lambda e, _: "fs.read",
    "call_hash": lambda e, _: "0" * 64,
    "policy_hash": lambda e, _: "f" * 64,
    "decision": lambda e, _: "reject",
    "via": lambda e, _: "auto",
    "approver": lambda e, _: "mallory@evil",
    "reason": lambda e, _: "looks fine to me",
    "decided_at": lambda e, _: "2030-01-01T00:00:00.000000Z",
    "public_key": lambda e, _: ATTACKER.public_key,
    "key_fingerprint": lambda e, _: ATTACKER.fingerprint,
    # a genuine signature by the right key, over another approval
    "signature": lambda e, events: events[approvals_in(events)[1]]["signature"],
}


def test_the_edits_cover_every_signed_field() -> None:
    signed_fields = set(APPROVAL_FIELDS) | {"public_key", "key_fingerprint", "signature"}
    assert set(EDITS) | {"run_id"} == signed_fields


@pytest.mark.parametrize("trusted", [None, PINNED], ids=["unpinned", "pinned"])
@pytest.mark.parametrize("field", sorted(EDITS))
def test_editing_a_signed_field_of_an_approval_is_detected(
    tmp_path: Path, field: str, trusted: dict[str, str] | None
) -> None:
    path = signed(tmp_path)
    events = events_of(path)
    approval = events[approvals_in(events)[0]]
    new = EDITS[field](approval, events)
    assert new != approval[field]
    approval[field] = new
    report = verify_trace(write_events(path, events), trusted_keys=trusted)
    assert_names(report, approval)
    assert report.approvals is not None
    assert report.approvals.approvals[0].status == "invalid"
    assert "invalid_seal" in kinds(report)  # and the re-chained head no longer matches the seal


def test_an_approval_key_swap_says_so(tmp_path: Path) -> None:
    path = signed(tmp_path)
    events = events_of(path)
    events[approvals_in(events)[0]]["public_key"] = ATTACKER.public_key
    report = verify_trace(write_events(path, events))
    assert report.problem is not None and "its key was swapped" in report.problem.message


def test_moving_the_whole_trace_to_another_run_id_is_detected(tmp_path: Path) -> None:
    path = signed(tmp_path)
    events = [{**e, "run_id": "run-other"} for e in events_of(path)]
    report = verify_trace(write_events(path, events), trusted_keys=PINNED)
    assert_names(report, events[approvals_in(events)[0]])
    assert report.approvals is not None
    assert {a.status for a in report.approvals.approvals} == {"invalid"}
    assert report.approvals.seal == "invalid"


def test_editing_the_run_id_of_one_approval_breaks_the_one_run_rule(tmp_path: Path) -> None:
    path = signed(tmp_path)
    events = events_of(path)
    approval = events[approvals_in(events)[0]]
    approval["run_id"] = "run-other"
    report = verify_trace(write_events(path, events))
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("multiple_runs", approval["seq"])


def test_stripping_a_signature_is_detected(tmp_path: Path) -> None:
    path = signed(tmp_path)
    events = events_of(path)
    approval = events[approvals_in(events)[0]]
    for key in SIGNATURE_FIELDS:
        approval[key] = None
    report = verify_trace(write_events(path, events, reseal=OWNER))
    assert_names(report, approval)
    assert report.problem is not None and "is not signed" in report.problem.message


# --- forgeries -------------------------------------------------------------------------------


def test_signed_with_another_key_under_the_old_public_key(tmp_path: Path) -> None:
    path = signed(tmp_path)
    events = events_of(path)
    approval = events[approvals_in(events)[1]]  # call_3, rejected: forge it into an approval
    approval["decision"] = "approve"
    approval["signature"] = sign_approval(dict(approval), ATTACKER)["signature"]
    run_call(events, "call_3")
    report = verify_trace(write_events(path, events, reseal=ATTACKER))
    assert_names(report, approval)
    assert "does not match its signature" in str(report.problem)


def test_an_attacker_key_is_only_caught_by_pinning(tmp_path: Path) -> None:
    """Re-signing everything with a key of one's own is a self-consistent trace: without
    trusted keys it verifies, as "unpinned" (integrity, not identity); pinned, it fails."""
    path = signed(tmp_path)
    events = events_of(path)
    approval = events[approvals_in(events)[1]]
    approval["decision"] = "approve"
    sign_approval(approval, ATTACKER)
    run_call(events, "call_3")
    forged = write_events(path, events, reseal=ATTACKER)

    unpinned = verify_trace(forged)
    assert unpinned.ok and unpinned.approvals is not None and unpinned.approvals.unpinned
    assert ATTACKER.fingerprint in unpinned.approvals.signers

    pinned = verify_trace(forged, trusted_keys=PINNED)
    assert_names(pinned, approval)
    assert "signed by a key that is not trusted" in str(pinned.problem)
    assert {"untrusted", "untrusted_seal"} <= kinds(pinned)


@pytest.mark.parametrize("rehash", [False, True], ids=["same-hash", "new-hash"])
def test_changing_the_arguments_of_an_approved_call(tmp_path: Path, rehash: bool) -> None:
    """Even re-signed and re-sealed by the forger (so no pinning), an approval covers the
    exact call it names: other arguments, or another call_hash, are not approved."""
    path = signed(tmp_path)
    events = events_of(path)
    at = index_of(events, "tool_started", "call_2")
    ran = _call_of(events, at)
    ran["arguments"] = {"path": "../../.ssh/authorized_keys", "content": "ssh-ed25519 AAAA"}
    if rehash:
        ran["call_hash"] = call_hash(ran["tool"], ran["arguments"], ran["step"])
        events[at]["call_hash"] = ran["call_hash"]
    report = verify_trace(write_events(path, events, reseal=ATTACKER))
    approval = events[index_of(events, "approval_decided", "call_2")]
    assert_names(report, approval)
    assert "not_covered" in kinds(report) and "unapproved" in kinds(report)
    assert "call_2 executed without a valid approval" in " ".join(
        v.message
        for v in report.approvals.violations  # type: ignore[union-attr]
    )


def _move_approval(events: list[dict[str, Any]], source: str, target: str) -> dict[str, Any]:
    """Put ``source``'s approval in place of ``target``'s and make ``target`` run."""
    moved = dict(events[index_of(events, "approval_decided", source)])
    at = index_of(events, "approval_decided", target)
    moved.update(call_id=target, step=events[at]["step"], seq=events[at]["seq"])
    events[at] = moved
    run_call(events, target)
    return moved


def test_an_approval_moved_to_another_call(tmp_path: Path) -> None:
    path = signed(tmp_path)
    events = events_of(path)
    moved = _move_approval(events, "call_2", "call_3")
    report = verify_trace(write_events(path, events), trusted_keys=PINNED)
    assert_names(report, moved)
    assert "moved here from another call, step or run" in str(report.problem)


def test_an_approval_moved_to_another_call_and_re_signed(tmp_path: Path) -> None:
    """With the forger's own key (no pinning) the signature holds, but the approval still
    names the call_hash of the call it was for."""
    path = signed(tmp_path)
    events = events_of(path)
    moved = sign_approval(_move_approval(events, "call_2", "call_3"), ATTACKER)
    report = verify_trace(write_events(path, events, reseal=ATTACKER))
    assert_names(report, moved)
    assert "the approval is for another call" in str(report.problem)


def test_an_approval_moved_to_another_run(tmp_path: Path) -> None:
    """Two runs of the same task: run A's approval of the exact same call (same step, call
    id, arguments, hash) copied into run B, where that call was rejected."""
    a = signed(tmp_path, [ask("approve")], name="a.jsonl", run_id="run-A")
    b = signed(tmp_path, [ask("reject")], name="b.jsonl", run_id="run-B")
    approval_a = events_of(a)[approvals_in(events_of(a))[0]]
    events = events_of(b)
    at = approvals_in(events)[0]
    assert events[at]["call_hash"] == approval_a["call_hash"]

    copied = [*events[:at], approval_a, *events[at + 1 :]]
    run_call(copied, "call_1")
    literal = verify_trace(write_events(tmp_path / "copy.jsonl", copied), trusted_keys=PINNED)
    assert literal.problem is not None and literal.problem.kind == "multiple_runs"

    events[at] = {**approval_a, "run_id": "run-B"}
    run_call(events, "call_1")
    report = verify_trace(write_events(b, events), trusted_keys=PINNED)
    assert_names(report, events[at])


def test_a_re_chained_trace_fails_its_seal(tmp_path: Path) -> None:
    """An edit anywhere, even far from any approval, changes the head the seal signed."""
    path = signed(tmp_path)
    events = events_of(path)
    events[index_of(events, "tool_finished", "call_1")]["output"] = "nothing to see"
    report = verify_trace(write_events(path, events))
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("approval", len(events) - 1)
    assert "the seal of run_finished" in report.problem.message
    assert report.approvals is not None and report.approvals.seal == "invalid"
    assert all(a.valid for a in report.approvals.approvals)


def test_events_cut_off_the_end_fail_the_seal(tmp_path: Path) -> None:
    path = signed(tmp_path)
    events = events_of(path)
    cut = [*events[:-8], events[-1]]  # the last steps gone, run_finished kept
    report = verify_trace(write_events(path, cut))
    assert report.problem is not None and report.problem.kind == "approval"
    assert report.approvals is not None and report.approvals.seal == "invalid"


def test_events_cut_off_with_run_finished_read_as_a_crash_not_as_ok(tmp_path: Path) -> None:
    path = signed(tmp_path)
    events = events_of(path)
    report = verify_trace(write_events(path, events[:-8]), trusted_keys=PINNED)
    assert not report.ok and report.problem is not None and report.problem.kind == "unfinished"


@pytest.mark.parametrize(
    "edit",
    [{"status": "failed"}, {"final_answer": "I deleted the repository."}, {"steps": 1}],
    ids=["status", "final_answer", "steps"],
)
def test_editing_the_outcome_in_run_finished_fails_the_seal(
    tmp_path: Path, edit: dict[str, Any]
) -> None:
    """The last event's hash is referenced by nothing after it, so only the seal (which
    covers the stated outcome, SEAL_FIELDS) catches an edited and re-hashed outcome."""
    path = signed(tmp_path)
    events = events_of(path)
    events[-1].update(edit)
    report = verify_trace(write_events(path, events), trusted_keys=PINNED)
    assert report.problem is not None and kinds(report) == {"invalid_seal"}
    assert report.problem.seq == len(events) - 1


def test_a_removed_seal(tmp_path: Path) -> None:
    path = signed(tmp_path)
    events = events_of(path)
    events[-1]["seal"] = None
    report = verify_trace(write_events(path, events))
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("approval", len(events) - 1)
    assert "unsealed" in report.problem.message and kinds(report) == {"unsealed"}


def test_trusted_keys_require_a_seal(tmp_path: Path) -> None:
    """Stripping every approval and the seal leaves a plausible old-style trace; only a
    pinned key can tell, so with trusted keys an unsealed trace does not verify."""
    write_run(tmp_path / "plain.jsonl")
    report = verify_trace(tmp_path / "plain.jsonl", trusted_keys=PINNED)
    assert report.problem is not None and kinds(report) == {"unsealed"}
    assert "no trusted key vouches for this trace" in report.problem.message


def test_an_ask_call_executed_without_any_approval(tmp_path: Path) -> None:
    path = signed(tmp_path)
    events = events_of(path)
    gone = {index_of(events, t, "call_2") for t in ("approval_requested", "approval_decided")}
    events = [e for i, e in enumerate(events) if i not in gone]
    report = verify_trace(write_events(path, events, reseal=OWNER))  # even with the seal key
    assert report.problem is not None and report.problem.kind == "approval"
    assert report.problem.seq == index_of(events, "tool_started", "call_2")
    assert report.problem.message.startswith("call_2 executed without a valid approval")
    assert "none was recorded" in report.problem.message


def test_unsigned_approvals_prove_nothing(tmp_path: Path) -> None:
    report = verify_trace(signed(tmp_path, signer=None))
    assert report.problem is not None and report.problem.kind == "approval"
    assert report.approvals is not None
    assert {a.status for a in report.approvals.approvals} == {"unsigned"}
    assert kinds(report) == {"unsigned", "unapproved"}


@pytest.mark.parametrize("decision", ["reject", "stop"])
def test_a_call_executed_after_a_no(tmp_path: Path, decision: str) -> None:
    path = signed(tmp_path, [allow(), ask(decision)])  # type: ignore[arg-type]
    events = events_of(path)
    run_call(events, "call_2")
    report = verify_trace(write_events(path, events, reseal=OWNER))
    assert report.problem is not None and report.problem.kind == "approval"
    said = "rejected" if decision == "reject" else "stopped"
    assert f"although approval seq {events[approvals_in(events)[0]]['seq']} {said} it" in (
        report.problem.message
    )


def test_a_denied_call_executed(tmp_path: Path) -> None:
    path = signed(tmp_path)
    events = events_of(path)
    run_call(events, "call_4")
    report = verify_trace(write_events(path, events, reseal=OWNER))
    assert report.problem is not None
    assert "call_4 executed" in report.problem.message and "policy denied it" in (
        report.problem.message
    )


def test_an_approval_covers_one_execution(tmp_path: Path) -> None:
    path = signed(tmp_path)
    events = events_of(path)
    at = index_of(events, "tool_started", "call_2")
    events[at + 2 : at + 2] = [dict(events[at]), dict(events[at + 1])]
    report = verify_trace(write_events(path, events, reseal=OWNER))
    assert report.problem is not None and report.problem.seq == at + 2
    assert "was already used by the call at seq" in report.problem.message


# --- honest traces that must still verify -----------------------------------------------------


def test_a_crashed_signed_run_is_a_crash_with_its_approvals_checked(tmp_path: Path) -> None:
    report = verify_trace(signed(tmp_path, finish=False), trusted_keys=PINNED)
    assert report.intact and not report.ok
    assert report.problem is not None and report.problem.kind == "unfinished"
    assert report.approvals is not None and report.approvals.ok
    assert report.approvals.seal == "missing"


def test_a_forgery_in_a_crashed_run_is_tampering_not_a_crash(tmp_path: Path) -> None:
    path = signed(tmp_path, finish=False)
    events = events_of(path)
    events[approvals_in(events)[0]]["approver"] = "someone else"
    report = verify_trace(write_events(path, events))
    assert_names(report, events[approvals_in(events)[0]])


def test_arguments_redacted_by_the_writer_still_verify(tmp_path: Path) -> None:
    """A secret in an approved call's arguments is redacted in the trace, so the exact call
    cannot be re-hashed from it; the signed call_hash and the seal still cover it."""
    secret = "sk-live-0123456789abcdef"
    path = signed(tmp_path, [ask("approve", path="env.txt", content=secret)], secrets=[secret])
    assert secret.encode() not in path.read_bytes() and REDACTED.encode() in path.read_bytes()
    report = verify_trace(path, trusted_keys=PINNED)
    assert report.ok, report.problem


def test_arguments_stored_as_blobs_verify(tmp_path: Path) -> None:
    big = "x" * (BLOB_THRESHOLD + 10)
    report = verify_trace(signed(tmp_path, [ask("approve", path="big.txt", content=big)]))
    assert report.ok, report.problem
    assert report.blobs >= 1


def test_call_ids_reused_across_steps(tmp_path: Path) -> None:
    """Some models number calls per turn; an approval covers its own step's call only."""
    calls = [Call(c.tool, c.arguments, c.effect, c.decision, "call_0") for c in CALLS]
    path = signed(tmp_path, calls)
    assert verify_trace(path, trusted_keys=PINNED).ok
    events = events_of(path)
    # the approval of step 2 moved to the rejected call of step 3: same call id
    approval = dict(events[approvals_in(events)[0]])
    at = approvals_in(events)[1]
    events[at] = {**approval, "step": events[at]["step"], "seq": events[at]["seq"]}
    run_call(events, "call_0", step=events[at]["step"])
    report = verify_trace(write_events(path, events, reseal=OWNER))
    assert_names(report, events[at])


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_call_id_reused_within_a_step(tmp_path: Path, decision: str) -> None:
    """An allowed call that reuses the id of a gated call in the same step needs no approval
    of its own: not "used twice", not "executed after a reject"."""
    gated = Call(**{**vars(ask(decision)), "call_id": "c"})  # type: ignore[arg-type]
    path = signed(tmp_path, [gated, allow()])
    events = events_of(path)
    second = [e for e in events if e["step"] == 2 and e["type"] != "step_started"]
    first = [e for e in events if e["step"] == 1 and e["type"] != "step_finished"]
    for e in second:
        e["step"] = 1
        e["call_id"] = "c" if "call_id" in e else e.get("call_id")
    rest = [e for e in events if e["step"] not in (1, 2)]
    merged = [events[0], *first, *second, *rest[1:]]
    report = verify_trace(write_events(path, merged, reseal=OWNER), trusted_keys=PINNED)
    assert report.ok, report.problem


# --- property: verify is ok exactly when nothing was forged ------------------------------------

Events = list[dict[str, Any]]
Tamper = Callable[[Events, st.DataObject], "bool | None"]
"""Applies one forgery in place. None when it does not apply to this run; else whether only
a pinned key can expose it (the forger signed with their own key, or removed the seal)."""


def _pick(
    events: Events, data: st.DataObject, keep: Callable[[dict[str, Any]], bool]
) -> int | None:
    found = [i for i, e in enumerate(events) if keep(e)]
    return data.draw(st.sampled_from(found), label="target") if found else None


def _approval(e: dict[str, Any]) -> bool:
    return e["type"] == "approval_decided"


def t_edit_field(events: Events, data: st.DataObject) -> bool | None:
    i = _pick(events, data, _approval)
    if i is None:
        return None
    field = data.draw(st.sampled_from(sorted(EDITS)), label="field")
    others = [events[j] for j in approvals_in(events) if j != i]
    if field == "signature" and not others:
        field = "reason"
    value = EDITS[field](events[i], [events[i], *others])
    if value == events[i][field]:
        value = {"decision": "approve", "signature": None}.get(field, f"{value}!")
    events[i][field] = value
    return False


def t_re_sign(events: Events, data: st.DataObject) -> bool | None:
    """Flip a decision and sign it with the forger's own key."""
    i = _pick(events, data, _approval)
    if i is None:
        return None
    flip = {"approve": "reject", "reject": "approve", "stop": "approve"}
    events[i]["decision"] = flip[events[i]["decision"]]
    sign_approval(events[i], ATTACKER)
    return True


def t_key_swap(events: Events, data: st.DataObject) -> bool | None:
    """Sign with the forger's key but keep stating the owner's (pinned) fingerprint."""
    i = _pick(events, data, _approval)
    if i is None:
        return None
    sign_approval(events[i], ATTACKER)
    events[i]["key_fingerprint"] = OWNER.fingerprint
    return False


def t_arguments(events: Events, data: st.DataObject) -> bool | None:
    """Change what an approved call ran with (and maybe its call_hash to match)."""
    approved = {(e["step"], e["call_id"]) for e in events if _approval(e)}
    i = _pick(
        events,
        data,
        lambda e: e["type"] == "tool_started" and (e["step"], e["call_id"]) in approved,
    )
    if i is None:
        return None
    t = _call_of(events, i)
    t["arguments"] = {**t["arguments"], "extra": data.draw(st.text(max_size=5), label="extra")}
    if data.draw(st.booleans(), label="rehash"):
        t["call_hash"] = events[i]["call_hash"] = call_hash(t["tool"], t["arguments"], t["step"])
    return False


def t_strip_signature(events: Events, data: st.DataObject) -> bool | None:
    i = _pick(events, data, _approval)
    if i is None:
        return None
    for key in SIGNATURE_FIELDS:
        events[i][key] = None
    return False


def t_unseal(events: Events, data: st.DataObject) -> bool | None:
    events[-1]["seal"] = None
    return True


def t_drop_approval(events: Events, data: st.DataObject) -> bool | None:
    i = _pick(events, data, _approval)
    if i is None:
        return None
    key = (events[i]["step"], events[i]["call_id"])
    events[:] = [
        e
        for e in events
        if not (e["type"].startswith("approval_") and (e["step"], e.get("call_id")) == key)
    ]
    return False


def t_run_refused(events: Events, data: st.DataObject) -> bool | None:
    """Make a rejected, stopped or denied call look as if it ran."""
    i = _pick(
        events,
        data,
        lambda e: (_approval(e) and e["decision"] != "approve") or _effect(e) == "deny",
    )
    proposed = {(e["step"], e["call_id"]) for e in events if _proposal(e)}
    if i is None or (events[i]["step"], events[i]["call_id"]) not in proposed:
        return None  # an earlier forgery moved its approval away from any proposed call
    run_call(events, events[i]["call_id"], events[i]["step"])
    return False


def t_run_twice(events: Events, data: st.DataObject) -> bool | None:
    """Run an approved call a second time on the same approval."""
    i = _pick(events, data, lambda e: e["type"] == "tool_started")
    if i is None:
        return None
    again = [dict(e) for e in events[i : i + 2]]  # tool_started, and tool_finished if kept
    events[i + len(again) : i + len(again)] = again
    return False


def t_move_approval(events: Events, data: st.DataObject) -> bool | None:
    i = _pick(events, data, _approval)
    j = _pick(events, data, _proposal)
    if i is None or j is None or events[j]["step"] == events[i]["step"]:
        return None
    events[i]["call_id"], events[i]["step"] = events[j]["call_id"], events[j]["step"]
    return False


def t_edit_other(events: Events, data: st.DataObject) -> bool | None:
    i = _pick(events, data, lambda e: e["type"] in ("tool_finished", "model_response"))
    if i is None:
        return None
    events[i]["duration_ms"] = events[i].get("duration_ms", 0.0) + 1.0
    return False


def t_strip_everything(events: Events, data: st.DataObject) -> bool | None:
    """Make every call look allowed, drop every approval and the seal: an old-style trace."""
    for e in events:
        if _effect(e) == "ask":
            (e["decision"] if e["type"] == "tool_call" else e)["effect"] = "allow"
    events[:] = [e for e in events if not e["type"].startswith("approval_")]
    events[-1]["seal"] = None
    return True


def t_cut_tail(events: Events, data: st.DataObject) -> bool | None:
    if len(events) < 2:
        return None  # nothing left to cut but run_started
    del events[-data.draw(st.integers(1, min(6, len(events) - 1)), label="cut") :]
    return False


TAMPERINGS: list[Tamper] = [
    t_edit_field,
    t_re_sign,
    t_key_swap,
    t_arguments,
    t_strip_signature,
    t_unseal,
    t_drop_approval,
    t_run_refused,
    t_run_twice,
    t_move_approval,
    t_edit_other,
    t_strip_everything,
    t_cut_tail,
]


def _call(kind: str, text: str) -> Call:
    if kind == "allow":
        return allow(path=text or "notes.md")
    if kind == "deny":
        return deny(command=f"curl {text}")
    return ask(kind, path="out.md", content=text)  # type: ignore[arg-type]


CALL = st.builds(
    _call,
    st.sampled_from(["approve", "approve", "approve", "reject", "allow", "deny", "stop"]),
    st.text(max_size=6),
)


def _tamper(path: Path, chosen: list[Tamper], data: st.DataObject) -> list[bool]:
    """Apply the chosen forgeries to the trace at ``path``; what applied (see :data:`Tamper`)."""
    events = events_of(path)
    applied = []
    for tamper in chosen:
        forged = tamper(events, data)
        if forged is not None:
            applied.append(forged)
            event(tamper.__name__)
    return applied


def _ask_calls_ran_approved(path: Path, trusted: dict[str, str] | None) -> bool:
    """The invariant, checked independently of the audit: every executed call that policy
    sent to the gate follows a validly signed approve of exactly that call, used once."""
    events = events_of(path)
    used: set[int] = set()
    for n, t in enumerate(events):
        if t["type"] != "tool_started":
            continue
        key = (t["step"], t["call_id"])
        before = [e for e in events[:n] if (e["step"], e.get("call_id")) == key]
        policies = [e for e in before if _effect(e) is not None]
        if not policies or _effect(policies[-1]) != "ask":
            continue
        ran = _call_of(events, n)
        approvals = [e for e in before if _approval(e)]
        if not approvals or approvals[-1]["seq"] in used:
            return False
        a = approvals[-1]
        used.add(a["seq"])
        pk, fp, sig = (a.get(k) for k in ("public_key", "key_fingerprint", "signature"))
        if not (
            a["decision"] == "approve"
            and a["call_hash"]
            == t["call_hash"]
            == ran["call_hash"]
            == call_hash(ran["tool"], ran["arguments"], t["step"])
            and pk
            and sig
            and fingerprint(pk) == fp
            and verify_signature(pk, approval_message(a), sig)
            and (trusted is None or fp in trusted)
        ):
            return False
    return True


PROPERTY = settings(
    max_examples=300,
    deadline=None,
    # the one function-scoped fixture (``schema``) only picks the schema for all examples
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
RUNS = st.lists(CALL, min_size=1, max_size=6)
FORGERIES = st.lists(st.sampled_from(TAMPERINGS), max_size=3)


def _apply(events: Events, chosen: list[Tamper], data: st.DataObject) -> list[bool]:
    """Apply the chosen forgeries in place; for each that applied, whether only a pinned
    key can expose it (see :data:`Tamper`)."""
    applied = []
    for tamper in chosen:
        forged = tamper(events, data)
        if forged is not None:
            applied.append(forged)
            event(tamper.__name__)
    return applied


@PROPERTY
@given(calls=RUNS, chosen=FORGERIES, reseal=st.booleans(), data=st.data())
def test_verify_is_ok_exactly_when_nothing_was_forged(
    calls: list[Call], chosen: list[Tamper], reseal: bool, data: st.DataObject
) -> None:
    """With the owner's key pinned, every forgery fails verify, whether the forger re-seals
    the re-chained trace with a key of their own or not. Without pinning, so does every
    forgery that needs no key of the forger's and keeps the seal."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_signed_run(Path(tmp) / "run.jsonl", calls, schema=SCHEMA)
        events = events_of(path)
        applied = _apply(events, chosen, data)
        if events == events_of(path):
            applied = []  # the forgeries undid each other (moved an edited step back, say)
        if reseal and events[-1]["type"] == "run_finished":
            applied.append(True)
            event("resealed by the forger")
        if applied:
            write_events(path, events, reseal=ATTACKER if reseal else None)
        pinned = verify_trace(path, trusted_keys=PINNED)
        unpinned = verify_trace(path)

        assert pinned.ok == (not applied), (applied, pinned.problem)
        if not applied:
            assert unpinned.ok, unpinned.problem
        elif not any(applied):
            assert not unpinned.ok
        for report, trusted in ((pinned, PINNED), (unpinned, None)):
            if report.ok:
                assert _ask_calls_ran_approved(path, trusted)
            if report.problem is not None and report.problem.kind == "approval":
                assert re.search(r"\bseq \d+\b", report.problem.message)
        _assert_the_feed_keeps_what_the_audit_reads(path)


def _assert_the_feed_keeps_what_the_audit_reads(path: Path) -> None:
    """verify audits only what AuditFeed kept of the events; the verdict is the same as
    over the whole trace."""
    try:
        events, _ = read_trace(path)
    except TraceError:
        return
    feed = AuditFeed()
    for e in events:
        feed.add(e)
    assert len(feed.events) <= len(events)
    for trusted in (PINNED, None):
        assert audit_approvals(feed.events, trusted=trusted) == audit_approvals(
            events, trusted=trusted
        )


@settings(PROPERTY, max_examples=500)
@given(
    calls=RUNS,
    chosen=st.lists(st.sampled_from(TAMPERINGS), min_size=1, max_size=2),
    data=st.data(),
)
def test_no_ask_call_runs_without_a_valid_approval_even_with_the_seal_key(
    calls: list[Call], chosen: list[Tamper], data: st.DataObject
) -> None:
    """The approvals hold on their own: here alice signs the approvals and the run's own key
    seals the trace, and the forger stole the run's key, so every forged trace carries a
    valid, pinned seal. Whenever such a trace verifies, every ``ask`` call that ran was
    validly approved by alice, exactly as it ran, once."""
    trusted = {**PINNED, MACHINE.fingerprint: "ci runner"}
    with tempfile.TemporaryDirectory() as tmp:
        path = write_signed_run(Path(tmp) / "run.jsonl", calls, sealer=MACHINE)
        events = events_of(path)
        if _apply(events, chosen, data):
            write_events(path, events, reseal=MACHINE)
        for keys, pins in ((trusted, PINNED), (None, None)):
            report = verify_trace(path, trusted_keys=keys)
            if report.ok:
                assert _ask_calls_ran_approved(path, pins), report.approvals


# --- the CLI --------------------------------------------------------------------------------


def test_cli_unpinned(tmp_path: Path) -> None:
    ran = govrun("verify", signed(tmp_path))
    assert ran.code == 0, ran.flat
    assert "✓ intact" in ran.flat
    assert "approvals 3 (2 approved, 1 rejected), every signature valid" in ran.flat
    assert f"signed by {OWNER.fingerprint} not pinned" in ran.flat
    assert UNPINNED in ran.flat


def test_cli_pinned(tmp_path: Path) -> None:
    trusted = trusted_file(tmp_path / "trusted", alice=OWNER, mallory=ATTACKER)
    ran = govrun("verify", signed(tmp_path), "--trusted-keys", trusted)
    assert ran.code == 0, ran.flat
    assert f"signed by {OWNER.fingerprint} alice (pinned) (key file" in ran.flat
    assert "seal valid, by a trusted key" in ran.flat
    assert UNPINNED not in ran.flat


def test_cli_untrusted(tmp_path: Path) -> None:
    trusted = trusted_file(tmp_path / "trusted", mallory=ATTACKER)
    path = signed(tmp_path)
    ran = govrun("verify", path, "--trusted-keys", trusted)
    at = approvals_in(events_of(path))[0]
    assert ran.code == 1, ran.flat
    assert "✗ approval not proven" in ran.flat
    assert f"approval seq {at} (call_2, step 2) is signed by a key that is not trusted" in ran.flat
    assert f"✗ seq {at + 1}: call_2 executed without a valid approval" in ran.flat


def test_cli_forged_approval(tmp_path: Path) -> None:
    path = signed(tmp_path)
    events = events_of(path)
    at = approvals_in(events)[0]
    events[at]["decision"] = "reject"
    ran = govrun("verify", write_events(path, events))
    assert ran.code == 1, ran.flat
    assert f"approval seq {at} (call_2, step 2) does not match its signature" in ran.flat
    assert f"The chain of {len(events)} events is unbroken" in ran.flat
    assert "1 invalid" in ran.flat


def test_cli_json(tmp_path: Path) -> None:
    trusted = trusted_file(tmp_path / "trusted", alice=OWNER)
    path = signed(tmp_path)
    ran = govrun("verify", path, "--trusted-keys", trusted, "--json")
    assert ran.code == 0, ran.flat
    doc = json.loads(ran.out)
    assert doc["ok"] is True and doc["trusted_checked"] is True
    audit = doc["approvals"]
    assert audit["ok"] is True and audit["seal"] == "pinned" and audit["violations"] == []
    seqs = approvals_in(events_of(path))
    assert [(a["seq"], a["call_id"], a["status"], a["owner"]) for a in audit["approvals"]] == [
        (seqs[0], "call_2", "pinned", "alice"),
        (seqs[1], "call_3", "pinned", "alice"),
        (seqs[2], "call_5", "pinned", "alice"),
    ]
    assert audit["signers"] == [{"fingerprint": OWNER.fingerprint, "owner": "alice"}]


def test_cli_json_with_violations(tmp_path: Path) -> None:
    path = signed(tmp_path)
    events = events_of(path)
    events[-1]["seal"] = None
    ran = govrun("verify", write_events(path, events), "--json")
    assert ran.code == 1
    doc = json.loads(ran.out)
    assert doc["problem"]["kind"] == "approval" and doc["intact"] is False
    assert [v["kind"] for v in doc["approvals"]["violations"]] == ["unsealed"]


def test_cli_json_without_approvals_has_none(tmp_path: Path) -> None:
    write_run(tmp_path / "plain.jsonl")
    ran = govrun("verify", tmp_path / "plain.jsonl", "--json")
    assert ran.code == 0 and json.loads(ran.out)["approvals"] is None


def test_cli_trusted_keys_missing_file(tmp_path: Path) -> None:
    ran = govrun("verify", signed(tmp_path), "--trusted-keys", tmp_path / "nope")
    assert ran.code == 2
    assert f"{tmp_path / 'nope'}: no such trusted keys file" in ran.flat


def test_cli_trusted_keys_malformed(tmp_path: Path) -> None:
    (tmp_path / "trusted").write_text("not-a-key alice\n")
    ran = govrun("verify", signed(tmp_path), "--trusted-keys", tmp_path / "trusted")
    assert ran.code == 2
    assert "trusted:1: expected a base64 Ed25519 public key" in ran.flat


def test_cli_trusted_keys_by_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "trusted").write_text(f"{OWNER.fingerprint} alice (laptop)\n")
    ran = govrun("verify", signed(tmp_path), "--trusted-keys", tmp_path / "trusted")
    assert ran.code == 0, ran.flat
    assert "alice (laptop)" in ran.flat


def test_cli_an_ephemeral_key_can_never_be_pinned(tmp_path: Path) -> None:
    """Without a key of their own, runs are signed by a key made for the run: it proves the
    trace unaltered, but --trusted-keys cannot vouch for it, and verify says what to do."""
    path = signed(tmp_path, signer=MACHINE)
    ran = govrun("verify", path)
    assert ran.code == 0, ran.flat
    assert "not pinned (ephemeral key: made for this run only)" in ran.flat
    trusted = trusted_file(tmp_path / "trusted", alice=OWNER)
    ran = govrun("verify", path, "--trusted-keys", trusted)
    assert ran.code == 1
    assert "an ephemeral key made for this run only, which no one can pin" in ran.flat
    assert "govrun keys init" in ran.flat


def test_cli_a_crashed_signed_run(tmp_path: Path) -> None:
    ran = govrun("verify", signed(tmp_path, finish=False))
    assert ran.code == 1
    assert "✗ incomplete" in ran.flat and "Nothing was altered" in ran.flat
    assert "approvals 3 (2 approved, 1 rejected), every signature valid" in ran.flat
    assert "seal none yet: the run did not finish" in ran.flat


def test_cli_a_trusted_key_without_a_name(tmp_path: Path) -> None:
    (tmp_path / "trusted").write_text(f"{OWNER.public_key} {OWNER.fingerprint}\n")  # keys init
    ran = govrun("verify", signed(tmp_path), "--trusted-keys", tmp_path / "trusted")
    assert ran.code == 0, ran.flat
    assert f"signed by {OWNER.fingerprint} pinned (key file" in ran.flat


def test_cli_help_documents_trusted_keys() -> None:
    ran = govrun("verify", "--help")
    assert ran.code == 0 and "--trusted-keys" in ran.flat and "integrity, not identity" in ran.flat
