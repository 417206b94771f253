"""Every approval decision and every trace is signed, by a real run through the real loop.

Each ``approval_decided`` carries an Ed25519 signature over exactly the values it records
(``govrun.runtime.trace.signing.approval_message``); each ``run_finished`` carries a seal over the
run id, the event count and the head it states. The key is the user's (``govrun keys init``) when
there is one, else one made for the run. ``GOVRUN_HOME`` points at a temporary folder in
every test, so the real home is never read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from govrun.runtime.errors import GovrunError
from govrun.runtime.govern.approvers import AutoApprover, DenyApprover
from govrun.runtime.loop import RunCrashed
from govrun.runtime.ports import ApprovalDecision, ApprovalRequest, FixedClock
from govrun.runtime.run import run_agent
from govrun.runtime.trace import events as ev
from govrun.runtime.trace.canonical import canonical, sha256_hex
from govrun.runtime.trace.reader import read_trace
from govrun.runtime.trace.signing import (
    APPROVAL_FIELDS,
    SEAL_FIELDS,
    Signer,
    approval_message,
    default_key_path,
    fingerprint,
    init_key,
    seal_message,
    verify_signature,
)
from govrun.runtime.trace.verify import verify_trace
from govrun.runtime.trace.writer import REDACTED
from tests.support.agents import (
    answer,
    call,
    calls,
    checked_events,
    last,
    new_trace_path,
    of_type,
    one,
    prepare,
    run_in,
    scripted_manifest,
)

ASK_WRITES = {
    "default": "allow",
    "rules": [{"id": "ask-writes", "tools": ["fs.write"], "effect": "ask"}],
}
TWO_WRITES = [
    calls(call("fs_write", {"path": "a.txt", "content": "a"}, id="c1")),
    calls(call("fs_write", {"path": "b.txt", "content": "b"}, id="c2")),
    answer(),
]


@pytest.fixture(autouse=True)
def govrun_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty govrun home: no user key unless a test makes one."""
    home = tmp_path / "govrun-home"
    monkeypatch.setenv("GOVRUN_HOME", str(home))
    return home


class StopApprover:
    def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        return ApprovalDecision(decision="stop", approver="tester", via="prompt", reason="enough")


def signed_fields(e: ev.ApprovalDecided) -> dict[str, Any]:
    """What the approval's signature covers, read back from the trace (envelope included)."""
    return {k: getattr(e, k) for k in APPROVAL_FIELDS}


def seal_fields(e: ev.RunFinished) -> dict[str, Any]:
    return {k: getattr(e, k) for k in SEAL_FIELDS}


def assert_approval_signed(e: ev.ApprovalDecided) -> None:
    assert e.public_key and e.signature and e.key_source
    assert e.key_fingerprint == fingerprint(e.public_key)
    assert verify_signature(e.public_key, approval_message(signed_fields(e)), e.signature)


def assert_sealed(events: list[ev.Event]) -> dict[str, Any]:
    finished = last(events, ev.RunFinished)
    seal = finished.seal
    assert seal is not None
    assert set(seal) == {"key_fingerprint", "public_key", "key_source", "signature"}
    assert seal["key_fingerprint"] == fingerprint(seal["public_key"])
    # the seal covers exactly the count and head the event states, and those are right
    assert (finished.event_count, finished.head) == (len(events), events[-2].hash)
    assert finished.head == finished.prev
    message = seal_message(seal_fields(finished))
    assert verify_signature(seal["public_key"], message, seal["signature"])
    return seal


