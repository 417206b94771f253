"""The approval audit: every ``ask`` call that ran was approved, by whom, for exactly that call.

A chain of hashes proves a trace is self-consistent, not that it is the trace the run wrote:
anyone can edit an event and re-chain the rest. The audit adds what only a key can give.

- Each ``approval_decided`` must carry a signature that verifies over
  :func:`govrun.runtime.trace.signing.approval_message` (its fields, and the run id and step of its
  envelope) with the public key it names, whose fingerprint it states.
- An approval covers exactly one call: the ``tool_started`` of the same call (same step and
  call id) has the approved ``call_hash``, and that hash is what its tool, arguments and
  step hash to. So an approval moved to another call, step or run fails its signature or
  this check, and so does a call whose arguments changed after it was approved.
- Every call that policy sent to the gate (``ask``) runs only after a valid ``approve`` for
  that exact call; a call that was denied, rejected or stopped does not run at all.
- ``run_finished`` carries a seal over the run id, event count, head hash and the outcome it
  states (:data:`govrun.runtime.trace.signing.SEAL_FIELDS`). Re-chaining an edited trace changes the
  head, so the edit is detected without the seal key; a trace with signed approvals but no
  seal had its seal removed. With trusted keys, every finished trace must be sealed:
  otherwise stripping all approvals and the seal would go unseen.

Without trusted keys a valid signature proves integrity, not identity: the key travels in
the trace, so a forger can re-sign everything with a key of their own. Pinning public keys
outside the trace (``govrun verify --trusted-keys``) says who signed; then a signature by
any other key is a violation.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from govrun.runtime.trace.events import (
    ApprovalDecided,
    Event,
    PolicyDecision,
    RunFinished,
    ToolCall,
    ToolStarted,
)
from govrun.runtime.trace.signing import (
    APPROVAL_FIELDS,
    SEAL_FIELDS,
    approval_message,
    fingerprint,
    seal_message,
    verify_signature,
)
from govrun.runtime.trace.writer import REDACTED

KeyStatus = Literal["pinned", "unpinned", "untrusted", "invalid", "unsigned"]
"""One signature: valid with a trusted key, valid with a key nobody pinned, valid with a key
that is not in the trusted set, not valid, or absent."""

SealStatus = Literal["pinned", "unpinned", "untrusted", "invalid", "missing", "none-needed"]
"""The seal of ``run_finished``: as :data:`KeyStatus`, or ``missing`` (approvals but no
seal, or no ``run_finished``), or ``none-needed`` (no seal and nothing that needs one)."""

ViolationKind = Literal[
    "unsigned",
    "invalid_signature",
    "untrusted",
    "not_covered",
    "unapproved",
    "executed_after_no",
    "unsealed",
    "invalid_seal",
    "untrusted_seal",
]

VALID: frozenset[str] = frozenset({"pinned", "unpinned"})
"""Statuses of a signature that counts (with trusted keys given, only ``pinned`` occurs)."""


@dataclass(frozen=True)
class ApprovalCheck:
    """What the audit found about one ``approval_decided`` event."""

    seq: int
    step: int
    call_id: str
    tool: str
    decision: str
    via: str
    approver: str
    fingerprint: str | None
    key_source: str | None
    status: KeyStatus
    owner: str | None = None
    """The key's owner from the trusted-keys file (``pinned`` only)."""

    @property
    def valid(self) -> bool:
        return self.status in VALID


@dataclass(frozen=True)
class Violation:
    """One thing the approval record does not prove; ``seq`` is the event it is about."""

    seq: int
    kind: ViolationKind
    message: str


@dataclass(frozen=True)
class ApprovalAudit:
    """The verdict on a trace's approvals and seal. ``ok`` when there are no violations."""

    approvals: list[ApprovalCheck]
    seal: SealStatus
    violations: list[Violation]
    seal_fingerprint: str | None = None
    seal_owner: str | None = None
    seal_key_source: str | None = None
    trusted_checked: bool = False
    """Whether trusted keys were given, so ``pinned`` means a key pinned outside the trace."""

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def signers(self) -> dict[str, str | None]:
        """Fingerprint -> owner (None when unpinned) of every valid signature, seal included,
        in order of first use."""
        found: dict[str, str | None] = {}
        for a in self.approvals:
            if a.valid and a.fingerprint is not None:
                found.setdefault(a.fingerprint, a.owner)
        if self.seal in VALID and self.seal_fingerprint is not None:
            found.setdefault(self.seal_fingerprint, self.seal_owner)
        return found

    @property
    def unpinned(self) -> bool:
        """True when some valid signature is by a key nobody pinned: integrity, not identity."""
        return self.seal == "unpinned" or any(a.status == "unpinned" for a in self.approvals)


