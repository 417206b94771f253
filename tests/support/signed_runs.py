"""Write signed traces for tests, and forge them the ways an attacker with the format spec
(but not the key) would.

:func:`write_signed_run` drives a real :class:`~govrun.runtime.trace.writer.TraceWriter` through the
events the governed loop emits for a sequence of calls, one call per step: tool_call decided
``ask`` -> approval_requested -> approval_decided (signed with ``govrun.runtime.trace.signing``,
over ``approval_message`` of its fields and its envelope's run id and step) -> tool_started ->
tool_finished, and a ``run_finished`` sealed over its run id, event count and head — in
schema 2, or in schema 1 (``step_started``; tool_call_proposed and policy_decision; the
arguments again in tool_started).

The forging helpers edit decoded events (:func:`events_of`), re-sign an approval or the seal
with some key (:func:`sign_approval`, :func:`seal`), and write a valid chain again
(:func:`write_events`, which uses :func:`tests.support.traces.rechain`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from govrun.runtime.ports import FixedClock
from govrun.runtime.trace.canonical import call_hash, canonical, sha256_hex
from govrun.runtime.trace.events import (
    ApprovalDecided,
    ApprovalRequested,
    CallDecision,
    ModelResponse,
    PolicyDecision,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    ToolCall,
    ToolCallProposed,
    ToolFinished,
    ToolStarted,
)
from govrun.runtime.trace.signing import (
    SEAL_FIELDS,
    Signer,
    approval_message,
    seal_message,
    trusted_key_line,
)
from govrun.runtime.trace.writer import TraceWriter
from tests.support.traces import rechain

Decision = Literal["approve", "reject", "stop"]


def _signer(seed: int, source: str) -> Signer:
    """A fixed key, so signatures (Ed25519 is deterministic) and traces are reproducible."""
    return Signer(Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32), source)


OWNER = _signer(1, "file:/home/alice/.config/govrun/keys/approver.ed25519")
"""The approver whose key signs the runs; pinned as ``alice``."""
ATTACKER = _signer(2, "file:/home/mallory/approver.ed25519")
"""Someone who can rewrite the trace and sign with a key of their own."""
MACHINE = _signer(3, "ephemeral")
"""A run's own key, for sealing apart from the approver's key."""

POLICY = {
    "default": "deny",
    "rules": [{"id": "ask-writes", "tools": ["fs.write"], "effect": "ask"}],
}
POLICY_HASH = sha256_hex(canonical(POLICY))
APPROVER = "alice@laptop"


@dataclass(frozen=True)
class Call:
    """One proposed call and what the gate does with it."""

    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)
    effect: Literal["allow", "ask", "deny"] = "allow"
    decision: Decision | None = None
    """For ``ask``: what the approver decides."""
    call_id: str | None = None
    """Defaults to ``call_<step>``."""


def allow(tool: str = "fs.read", **arguments: Any) -> Call:
    return Call(tool, arguments or {"path": "notes.md"})


def ask(decision: Decision = "approve", tool: str = "fs.write", **arguments: Any) -> Call:
    return Call(tool, arguments or {"path": "out.md", "content": "# hi\n"}, "ask", decision)


def deny(tool: str = "shell.run", **arguments: Any) -> Call:
    return Call(tool, arguments or {"command": "curl example.com"}, "deny")


def write_signed_run(
    path: str | Path,
    calls: Sequence[Call],
    *,
    signer: Signer | None = OWNER,
    sealer: Signer | None = None,
    run_id: str = "run-signed-1",
    finish: bool = True,
    secrets: Sequence[str] = (),
    schema: Literal[1, 2] = 2,
) -> Path:
    """Write one run, one call per step, then a final answer step. Approvals are signed by
    ``signer`` (unsigned when None, as traces before signing were); ``run_finished`` is
    sealed by ``sealer`` (default: ``signer``). A ``stop`` decision ends the run there.
    ``secrets`` are redacted by the writer wherever they appear. ``schema=1`` writes the
    events schema 1 had, marked ``v: 1`` (and sealed over that chain)."""
    path = Path(path)
    sealer = sealer or signer
    clock = FixedClock(tick=0.25)
    writer = TraceWriter(path, run_id=run_id, clock=clock, secrets=secrets)
    status: Literal["completed", "stopped"] = "completed"
    with writer:
        writer.append(
            RunStarted(
                agent="signed-agent",
                manifest={"name": "signed-agent", "policy": POLICY},
                manifest_hash=sha256_hex(canonical({"name": "signed-agent", "policy": POLICY})),
                input="Write the notes.",
                policy_hash=POLICY_HASH,
            )
        )
        step = 0
        for step, call in enumerate(calls, start=1):
            if not _step(writer, clock, step, call, signer, schema):
                status = "stopped"
                break
        else:
            step += 1
            if schema == 1:
                writer.append(StepStarted(step=step))
            writer.append(ModelResponse(step=step, model="scripted", content="Done."))
            writer.append(StepFinished(step=step, outcome="final"))
        if finish:
            finished = RunFinished(
                status=status,
                failure_class="approval_rejected" if status == "stopped" else None,
                steps=step,
                event_count=writer.seq + 1,
                head=writer.head,
            )
            if sealer is not None:  # the seal covers SEAL_FIELDS, as the loop signs them
                fields = {k: getattr(finished, k) for k in SEAL_FIELDS if k != "run_id"}
                seal = seal_of(sealer, {**fields, "run_id": run_id})
                finished = finished.model_copy(update={"seal": seal})
            writer.append(finished)
    if schema == 1:  # this version writes v 2: mark the lines as the schema they hold
        events = [{**e, "v": 1} for e in events_of(path)]
        write_events(path, events, reseal=sealer if finish else None)
    return path


def _step(
    writer: TraceWriter,
    clock: FixedClock,
    step: int,
    call: Call,
    signer: Signer | None,
    schema: Literal[1, 2],
) -> bool:
    """One governed step with one call; False when the approver stopped the run."""
    call_id = call.call_id or f"call_{step}"
    hashed = call_hash(call.tool, call.arguments, step)
    if schema == 1:
        writer.append(StepStarted(step=step))
    writer.append(
        ModelResponse(
            step=step,
            model="scripted",
            tool_calls=[
                {
                    "id": call_id,
                    "name": call.tool,
                    "arguments": orjson.dumps(call.arguments).decode(),
                }
            ],
        )
    )
    common = {"step": step, "call_id": call_id, "tool": call.tool}
    decision = CallDecision(effect=call.effect, rule=f"rule-{call.effect}")
    if schema == 2:
        writer.append(
            ToolCall(**common, arguments=call.arguments, call_hash=hashed, decision=decision)
        )
    else:
        writer.append(ToolCallProposed(**common, arguments=call.arguments, call_hash=hashed))
        writer.append(PolicyDecision(**common, **decision.model_dump()))
    if call.effect == "deny":
        writer.append(StepFinished(step=step, outcome="continue"))
        return True
    if call.effect == "ask":
        answer = call.decision or "approve"
        writer.append(ApprovalRequested(**common, call_hash=hashed, rule="ask-writes"))
        fields: dict[str, Any] = {
            **common,
            "call_hash": hashed,
            "policy_hash": POLICY_HASH,
            "decision": answer,
            "via": "prompt",
            "approver": APPROVER,
            "reason": f"{answer} at step {step}",
            "decided_at": clock.now(),
        }
        fields = writer.redact(fields)  # sign the values as stored, as the loop does
        signature = (
            {} if signer is None else signature_of(signer, {**fields, "run_id": writer.run_id})
        )
        writer.append(ApprovalDecided(**fields, **signature))
        if answer == "stop":
            return False
        if answer == "reject":
            writer.append(StepFinished(step=step, outcome="continue"))
            return True
    if schema == 2:
        writer.append(ToolStarted(step=step, call_id=call_id, call_hash=hashed))
    else:
        writer.append(ToolStarted(**common, arguments=call.arguments, call_hash=hashed))
    writer.append(ToolFinished(**common, ok=True, output="ok"))
    writer.append(StepFinished(step=step, outcome="continue"))
    return True


def signature_of(signer: Signer, fields: dict[str, Any]) -> dict[str, str]:
    """The signature fields of an ``approval_decided`` with these (APPROVAL_FIELDS) values."""
    return {
        "key_fingerprint": signer.fingerprint,
        "public_key": signer.public_key,
        "key_source": signer.source,
        "signature": signer.sign(approval_message(fields)),
    }


def seal_of(signer: Signer, fields: dict[str, Any]) -> dict[str, str]:
    """A ``run_finished.seal`` over SEAL_FIELDS (where the trace ends and its outcome)."""
    return {
        "key_fingerprint": signer.fingerprint,
        "public_key": signer.public_key,
        "key_source": signer.source,
        "signature": signer.sign(seal_message(fields)),
    }


# --- reading and forging ---------------------------------------------------------------


def events_of(path: str | Path) -> list[dict[str, Any]]:
    """The trace's events, decoded, for editing."""
    return [orjson.loads(line) for line in Path(path).read_bytes().splitlines()]