def altered(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if value is None:
        return "x"
    if isinstance(value, dict):
        return {**value, "tokens": value.get("tokens", 0) + 1}
    return value + "x"


# --- every approval is signed, and the trace is sealed ---------------------------------------


@pytest.mark.parametrize(
    ("approver", "decision", "via"),
    [(AutoApprover(), "approve", "auto"), (DenyApprover(), "reject", "deny")],
    ids=["approved", "rejected"],
)
def test_every_approval_decision_is_signed_and_the_run_is_sealed(
    tmp_path: Path, approver: Any, decision: str, via: str
) -> None:
    result, events = run_in(
        tmp_path, scripted_manifest(policy=ASK_WRITES), script=TWO_WRITES, approver=approver
    )

    assert result.status == "completed"
    decided = of_type(events, ev.ApprovalDecided)
    assert [(d.step, d.call_id, d.decision, d.via) for d in decided] == [
        (1, "c1", decision, via),
        (2, "c2", decision, via),
    ]
    for d in decided:
        assert_approval_signed(d)
        assert d.run_id == result.run_id
    seal = assert_sealed(events)
    # one key signs the whole run: no user key here, so one made for this run
    assert {(d.key_fingerprint, d.key_source) for d in decided} == {
        (seal["key_fingerprint"], "ephemeral")
    }
    assert seal["key_source"] == "ephemeral"
    assert verify_trace(result.trace_path).ok


def test_a_run_stopped_by_its_approver_is_signed_and_sealed(tmp_path: Path) -> None:
    result, events = run_in(
        tmp_path, scripted_manifest(policy=ASK_WRITES), script=TWO_WRITES, approver=StopApprover()
    )

    assert (result.status, result.failure_class) == ("stopped", "approval_rejected")
    assert_approval_signed(one(events, ev.ApprovalDecided, decision="stop"))
    assert_sealed(events)


def test_a_run_without_approvals_is_still_sealed(tmp_path: Path) -> None:
    _, events = run_in(tmp_path, scripted_manifest(), script=TWO_WRITES)

    assert of_type(events, ev.ApprovalDecided) == []
    assert assert_sealed(events)["key_source"] == "ephemeral"


def test_a_run_that_crashes_in_a_port_is_still_sealed(tmp_path: Path) -> None:
    class BrokenApprover:
        def decide(self, request: ApprovalRequest) -> ApprovalDecision:
            raise KeyError("approver bug")

    m = prepare(tmp_path, scripted_manifest(policy=ASK_WRITES), script=TWO_WRITES)
    trace = new_trace_path(tmp_path)

    with pytest.raises(RunCrashed) as crashed:
        run_agent(m, task="t", trace_path=trace, approver=BrokenApprover(), env={})

    assert isinstance(crashed.value.__cause__, KeyError)

    events = checked_events(trace)
    assert last(events, ev.RunFinished).failure_class == "internal_error"
    assert_sealed(events)


# --- what the signatures cover ----------------------------------------------------------------


@pytest.mark.parametrize("field", APPROVAL_FIELDS)
def test_changing_any_signed_approval_field_breaks_its_signature(
    tmp_path: Path, field: str
) -> None:
    _, events = run_in(
        tmp_path,
        scripted_manifest(policy=ASK_WRITES),
        script=TWO_WRITES,
        approver=AutoApprover(),
    )
    d = of_type(events, ev.ApprovalDecided)[0]
    fields = signed_fields(d)
    assert verify_signature(d.public_key, approval_message(fields), d.signature)

    fields[field] = altered(fields[field])

    assert not verify_signature(d.public_key, approval_message(fields), d.signature)


@pytest.mark.parametrize("field", SEAL_FIELDS)
def test_changing_any_sealed_field_breaks_the_seal(tmp_path: Path, field: str) -> None:
    _, events = run_in(tmp_path, scripted_manifest(), script=[answer()])
    finished = last(events, ev.RunFinished)
    fields = seal_fields(finished)
    fields[field] = altered(fields[field])

    assert not verify_signature(
        finished.seal["public_key"], seal_message(fields), finished.seal["signature"]
    )


def test_an_approval_signature_is_not_a_valid_seal(tmp_path: Path) -> None:
    _, events = run_in(
        tmp_path,
        scripted_manifest(policy=ASK_WRITES),
        script=TWO_WRITES,
        approver=AutoApprover(),
    )
    d = of_type(events, ev.ApprovalDecided)[0]

    assert not verify_signature(d.public_key, seal_message(signed_fields(d)), d.signature)


def test_an_edited_and_rechained_trace_passes_the_chain_but_not_the_signatures(
    tmp_path: Path,
) -> None:
    """The hash chain alone cannot catch someone who rewrites it; the signatures do."""
    result, _ = run_in(
        tmp_path, scripted_manifest(policy=ASK_WRITES), script=TWO_WRITES, approver=DenyApprover()
    )
    path = Path(result.trace_path)
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    for row in rows:
        if row["type"] == "approval_decided" and row["call_id"] == "c1":
            row["decision"], row["reason"] = "approve", "looked fine to me"
    prev = rows[0]["prev"]
    for row in rows:
        if row["type"] == "run_finished":
            row["head"] = prev
        row["prev"] = prev
        row.pop("hash")
        row["hash"] = prev = sha256_hex(canonical(row))
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(b"".join(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) + b"\n" for r in rows))

    report = verify_trace(forged)  # the chain is consistent again: only signatures object
    assert report.problem is None or report.problem.kind == "approval", report.problem
    events, _ = read_trace(forged)
    edited, untouched = of_type(events, ev.ApprovalDecided)
    assert edited.decision == "approve"
    assert not verify_signature(  # ... but the edited approval no longer matches its signature
        edited.public_key, approval_message(signed_fields(edited)), edited.signature
    )
    assert_approval_signed(untouched)
    finished = last(events, ev.RunFinished)
    assert not verify_signature(  # and the seal names the head the run really ended with
        finished.seal["public_key"], seal_message(seal_fields(finished)), finished.seal["signature"]
    )