class AuditFeed:
    """Keeps, from events streamed in trace order, only what :func:`audit_approvals` reads,
    so verify holds on to little: every approval, every gate decision other than allow,
    the executions of gated calls, and ``run_finished``. Auditing :attr:`events` gives the
    same result as auditing the whole trace. :attr:`needed` says whether there is anything
    to audit (an approval, a call sent to the gate, or a seal)."""

    __slots__ = ("events", "gated", "needed")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.gated: set[tuple[int, str]] = set()
        self.needed = False

    def add(self, event: Event) -> None:
        if isinstance(event, ToolStarted):
            if (event.step, event.call_id) in self.gated:
                self.events.append(event)
        elif isinstance(event, ToolCall | PolicyDecision):
            key = (event.step, event.call_id)
            if _effect(event) != "allow":
                self.gated.add(key)
                self.needed = self.needed or _effect(event) == "ask"
            elif key not in self.gated:
                return  # an allowed call: nothing to audit
            self.events.append(event)  # an allow after a gated call of the same id resets it
        elif isinstance(event, ApprovalDecided):
            self.gated.add((event.step, event.call_id))
            self.needed = True
            self.events.append(event)
        elif isinstance(event, RunFinished):
            self.needed = self.needed or event.seal is not None
            self.events.append(event)

    def ignores(self, kind: str, stored: Mapping[str, Any]) -> bool:
        """Whether :meth:`add` would neither keep nor note the valid event of type ``kind``
        stored as ``stored``, whose ``step``, ``call_id`` and ``effect`` are as the typed
        event holds them: the execution of a call not sent to the gate, or a call policy
        allowed that was not. Verify then need not build the typed event. An event without
        ``step`` (it takes the default) is not ignored."""
        if kind == "tool_started":
            return "step" in stored and (stored["step"], stored["call_id"]) not in self.gated
        if kind in ("tool_call", "policy_decision"):
            decided = stored["decision"] if kind == "tool_call" else stored
            return (
                decided["effect"] == "allow"
                and "step" in stored
                and (stored["step"], stored["call_id"]) not in self.gated
            )
        return False


def audit_approvals(events: Iterable[Event], *, trusted: Mapping[str, str] | None) -> ApprovalAudit:
    """Audit the approvals and the seal of one run's verified events, in trace order.

    ``trusted`` maps pinned fingerprints to owner names (:func:`govrun.runtime.trace.signing.
    load_trusted_keys`); None means no key is pinned, so valid signatures are ``unpinned``.
    """
    return _Audit(trusted).run(events)


def _effect(event: ToolCall | PolicyDecision) -> str:
    """Policy's effect on a call, in either schema (2: ``tool_call.decision``)."""
    return event.decision.effect if isinstance(event, ToolCall) else event.effect


@dataclass(slots=True)
class _Call:
    """The gate's state for one call, keyed by (step, call_id)."""

    policy: ToolCall | PolicyDecision | None = None
    approval: ApprovalDecided | None = None
    check: ApprovalCheck | None = None
    ran_at: int | None = None
    """Seq of the call's first ``tool_started``: an approval covers one execution."""


