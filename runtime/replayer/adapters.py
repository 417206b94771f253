"""The replay adapters: every port answered from the record (DESIGN section 3).

Each adapter answers what the loop asks with the recorded answer for the same step and
call — the model's reply, a tool's outcome, an approval, an operator's answer, a check's
observation, an undo — and when the record holds none, either ends the replay (the loop
asked something the record cannot answer: a divergence) or, in a fork or resume, goes
live. No adapter decides anything the loop would: the same loop code runs.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import orjson

from govrun.runtime.govern.approval_rules import RulesApprover
from govrun.runtime.govern.compaction import LiveSummarizer
from govrun.runtime.govern.decide import SCOPE_RULE
from govrun.runtime.govern.toolbox import LiveTools, PreparedCall, RejectedCall, Toolbox
from govrun.runtime.govern.verification import (
    CallContext,
    CheckOutcome,
    LiveVerifier,
    default_check,
    default_evidence_outcome,
    observes_world,
    verify_call,
    verify_success,
)
from govrun.runtime.manifest.schema import Manifest, ModelConfig
from govrun.runtime.ops.undo import Effect, LiveRollbacker, UndoOutcome
from govrun.runtime.ports import (
    ApprovalDecision,
    ApprovalRequest,
    Control,
    Model,
    ModelCallError,
    ModelReply,
    SystemClock,
    ToolCallRequest,
    Usage,
)
from govrun.runtime.tools import ScopeViolation, ToolResult
from govrun.runtime.tools.base import Canonical
from govrun.runtime.trace import events as ev
from govrun.runtime.trace.canonical import blob_dir, canonical
from govrun.runtime.trace.record import Record

if TYPE_CHECKING:
    from govrun.runtime.replayer.session import ReplaySession

# --- clock --------------------------------------------------------------------------------


_WRITERS_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", re.ASCII)
"""A timestamp as the live clock writes it: parsed by arithmetic, not by datetime."""


class ReplayClock:
    """Recorded time. Timestamps are those of the recorded events being reproduced. A
    duration or budget reading is the time of the last recorded event before it — never
    later than the live reading was, so a wall-time budget cannot trip early — except where
    the record shows the wall-time budget tripping, which answers with the time it saw.
    After going live, real time continues from there."""

    def __init__(self, session: ReplaySession) -> None:
        self.s = session
        self._live = SystemClock()
        self._times: list[float | None] = [None] * len(session.record.events)
        self._seconds: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch seconds
        self._base = 0.0
        self._origin = 0.0

    def _seq(self) -> int:
        """The recorded event the loop is about to reproduce (clamped to the record)."""
        s = self.s
        seq = s.trace.seq if s.mode == "strict" and s.trace is not None else s.cursor + 1
        last = len(self._times) - 1
        return seq if seq <= last else last

    def now(self) -> str:
        s = self.s
        if s.live:
            return self._live.now()
        return str(s.record.events[self._seq()].get("ts", ""))

    def monotonic(self) -> float:
        s = self.s
        if s.live:
            return self._base + (time.monotonic() - self._origin)
        seq = self._seq()
        e = s.record.events[seq]
        if e["type"] == "interrupt" and e.get("rule") == "max_wall_time_s" and s.mode == "strict":
            used = (e.get("detail") or {}).get("used")
            if isinstance(used, int | float):
                return self._at(0) + float(used)
        previous = seq - 1 if seq else 0
        seconds = self._times[previous]
        return seconds if seconds is not None else self._at(previous)

    def _at(self, seq: int) -> float:
        """Seconds since the epoch of the recorded event at ``seq``, parsed once."""
        seconds = self._times[seq]
        if seconds is None:
            seconds = self._times[seq] = self._parse(self.s.record.events[seq].get("ts"))
        return seconds

    def _parse(self, ts: Any) -> float:
        """A recorded timestamp in seconds. The writer's own form (``…T12:34:56.123456Z``)
        costs one dictionary lookup per second of the run; any other goes to datetime."""
        if isinstance(ts, str) and _WRITERS_TS.fullmatch(ts):
            second = self._seconds.get(ts[:19])
            if second is None:
                second = self._seconds[ts[:19]] = int(self._parse(ts[:19] + "Z"))
            # rounded once, as datetime's own timestamp() rounds
            return (second * 1_000_000 + int(ts[20:26])) / 1_000_000
        try:
            return datetime.fromisoformat(str(ts)).timestamp()
        except ValueError:
            return 0.0

    def sleep(self, seconds: float) -> None:
        if self.s.live:
            time.sleep(seconds)

    def go_live(self) -> None:
        self._base = self.monotonic()
        self._origin = time.monotonic()


# --- model, tools, approvals, operator, control, verification --------------------------------


class ReplayModel:
    """Answers with the recorded reply for this step and attempt. With `routing:`, one per
    name under `models:` (``config``), named as its live adapter would be."""

    def __init__(self, session: ReplaySession, config: str | None = None) -> None:
        self.s = session
        self.config = config
        if config is None:
            self.name = _model_name(session.m, session.record, same_manifest=session.same_manifest)
        else:
            self.name = _adapter_name(session.m.models[config])

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
        s = self.s
        if not s.live:
            step, attempt = s.request
            e = s.take(s.record.model.get((step, attempt)))
            if e is not None:
                s._replayed_model_calls[self.config] += 1
                return _reply(s.record, e)
            if not s.can_go_live:
                raise s.not_in_record(
                    f"the record holds no model reply for step {step}"
                    + (f" attempt {attempt}" if attempt > 1 else "")
                    + _ended(s.record)
                )
            s.go_live()
        return s.live_model(self.config).complete(messages, tools)


class ReplaySummarizer:
    """A compaction's summary as the trace recorded it (or its recorded failure)."""

    def __init__(self, session: ReplaySession) -> None:
        self.s = session

    def summarize(self, model: Model, instructions: str, transcript: str) -> ModelReply:
        s = self.s
        if not s.live:
            # asked before the step's first event is written: the step is the last one
            # written or the next
            compactions = s.record.compactions
            waiting = s.unused([*compactions.get(s.step, ()), *compactions.get(s.step + 1, ())])
            if waiting:
                e = s.take(waiting[0])
                assert e is not None
                if e.get("error"):
                    raise ModelCallError(str(e["error"]), retryable=False)
                return ModelReply(
                    model=str(e.get("model") or ""),
                    content=s.record.resolved(e.get("summary")),
                    usage=Usage(**(e.get("usage") or {})),
                )
            if not s.can_go_live:
                raise s.not_in_record(f"the record holds no compaction summary at step {s.step}")
            s.go_live()
        return LiveSummarizer().summarize(model, instructions, transcript)