def test_a_secret_in_a_decision_is_redacted_before_it_is_signed(tmp_path: Path) -> None:
    """The writer redacts secrets; what is signed is what is stored, so it still verifies."""
    secret = "hunter2-not-a-real-key"

    class Chatty:
        def decide(self, request: ApprovalRequest) -> ApprovalDecision:
            return ApprovalDecision(
                decision="approve", approver="me", via="prompt", reason=f"ok, key {secret}"
            )

    result, events = run_in(
        tmp_path,
        scripted_manifest(policy=ASK_WRITES, secrets=["MY_TOKEN"]),
        script=TWO_WRITES,
        approver=Chatty(),
        env={"MY_TOKEN": secret},  # run_in also checks that it never reaches the trace
    )

    for d in of_type(events, ev.ApprovalDecided):
        assert d.reason == f"ok, key {REDACTED}"
        assert_approval_signed(d)
    assert verify_trace(result.trace_path).ok


# --- which key signs ----------------------------------------------------------------------------


def test_the_users_key_from_keys_init_signs_approvals_and_the_seal(tmp_path: Path) -> None:
    key_path = default_key_path()
    assert key_path.is_relative_to(Path(os.environ["GOVRUN_HOME"]))
    signer = init_key(key_path)

    _, events = run_in(
        tmp_path,
        scripted_manifest(policy=ASK_WRITES),
        script=TWO_WRITES,
        approver=AutoApprover(),
    )

    recorded = {
        (d.key_source, d.key_fingerprint, d.public_key) for d in of_type(events, ev.ApprovalDecided)
    }
    seal = assert_sealed(events)
    assert recorded == {(f"file:{key_path}", signer.fingerprint, signer.public_key)}
    assert (seal["key_source"], seal["key_fingerprint"]) == (
        f"file:{key_path}",
        signer.fingerprint,
    )


def test_without_a_key_each_run_signs_with_its_own_ephemeral_key(tmp_path: Path) -> None:
    seals = []
    for n in (1, 2):
        _, events = run_in(tmp_path / f"run{n}", scripted_manifest(), script=[answer()])
        seals.append(assert_sealed(events))

    assert [s["key_source"] for s in seals] == ["ephemeral", "ephemeral"]
    assert seals[0]["key_fingerprint"] != seals[1]["key_fingerprint"]
    assert not default_key_path().exists()  # a run never creates a key file


def test_a_key_others_can_read_is_refused_before_the_trace_is_created(tmp_path: Path) -> None:
    key_path = default_key_path()
    init_key(key_path)
    key_path.chmod(0o644)
    m = prepare(tmp_path, scripted_manifest(), script=[answer()])
    trace = new_trace_path(tmp_path)

    with pytest.raises(GovrunError) as raised:
        run_agent(m, task="t", trace_path=trace, clock=FixedClock(), env={})

    assert f"signing key {key_path} is readable by others (mode 644)" in raised.value.message
    assert raised.value.hint == f"Fix it with: chmod 600 {key_path}"
    assert raised.value.exit_code == 2
    assert not trace.exists()


def test_a_signer_passed_to_run_agent_wins_over_the_users_key(tmp_path: Path) -> None:
    key_path = default_key_path()
    init_key(key_path)
    key_path.chmod(0o644)  # not even looked at when the caller chooses the key
    mine = init_key(tmp_path / "other-keys" / "mine.ed25519")
    m = prepare(tmp_path, scripted_manifest(policy=ASK_WRITES), script=TWO_WRITES)
    trace = new_trace_path(tmp_path)

    run_agent(
        m,
        task="t",
        trace_path=trace,
        approver=AutoApprover(),
        clock=FixedClock(),
        env={},
        signer=Signer.load(tmp_path / "other-keys" / "mine.ed25519"),
    )

    events = checked_events(trace)
    for d in of_type(events, ev.ApprovalDecided):
        assert_approval_signed(d)
        assert (d.key_fingerprint, d.key_source) == (
            mine.fingerprint,
            f"file:{tmp_path / 'other-keys' / 'mine.ed25519'}",
        )
    assert assert_sealed(events)["key_fingerprint"] == mine.fingerprint