class _Audit:
    def __init__(self, trusted: Mapping[str, str] | None) -> None:
        self.trusted = trusted
        self.calls: dict[tuple[int, str], _Call] = {}
        self.checks: list[ApprovalCheck] = []
        self.violations: list[Violation] = []

    def run(self, events: Iterable[Event]) -> ApprovalAudit:
        finished: RunFinished | None = None
        for event in events:
            if isinstance(event, ToolCall | PolicyDecision):
                self.calls[event.step, event.call_id] = _Call(policy=event)
            elif isinstance(event, ApprovalDecided):
                self._approval(event)
            elif isinstance(event, ToolStarted):
                self._started(event)
            elif isinstance(event, RunFinished):
                finished = event
        seal, seal_fp, seal_owner = self._seal(finished)
        source = finished.seal.get("key_source") if finished and finished.seal else None
        return ApprovalAudit(
            approvals=self.checks,
            seal=seal,
            violations=sorted(self.violations, key=lambda v: v.seq),
            seal_fingerprint=seal_fp,
            seal_owner=seal_owner,
            seal_key_source=_str(source),
            trusted_checked=self.trusted is not None,
        )

    # --- one approval ------------------------------------------------------------------

    def _approval(self, a: ApprovalDecided) -> None:
        status, why = self._signature(
            a.public_key,
            a.key_fingerprint,
            a.signature,
            # run_id and step are the envelope's: an approval moved to another run or step
            # no longer matches its signature
            approval_message({k: getattr(a, k) for k in APPROVAL_FIELDS}),
        )
        check = ApprovalCheck(
            seq=a.seq,
            step=a.step,
            call_id=a.call_id,
            tool=a.tool,
            decision=a.decision,
            via=a.via,
            approver=a.approver,
            fingerprint=a.key_fingerprint,
            key_source=a.key_source,
            status=status,
            owner=self._owner(status, a.key_fingerprint),
        )
        self.checks.append(check)
        name = f"approval seq {a.seq} ({a.call_id}, step {a.step})"
        if status == "unsigned":
            self._flag(
                a.seq,
                "unsigned",
                f"{name} is not signed: nothing proves who {_past(a.decision)} {a.tool} "
                "(its signature was stripped, or the trace predates signed approvals).",
            )
        elif status == "invalid":
            self._flag(a.seq, "invalid_signature", f"{name} {why}")
        elif status == "untrusted":
            self._flag(
                a.seq,
                "untrusted",
                f"{name} is signed by a key that is not trusted "
                f"({_key(a.key_fingerprint, a.key_source)}).",
            )
        state = self.calls.setdefault((a.step, a.call_id), _Call())
        state.approval, state.check = a, check

    def _signature(
        self,
        public_key: str | None,
        key_fingerprint: str | None,
        signature: str | None,
        message: bytes,
    ) -> tuple[KeyStatus, str]:
        """(status, why it is invalid) of one signature with the key it names."""
        if not (public_key and key_fingerprint and signature):
            return "unsigned", ""
        try:
            actual = fingerprint(public_key)
        except (binascii.Error, ValueError):
            return "invalid", "carries a public key that is not valid base64."
        if actual != key_fingerprint:
            return "invalid", (
                f"names key {key_fingerprint} but carries another public key ({actual}): "
                "its key was swapped."
            )
        if not verify_signature(public_key, message, signature):
            return "invalid", (
                "does not match its signature: a signed field was changed, or it was "
                "moved here from another call, step or run."
            )
        if self.trusted is None:
            return "unpinned", ""
        if key_fingerprint in self.trusted:
            return "pinned", ""
        return "untrusted", ""

    # --- one executed call -------------------------------------------------------------

    def _started(self, t: ToolStarted) -> None:
        state = self.calls.setdefault((t.step, t.call_id), _Call())
        policy, a, check = state.policy, state.approval, state.check
        if a is not None and a.decision != "approve":
            self._flag(
                t.seq,
                "executed_after_no",
                f"{t.call_id} executed (seq {t.seq}) although approval seq {a.seq} "
                f"{_past(a.decision)} it.",
            )
            return
        if policy is not None and _effect(policy) == "deny":
            self._flag(
                t.seq,
                "executed_after_no",
                f"{t.call_id} executed (seq {t.seq}) although policy denied it (seq {policy.seq}).",
            )
            return
        ran_before, state.ran_at = state.ran_at, t.seq
        covered = a is not None and ran_before is None and self._covers(a, t, policy)
        if policy is None or _effect(policy) != "ask":
            return
        if a is None or check is None:
            why = "policy asked for approval and none was recorded"
        elif ran_before is not None:
            why = f"approval seq {a.seq} was already used by the call at seq {ran_before}"
        elif not check.valid:
            why = f"approval seq {a.seq} is {_STATUS_WORDS[check.status]}"
        elif not covered:
            why = f"approval seq {a.seq} does not cover the call that ran"
        else:
            return
        self._flag(
            t.seq,
            "unapproved",
            f"{t.call_id} executed without a valid approval (tool_started seq {t.seq}, "
            f"step {t.step}): {why}.",
        )

    def _covers(
        self, a: ApprovalDecided, t: ToolStarted, policy: ToolCall | PolicyDecision | None
    ) -> bool:
        """Whether approval ``a`` is for exactly the call ``t`` ran, flagging it if not."""
        name = f"approval seq {a.seq} ({a.call_id}, step {a.step})"
        if a.call_hash != t.call_hash:
            self._flag(
                a.seq,
                "not_covered",
                f"{name} approved call {a.call_hash[:12]}…, but {t.call_id} ran as "
                f"{t.call_hash[:12]}… (seq {t.seq}): the approval is for another call.",
            )
            return False
        recomputed = _recompute(t, policy)
        if recomputed is not None and recomputed != t.call_hash:
            self._flag(
                a.seq,
                "not_covered",
                f"{name} approved call {a.call_hash[:12]}…, but the tool, arguments and step "
                f"that ran (seq {t.seq}) hash to {recomputed[:12]}…: the call was changed "
                "after it was approved.",
            )
            return False
        return True

    # --- the seal ----------------------------------------------------------------------

    def _seal(self, finished: RunFinished | None) -> tuple[SealStatus, str | None, str | None]:
        if finished is None:  # a crash; verify reports the run as unfinished
            return ("missing" if self.checks else "none-needed"), None, None
        seal = finished.seal
        if not seal:
            where = f"run_finished (seq {finished.seq}) is unsealed"
            if any(c.status != "unsigned" for c in self.checks):
                self._flag(
                    finished.seq,
                    "unsealed",
                    f"{where}, but the trace holds signed approvals: its seal was removed.",
                )
            elif self.trusted is not None:
                # else stripping every approval and the seal would pass for an old trace
                self._flag(
                    finished.seq,
                    "unsealed",
                    f"{where}, so no trusted key vouches for this trace (its seal was "
                    "removed, or it was written before govrun sealed traces).",
                )
            else:
                return ("missing" if self.checks else "none-needed"), None, None
            return "missing", None, None
        fp = _str(seal.get("key_fingerprint"))
        status, _why = self._signature(
            _str(seal.get("public_key")),
            fp,
            _str(seal.get("signature")),
            seal_message({k: getattr(finished, k) for k in SEAL_FIELDS}),
        )
        where = f"run_finished (seq {finished.seq})"
        if status in ("invalid", "unsigned"):
            self._flag(
                finished.seq,
                "invalid_seal",
                f"the seal of {where} does not verify over run {finished.run_id}, "
                f"{finished.event_count} events, head {finished.head[:12]}…: the trace was "
                "cut short, re-chained, or its outcome edited after it was sealed.",
            )
            return "invalid", fp, None
        if status == "untrusted":
            self._flag(
                finished.seq,
                "untrusted_seal",
                f"{where} is sealed by a key that is not trusted "
                f"({_key(fp, _str(seal.get('key_source')))}).",
            )
        return status, fp, self._owner(status, fp)

    def _owner(self, status: KeyStatus, fp: str | None) -> str | None:
        if status != "pinned" or self.trusted is None or fp is None:
            return None
        return self.trusted.get(fp)

    def _flag(self, seq: int, kind: ViolationKind, message: str) -> None:
        self.violations.append(Violation(seq, kind, message))