def _reply(record: Record, e: dict[str, Any]) -> ModelReply:
    if e.get("error") is not None:
        raise ModelCallError(
            str(record.resolved(e["error"])),
            retryable=_retryable(record, e),
            failure_class=e.get("failure_class") or "model_error",
        )
    return ModelReply(
        model=e.get("model", ""),
        content=record.resolved(e.get("content")),
        tool_calls=[ToolCallRequest(**record.resolved(c)) for c in e.get("tool_calls") or []],
        finish_reason=e.get("finish_reason"),
        refusal=record.resolved(e.get("refusal")),
        usage=Usage(**(e.get("usage") or {})),
        estimated_usage=bool(e.get("estimated_usage")),
    )


def _retryable(record: Record, e: dict[str, Any]) -> bool:
    """Recorded since schema v1.1; for older traces: the run tried again."""
    if e.get("retryable") is not None:
        return bool(e["retryable"])
    return (e["step"], e.get("attempt", 1) + 1) in record.model


def _adapter_name(cfg: ModelConfig) -> str:
    return cfg.name or ("scripted" if cfg.provider == "scripted" else "")


def _model_name(m: Manifest, record: Record, *, same_manifest: bool) -> str:
    """The name the loop hashes into the prompt: as recorded, unless a new manifest names
    another model (then what its live adapter would be called)."""
    recorded = next((e["model"] for e in record.events if e["type"] == "model_request"), None)
    if same_manifest and recorded is not None:
        return str(recorded)
    if m.model.provider == "scripted":
        return m.model.name or "scripted"
    return m.model.name or str(recorded or "")


def _ended(record: Record) -> str:
    finished = record.run_finished
    if finished is None:
        return " (the recorded run ends there without finishing)"
    return f" (the recorded run ended {finished.get('status')} at step {finished.get('steps')})"