def write_events(
    path: str | Path, events: Sequence[dict[str, Any]], *, reseal: Signer | None = None
) -> Path:
    """Write edited events as a valid chain (what a forger does), overwriting ``path``.
    ``reseal`` signs a new seal over the re-chained head, as a forger with a key would;
    otherwise the old seal stays, stating the old head."""
    path = Path(path)
    data = [orjson.loads(line) for line in rechain(events).splitlines()]
    if reseal is not None and data and data[-1].get("type") == "run_finished":
        last = data[-1]
        last["seal"] = seal_of(reseal, {k: last.get(k) for k in SEAL_FIELDS})
    path.write_bytes(rechain(data))
    return path


def sign_approval(event: dict[str, Any], signer: Signer) -> dict[str, Any]:
    """``event`` (an approval_decided) re-signed by ``signer`` over its current fields."""
    event.update(signature_of(signer, event))
    return event


def approvals_in(events: Sequence[dict[str, Any]]) -> list[int]:
    """Indexes of the approval_decided events."""
    return [i for i, e in enumerate(events) if e["type"] == "approval_decided"]


def trusted_file(path: str | Path, **owners: Signer) -> Path:
    """A trusted-keys file pinning each signer under its owner name."""
    path = Path(path)
    path.write_text(
        "# pinned approver keys\n"
        + "".join(trusted_key_line(s, name) + "\n" for name, s in owners.items())
    )
    return path