_STATUS_WORDS = {
    "unsigned": "not signed",
    "invalid": "not validly signed",
    "untrusted": "signed by a key that is not trusted",
}


def _past(decision: str) -> str:
    return {"approve": "approved", "reject": "rejected", "stop": "stopped"}.get(decision, decision)


def _key(fp: str | None, source: str | None) -> str:
    if source == "ephemeral":
        return (
            f"{fp}, an ephemeral key made for this run only, which no one can pin: "
            "sign runs with a key from `govrun keys init`"
        )
    return str(fp)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _recompute(t: ToolStarted, policy: ToolCall | PolicyDecision | None) -> str | None:
    """The hash of the call ``t`` ran — from its own arguments (schema 1) or from the
    ``tool_call`` it names (schema 2: the canonical call) — or None when the writer
    redacted a secret from them, or nothing holds them: the exact call then cannot be
    recomputed from the trace (its ``call_hash`` is still covered by the approval's
    signature and by the seal)."""
    from govrun.runtime.trace.canonical import call_hash

    if t.arguments is not None and t.tool is not None:
        tool, arguments = t.tool, t.arguments
    elif isinstance(policy, ToolCall):
        tool = policy.tool
        arguments = policy.canonical if policy.canonical is not None else policy.arguments
    else:
        return None
    if arguments is None or _mentions(arguments, REDACTED):
        return None
    return call_hash(tool, arguments, t.step)


def _mentions(value: Any, needle: str) -> bool:
    if isinstance(value, str):
        return needle in value
    if isinstance(value, dict):
        return any(_mentions(k, needle) or _mentions(v, needle) for k, v in value.items())
    if isinstance(value, list):
        return any(_mentions(v, needle) for v in value)
    return False