class ReplayTools:
    """Answers an allowed call with its recorded outcome; a call the record never ran ends
    the replay, or runs live when asked to."""

    def __init__(self, session: ReplaySession) -> None:
        self.s = session

    def execute(self, call: PreparedCall) -> ToolResult:
        s = self.s
        key = (s.step, call.call_id)
        started = s.record.events[s.record.started[key]] if key in s.record.started else None
        recorded_hash = s.revision.recorded_hash(s.step, call.call_id, call.call_hash)
        same = started is not None and started.get("call_hash") == recorded_hash
        if not s.live:
            finished = s.take(s.record.finished.get(key)) if same else None
            if finished is not None:
                return _result(s.record, finished)
            if s.can_go_live:
                s.go_live()  # a resume reaches the crash, or a fork's record runs out
            elif s.live_tools:
                s.live_calls.append(f"step {s.step} {call.name}")
                s.ran_live.add(key)
                return LiveTools().execute(call)
            else:
                raise s.not_in_record(
                    f"step {s.step} {call.name} would run now, but the recorded run "
                    f"{fate(s.record, key)}, so the record has no outcome for it (run it for "
                    "real with --live-tools)"
                )
        assert s.live_ports is not None
        if s.resume and same and key not in s.record.finished:
            return self._in_flight(call, s.record.events[s.record.calls[key]])
        return s.live_ports.tools.execute(call)

    def _in_flight(self, call: PreparedCall, recorded: dict[str, Any]) -> ToolResult:
        """A call that started but never finished before the crash: its effect may or may
        not have happened. The operator decides, and the decision is recorded."""
        s = self.s
        assert s.live_ports is not None and s.trace is not None
        ask = s.live_ports.in_flight
        choice, who = ask(recorded) if ask is not None else ("skip", "govrun (no operator)")
        s.trace.write(
            ev.Interrupt,
            s.step,
            {
                "kind": "operator",
                "rule": "in_flight_call",
                "action": "resume",
                "reason": f"{call.name} was in flight when the run crashed; its outcome is "
                f"unknown: {'re-run' if choice == 'rerun' else 'skipped'} by {who}",
                "by": who,
                "detail": {"call_id": call.call_id, "tool": call.name, "choice": choice},
            },
        )
        if choice == "rerun":
            return s.live_ports.tools.execute(call)
        return ToolResult.failure(
            "tool_error",
            "not re-run on resume: the call was in flight when the run crashed, so whether "
            "it took effect is unknown; check before relying on it",
        )


def _result(record: Record, e: dict[str, Any]) -> ToolResult:
    """The recorded outcome as the tool returned it. A plain success (the common case) is
    built without validation: its dicts are the record's parsed JSON, keyed by ``str``
    already and never changed."""
    data, evidence = record.resolved(e.get("data") or {}), record.resolved(e.get("evidence") or {})
    if (
        e["ok"] is True
        and e.get("error") is None
        and e.get("failure_class") is None
        and type(data) is dict
        and type(evidence) is dict
    ):
        return ToolResult.succeeded(record.resolved(e.get("output", "")), data, evidence, False)
    return ToolResult(
        ok=e["ok"],
        output=record.resolved(e.get("output", "")),
        data=data,
        evidence=evidence,
        error=record.resolved(e.get("error")),
        failure_class=e.get("failure_class"),
    )


def fate(record: Record, key: tuple[int, str]) -> str:
    """What happened to a call in the recorded run, in words."""
    seq = record.calls.get(key)
    if seq is None:
        return "never proposed it"
    decision = record.events[seq].get("decision") or {}
    if decision.get("effect") == "deny":
        why = decision.get("rule") or decision.get("failure_class") or "default"
        return f"denied it ({why})"
    approval = record.approvals.get(key)
    if approval is not None and record.events[approval]["decision"] != "approve":
        return f"{record.events[approval]['decision']}ed it at the approval gate"
    if key in record.started:
        return "started it but ends before it finished (the run crashed)"
    return "stopped before running it"


class ReplayApprover:
    """Strict: the recorded decision. Counterfactual, in the order of a live run: the
    standing rules given decide first; a call no rule decides gets the recorded decision on
    the same call (a timeout is decided anew by the new manifest's ``on_timeout``); a call
    nobody decided before is rejected, and the report says so."""

    def __init__(self, session: ReplaySession) -> None:
        self.s = session
        self._rules = (
            RulesApprover(session.rules, manifest=session.m, fallback=_Recorded(session))
            if session.rules is not None
            else None
        )

    def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        s = self.s
        if s.live:
            assert s.live_ports is not None
            return s.live_ports.approver.decide(request)
        if s.mode == "counterfactual" and self._rules is not None:
            return self._rules.decide(request)
        return _Recorded(s).decide(request)


class _Recorded:
    def __init__(self, session: ReplaySession) -> None:
        self.s = session

    def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        s = self.s
        key = (request.step, request.call_id)
        seq = s.record.approvals.get(key)
        e = s.record.events[seq] if seq is not None else None
        recorded_hash = s.revision.recorded_hash(request.step, request.call_id, request.call_hash)
        if e is not None and e.get("call_hash") == recorded_hash:
            s.take(seq)
            if e.get("via") == "timeout" and s.mode == "counterfactual":
                answer = s.m.approvals.on_timeout.model_dump().get(request.risk, "reject")
                return ApprovalDecision(
                    decision=answer,
                    approver=f"timeout ({answer} for {request.risk} risk, replayed)",
                    via="replay",
                    reason=f"nobody answered within {request.timeout_s}s",
                )
            signed = _signature(e) if s.same_run and s.mode == "strict" else None
            return ApprovalDecision(
                decision=e["decision"],
                approver=str(e.get("approver", "")),
                via=e.get("via", "replay") if signed is not None else "replay",
                reason=str(s.record.resolved(e.get("reason", ""))),
                notes=_notes_before(s, seq, request.call_id),
                signed=signed,
            )
        if s.can_go_live:
            s.go_live()
            assert s.live_ports is not None
            return _live_after_notes(s, request)
        if s.mode == "strict":
            raise s.not_in_record(f"the record holds no approval decision for {request.tool}")
        return ApprovalDecision(
            decision="reject",
            approver="replay (no recorded decision)",
            via="replay",
            reason="nobody decided this call in the recorded run; a counterfactual replay "
            "rejects it (pass --approvals RULES.yaml to decide by standing rules)",
        )


def _live_after_notes(s: ReplaySession, request: ApprovalRequest) -> ApprovalDecision:
    """The live decision on a call the record left waiting (a run resumed after it was
    suspended at the gate), after the notes the record holds for it: what was refused while
    it waited stays on record, in this trace too."""
    from govrun.runtime.loop import RunSuspended

    kept = ("kind", "detail", "ok", "by", "key_fingerprint")
    recorded = [
        {k: v for k, v in s.record.resolved(e).items() if k in kept}
        for e in s.record.events
        if e.get("type") == "approval_note"
        and e.get("step") == request.step
        and e.get("call_id") == request.call_id
    ]
    assert s.live_ports is not None
    try:
        d = s.live_ports.approver.decide(request)
    except RunSuspended as suspended:
        suspended.waiting["notes"] = recorded + list(suspended.waiting.get("notes") or ())
        raise
    return d.model_copy(update={"notes": (*recorded, *d.notes)}) if recorded else d


def _signature(e: dict[str, Any]) -> dict[str, str] | None:
    """The recorded decision's signature, to record again unchanged in a continuation of
    the same run (it covers the run id, which a continuation keeps)."""
    keys = ("decided_at", "key_fingerprint", "public_key", "key_source", "signature")
    if not all(isinstance(e.get(k), str) for k in keys):
        return None
    return {k: e[k] for k in keys}


def _notes_before(s: ReplaySession, seq: int, call_id: str) -> tuple[dict[str, Any], ...]:
    """The ``approval_note`` events recorded just before the decision at ``seq``."""
    found: list[dict[str, Any]] = []
    at = seq - 1
    while at >= 0 and s.record.events[at].get("type") == "approval_note":
        e = s.record.resolved(s.record.events[at])
        if e.get("call_id") == call_id:
            s.take(at)
            found.append(
                {
                    k: v
                    for k, v in e.items()
                    if k in ("kind", "detail", "ok", "by", "key_fingerprint")
                }
            )
        at -= 1
    return tuple(reversed(found))


class ReplayOperator:
    """The operator's recorded answer to a pause at this step (who answered and the reason
    recorded with it); stop when there is none."""

    identity = "replay"
    reason: str | None = None

    def __init__(self, session: ReplaySession) -> None:
        self.s = session

    def on_pause(self, reason: str) -> Literal["resume", "stop"]:
        s = self.s
        if s.live:
            return self._live(reason)
        waiting = s.unused(s.record.answers.get(s.step, ()))
        if waiting:
            e = s.take(waiting[0])
            assert e is not None
            self.identity = str(e.get("by") or "operator")
            self.reason = str(s.record.resolved(e.get("reason") or "")) or None
            return "resume" if e.get("action") == "resume" else "stop"
        if s.can_go_live:
            s.go_live()
            return self._live(reason)
        self.identity, self.reason = "replay (no recorded answer)", None
        return "stop"

    def _live(self, reason: str) -> Literal["resume", "stop"]:
        """The live operator answers, and is recorded as who answered."""
        assert self.s.live_ports is not None
        operator = self.s.live_ports.operator
        choice = operator.on_pause(reason)
        self.identity = getattr(operator, "identity", "operator")
        self.reason = getattr(operator, "reason", None)
        return choice


class ReplayControl(Control):
    """Reproduces recorded operator requests (Ctrl-C, `govrun ctl`) where they happened,
    with the reason recorded; a real Ctrl-C during the replay still works."""

    def __init__(self, session: ReplaySession) -> None:
        super().__init__()
        self.s = session

    def take(self) -> tuple[str, str] | tuple[str, str, str] | None:
        s = self.s
        real = super().take()
        if real is None and s.live_ports is not None and s.live_ports.control is not None:
            real = s.live_ports.control.take()
        if real is not None or s.live or s.trace is None:
            return real
        for seq in s.unused(s.record.requests):
            e = s.record.events[seq]
            due = (
                seq == s.trace.seq
                if s.mode == "strict"
                else e["step"] <= s.step and _anchor(s.record, seq) <= s.cursor
            )
            if due:
                s.take(seq)
                what, by = str(e.get("action", "stop")), str(e.get("by") or "operator")
                reason = str(s.record.resolved(e.get("reason") or ""))
                return (what, by, reason) if reason else (what, by)
            break
        return None


def _anchor(record: Record, seq: int) -> int:
    """The last answered event before ``seq``: a counterfactual replay reproduces the
    request once it has got that far."""
    for i in range(seq - 1, -1, -1):
        if record.events[i]["type"] in ("model_response", "tool_finished", "approval_decided"):
            return i
    return 0


class ReplayVerifier:
    """Checks that only read the call's result run again (they must agree); checks that
    looked at files answer with what the run observed, since those files have moved on."""

    def __init__(self, session: ReplaySession) -> None:
        self.s = session
        self._live = LiveVerifier(session.m)

    def check_call(self, call: PreparedCall, result: ToolResult) -> list[CheckOutcome]:
        s = self.s
        if s.live or (s.step, call.call_id) in s.ran_live:
            return self._live.check_call(call, result)
        m = s.m
        recorded = self._recorded((s.step, call.call_id))
        ctx = CallContext(
            tool=call.name,
            arguments=call.arguments,
            result=result,
            roots=[m.resolve_path(r) for r in call.spec.scope.roots or []],
        )
        outcomes: list[CheckOutcome] = []
        default = default_check(call.spec.uses)
        if default is not None:
            kind, world = default
            if world:
                outcomes.append(self._observed(recorded, kind, "default", required=True))
            else:
                computed = default_evidence_outcome(call.spec.uses, ctx)
                if computed is not None:
                    outcomes.append(computed)
        for check in call.spec.verify:
            if observes_world(check):
                outcomes.append(
                    self._observed(recorded, check.check, check.id, required=check.required)
                )
            else:
                outcomes += verify_call(
                    [check], ctx, base_dir=m.base_dir, workspace=m.workspace_copy
                )
        return outcomes

    def check_success(self, final_answer: str | None) -> list[CheckOutcome]:
        s = self.s
        if s.live:
            return self._live.check_success(final_answer)
        recorded = self._recorded((s.step, None))
        base, workspace = s.m.base_dir, s.m.workspace_copy
        outcomes: list[CheckOutcome] = []
        for check in s.m.success:
            if observes_world(check):
                outcomes.append(
                    self._observed(recorded, check.check, check.id, required=check.required)
                )
            else:
                outcomes += verify_success(
                    [check], final_answer=final_answer, base_dir=base, workspace=workspace
                )
        return outcomes

    def _recorded(self, key: tuple[int, str | None]) -> list[int]:
        return self.s.unused(self.s.record.checks.get(key, ()))

    def _observed(
        self, recorded: list[int], kind: str, check_id: str | None, *, required: bool
    ) -> CheckOutcome:
        s = self.s
        for seq in recorded:
            e = s.record.events[seq]
            if e.get("check") == kind and e.get("check_id") == check_id and seq not in s._used:
                s.take(seq)
                passed = bool(e.get("passed"))
                failure = None
                if not passed and required:
                    failure = e.get("failure_class") or "verification_failed"
                return CheckOutcome(
                    check=kind,
                    check_id=check_id,
                    passed=passed,
                    required=required,
                    evidence=s.record.resolved(e.get("evidence") or {}),
                    detail=str(s.record.resolved(e.get("detail", ""))),
                    failure_class=failure,
                )
        return CheckOutcome(
            check=kind,
            check_id=check_id,
            passed=False,
            required=required,
            evidence={},
            detail="cannot be checked in replay: it looks at files, and the recorded run "
            "made no such observation",
            failure_class="missing_evidence" if required else None,
        )


class ReplayRollbacker:
    """Undoing touches the world, so replay answers with the recorded rollback outcome of
    the same call's effect (`on_failure: rollback`). Once live (a fork or resume), the
    effects are undone for real, pre-images read from this trace's sidecar or the parent's."""

    def __init__(self, session: ReplaySession) -> None:
        self.s = session
        self._live: LiveRollbacker | None = None

    def undo(self, effect: Effect) -> UndoOutcome:
        s = self.s
        if not s.live:
            e = s.take(s.record.rollbacks.get((effect.step, effect.call_id)))
            if e is not None:
                return UndoOutcome.from_event(s.record.resolved(e))
            if not s.can_go_live:
                return UndoOutcome.of(
                    effect,
                    "failed",
                    "not undone in replay: the record holds no rollback of this effect",
                    failure_class="divergence",
                )
            s.go_live()
        if self._live is None:
            assert s.trace is not None
            toolbox = Toolbox(s.m)
            self._live = LiveRollbacker(
                blob_dirs=[blob_dir(s.trace.path), blob_dir(s.record.path)], tools=toolbox.tool
            )
        return self._live.undo(effect)


class RecordPreparer:
    """A call's canonical form as the run recorded it (the ``Preparer`` port in replay).

    Making a call canonical observes the world — a path resolves through the filesystem the
    run saw, a Python tool's types come from its code — so strict replay under the recorded
    manifest answers from the record: the canonical call and its hash, or the recorded
    rejection (unknown tool, invalid arguments, outside the scope) with its reason as the
    model was told it. Policy is then decided anew on that canonical call and compared.
    Anything else — a counterfactual manifest, a record from before canonical calls, a call
    the record does not hold, or once live — is prepared by the toolbox, here and now.
    """

    def __init__(self, session: ReplaySession, toolbox: Toolbox) -> None:
        self.s = session
        self.toolbox = toolbox

    def prepare(self, step: int, request: ToolCallRequest) -> PreparedCall | RejectedCall:
        s = self.s
        recorded = None
        if not s.live and s.mode == "strict" and s.same_manifest and not s.revision.hashed_as_sent:
            recorded = self._recorded(step, request)
        return recorded if recorded is not None else self.toolbox.prepare(step, request)

    def _recorded(self, step: int, request: ToolCallRequest) -> PreparedCall | RejectedCall | None:
        record = self.s.record
        key = (step, request.id)
        at = record.calls.get(key)
        if at is None:
            return None
        proposed = record.resolved(record.events[at])
        decision = proposed.get("decision") or {}
        sent = proposed.get("arguments")
        if proposed.get("tool") != request.name or not _same_arguments(request.arguments, proposed):
            return None
        failure = decision.get("failure_class")
        reason = str(decision.get("reason") or "")
        digest = str(proposed.get("call_hash") or "")
        if failure in ("unknown_tool", "invalid_arguments") and decision.get("rule") != SCOPE_RULE:
            raw = proposed.get("raw_arguments")
            return RejectedCall(request.id, request.name, failure, reason, sent, raw, digest)
        declared = self.toolbox.declared(request.name)
        if declared is None:
            return None
        tool, spec, risk = declared
        raw = sent if isinstance(sent, dict) else {}
        if decision.get("rule") == SCOPE_RULE:
            denial = ScopeViolation(reason, failure_class=failure or "policy_denied")
            return PreparedCall(
                request.id, request.name, spec, tool, None, raw, None, digest, risk, denial
            )
        canonical = proposed.get("canonical")
        arguments = canonical if isinstance(canonical, dict) else raw
        return PreparedCall(
            request.id, request.name, spec, tool, None, raw, Canonical(arguments), digest, risk
        )


def _same_arguments(text: str, proposed: dict[str, Any]) -> bool:
    """Whether the model's arguments now are the ones the record holds for this call."""
    if proposed.get("arguments") is None:
        return proposed.get("raw_arguments") == text
    try:
        parsed = orjson.loads(text) if text.strip() else {}
    except orjson.JSONDecodeError:
        return False
    return canonical(parsed) == canonical(proposed["arguments"])
