"""Replay: the same governed loop, with ports that answer from a recorded trace (DESIGN §3).

Nothing here branches inside the loop. A :class:`ReplaySession` builds replay adapters for
every port — model, tools, approver, operator, clock, verifier and the control channel —
and a trace writer that compares each event the loop writes with the recorded one at the
same position. Modes:

- **strict** (the recorded manifest): every answer comes from the record and the first
  event that differs (timestamps, durations, ids and signatures aside) ends the replay with
  ``divergence`` — the step, the event, what the record held and what the loop did.
- **counterfactual** (a new manifest): model replies come from the record; policy,
  standing approvals, budgets, interrupts and verification are evaluated anew. A call the
  record never ran ends the replay (or runs live with ``live_tools``). Decisions that
  changed are reported by :mod:`runtime.replay_report`.
- **fork** (``live_from``) and **resume**: replay up to a point, then the ports switch to
  live adapters and the run continues for real, in a new trace naming its parent.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from runtime import __version__
from runtime import events as ev
from runtime.approval import DenyApprover, StopOperator
from runtime.approval_rules import ApprovalRules, RulesApprover
from runtime.checks import (
    CallContext,
    CheckOutcome,
    LiveVerifier,
    default_check,
    default_evidence_outcome,
    observes_world,
    verify_call,
    verify_success,
)
from runtime.compaction import LiveSummarizer
from runtime.errors import GovrunError
from runtime.events import SCHEMA_MINOR
from runtime.loop import GovernedLoop, RunEnded, RunResult
from runtime.manifest import Manifest, ModelConfig, manifest_from_snapshot
from runtime.models.scripted import ScriptedModel
from runtime.policy import PolicyEngine
from runtime.ports import (
    ApprovalDecision,
    ApprovalRequest,
    Approver,
    Control,
    Model,
    ModelCallError,
    ModelReply,
    Operator,
    SystemClock,
    ToolCallRequest,
    Tools,
    Usage,
)
from runtime.record import Record
from runtime.replay_report import Change, changes, fold
from runtime.revisions import Revision, record_revision
from runtime.rollback import Effect, LiveRollbacker, UndoOutcome
from runtime.signing import Signer
from runtime.toolbox import LiveTools, PreparedCall, Toolbox
from runtime.tools import ToolResult
from runtime.trace import (
    Durability,
    Observer,
    TraceWriter,
    blob_dir,
    canonical,
    gc_frozen,
    read_stored,
    sha256_hex,
)

Mode = Literal["strict", "counterfactual"]
InFlightChoice = Literal["rerun", "skip"]

IGNORED = frozenset(
    {
        "ts",
        "prev",
        "hash",
        "run_id",
        "duration_ms",
        "decided_at",
        "signature",
        "key_fingerprint",
        "public_key",
        "key_source",
        "via",
        "seal",
        "head",
        # run_started: where, by whom and with what the run was started, not what it did
        "manifest_path",
        "user",
        "host",
        "govrun_version",
        "parent",
    }
)
"""Fields that differ between two runs of the same trajectory: time, identity, signatures.
(``via`` too: a replayed approval is recorded as ``via: replay``.)"""


_EVERY_TYPE = frozenset(ev.EVENT_TYPES.values())
_PER_EVENT = ("ts", "prev", "hash", "run_id", "duration_ms")

_MANIFEST_FIELDS = frozenset({"manifest", "manifest_hash", "policy_hash", "agent"})


@dataclass(frozen=True)
class Divergence:
    """Where a replay first differs from its record, like a Temporal non-determinism error."""

    seq: int
    step: int
    event: str
    """The event type the loop wrote there (or the record held, if the loop wrote none)."""
    recorded: dict[str, Any] | None
    replayed: dict[str, Any] | None
    fields: tuple[str, ...]
    """Payload fields that differ (``type`` when the events are of different kinds)."""
    message: str
    """One paragraph for people: the headline, the values that differ, the hint."""
    headline: str = ""
    hint: str = ""


@dataclass(frozen=True)
class LivePorts:
    """Where a fork or resume goes once the record is left behind. ``model`` is built
    lazily so a replay that never goes live never opens a client."""

    model: Callable[[], Model]
    named: Callable[[str], Model] | None = None
    """The live adapter for a name under `models:` (runs with `routing:`)."""
    approver: Approver = field(default_factory=DenyApprover)
    operator: Operator = field(default_factory=StopOperator)
    tools: Tools = field(default_factory=LiveTools)
    in_flight: Callable[[dict[str, Any]], tuple[InFlightChoice, str]] | None = None
    """Asked about a call that was in flight when the run crashed: (choice, who)."""
    control: Control | None = None
    """Requests from outside (Ctrl-C) once live."""


class ReplaySession:
    """One replay: the record, the manifest it runs under, the cursor, and the adapters."""

    def __init__(
        self,
        record: Record,
        manifest: Manifest,
        *,
        mode: Mode,
        live_from: int | None = None,
        resume: bool = False,
        live: LivePorts | None = None,
        live_tools: bool = False,
        rules: ApprovalRules | None = None,
        same_manifest: bool = True,
        until_step: int | None = None,
    ) -> None:
        self.record = record
        self.until_step = until_step
        """Stop once this step is replayed (the inspector re-runs up to a selected step)."""
        self.stopped_early = False
        self.watching_steps = resume or live_from is not None or until_step is not None
        """Whether a write may have to stop the replay or switch it to live."""
        self.same_manifest = same_manifest
        """False when a strict replay runs under another manifest: run_started's snapshot
        then differs by design, and only the trajectory is compared."""
        self.m = manifest
        self.mode = mode
        self.live_from = live_from
        self.resume = resume
        self.live_ports = live
        self.live_tools = live_tools
        self.rules = rules
        self.live = False
        self.went_live: tuple[int, int] | None = None
        """(seq, step) of the first live event, for forks and resumes."""
        self.step = 0
        self.request: tuple[int, int] = (0, 1)
        self.cursor = 0
        """Highest recorded seq answered or matched so far (counterfactual clock)."""
        self.divergence: Divergence | None = None
        self.ended_for: str | None = None
        """Why a counterfactual replay could not go on (a call the record never ran)."""
        self.live_calls: list[str] = []
        self.ran_live: set[tuple[int, str]] = set()
        """(step, call_id) of calls run for real (``live_tools``): their checks run live."""
        self._models: dict[str | None, Model] = {}
        self._replayed_model_calls: Counter[str | None] = Counter()
        self._used: set[int] = set()
        self.trace: ReplayTrace | None = None
        self.clock = ReplayClock(self)
        self.revision = Revision(record_revision(record.run_started))
        """The record's minor schema revision: what the loop writes is compared in it."""

    # --- answers from the record --------------------------------------------------------

    def take(self, seq: int | None) -> dict[str, Any] | None:
        """The recorded event at ``seq`` (None stays None), marked used; moves the cursor."""
        if seq is None:
            return None
        self._used.add(seq)
        self.cursor = max(self.cursor, seq)
        return self.record.events[seq]

    def unused(self, seqs: Iterable[int]) -> list[int]:
        return [s for s in seqs if s not in self._used]

    def not_in_record(self, what: str) -> RunEnded:
        """The loop asked something the record does not hold: the replay cannot go on."""
        self.ended_for = what
        return RunEnded("failed", "divergence", f"replay cannot continue: {what}")

    # --- going live ---------------------------------------------------------------------

    @property
    def can_go_live(self) -> bool:
        return self.live_ports is not None and (self.resume or self.live_from is not None)

    def go_live(self, step: int | None = None) -> None:
        """Switch every port to its live adapter, at the event about to be written."""
        if self.live:
            return
        assert self.trace is not None and self.live_ports is not None
        self.clock.go_live()
        self.live = True
        self.trace.flush()  # the record so far is on disk before anything real happens
        self.went_live = (self.trace.seq, self.step if step is None else step)

    def live_model(self, config: str | None = None) -> Model:
        """The live adapter for the default model or a name under `models:`, built once."""
        assert self.live_ports is not None
        model = self._models.get(config)
        if model is None:
            ports = self.live_ports
            model = ports.model() if config is None or ports.named is None else ports.named(config)
            if isinstance(model, ScriptedModel):
                # A script is a sequence of answers: the fork continues it where the
                # replayed calls left off.
                model.skip(self._replayed_model_calls[config])
            self._models[config] = model
        return model

    # --- what the writer tells the session ----------------------------------------------

    def before_write(self, cls: type[ev.Event], step: int, seq: int) -> None:
        if self.live:
            return
        if cls is ev.StepStarted and self.until_step is not None and step > self.until_step:
            self.stopped_early = True  # what the loop writes while stopping is not compared
            raise RunEnded("stopped", None, f"replayed up to step {self.until_step}, as asked")
        forking = cls is ev.StepStarted and self.live_from is not None and step >= self.live_from
        if forking or (self.resume and seq >= len(self.record.events)):
            self.go_live(step)

    def before_tool_started(self, step: int, seq: int, payload: dict[str, Any]) -> None:
        """``tool_started`` says a side effect begins: never write it for a call the replay
        will not run. Strict: the record must hold this very call here. Counterfactual: the
        record must hold its outcome (or it may run live)."""
        key = (step, payload["call_id"])
        if self.mode == "strict":
            recorded = self.record.events[seq] if seq < len(self.record.events) else None
            replayed = self.revision.shape(
                {**payload, "type": "tool_started", "v": ev.SCHEMA_MAJOR, "step": step, "seq": seq}
            )
            fields = differing(recorded, replayed)
            if fields and self.divergence is None:
                self.divergence = describe_divergence(self.record, seq, recorded, replayed, fields)
                raise RunEnded("failed", "divergence", self.divergence.message)
            return
        finished = self.record.finished.get(key)
        started = self.record.started.get(key)
        same = started is not None and self.record.events[started].get(
            "call_hash"
        ) == self.revision.recorded_hash(step, payload["call_id"], payload.get("call_hash", ""))
        if (same and finished is not None) or self.can_go_live or self.live_tools:
            return
        raise self.not_in_record(
            f"step {step} {payload.get('tool')} would run now, but the recorded run "
            f"{_fate(self.record, key)}, so the record has no outcome for it (run it for real "
            "with --live-tools)"
        )

    def after_write(self, cls: type[ev.Event], stored: dict[str, Any]) -> None:
        self.step = stored["step"]
        if cls is ev.ModelRequest:
            self.request = (stored["step"], stored.get("attempt", 1))
        if self.live or self.mode != "strict" or self.divergence is not None or self.stopped_early:
            return
        seq = stored["seq"]
        self.cursor = max(self.cursor, seq)
        recorded = self.record.events[seq] if seq < len(self.record.events) else None
        fields = differing(recorded, self.revision.shape(stored))
        if fields and cls is ev.RunStarted and not self.same_manifest:
            fields = tuple(f for f in fields if f not in _MANIFEST_FIELDS)
        if fields:
            self.divergence = describe_divergence(
                self.record, seq, recorded, stored, fields, hint=self._why(cls)
            )
            if cls not in (ev.StepFinished, ev.RunFinished):  # the run is ending anyway
                raise RunEnded("failed", "divergence", self.divergence.message)

    def _why(self, cls: type[ev.Event]) -> str:
        """What explains a divergence at an event of this kind, beyond the values."""
        return self.revision.changed_decision_hint() if cls is ev.PolicyDecision else ""

    def pending_divergence(self) -> None:
        """A divergence found on a step's closing event ends the run at the next event."""
        if self.divergence is not None and not self.live:
            raise RunEnded("failed", "divergence", self.divergence.message)

    # --- the adapters -------------------------------------------------------------------

    def ports(self) -> dict[str, Any]:
        return {
            "model": ReplayModel(self, self.m.routing.default if self.m.routing else None),
            "models": {name: ReplayModel(self, name) for name in self.m.models},
            "summarizer": ReplaySummarizer(self),
            "tools": ReplayTools(self),
            "approver": ReplayApprover(self),
            "operator": ReplayOperator(self),
            "clock": self.clock,
            "control": ReplayControl(self),
            "verifier": ReplayVerifier(self),
            "rollbacker": ReplayRollbacker(self),
        }


# --- the trace writer that compares ----------------------------------------------------------


class ReplayTrace(TraceWriter):
    """Writes the replayed run's trace and, in strict mode, compares each event with the
    record at the same position as it goes."""

    def __init__(self, path: str | Path, *, session: ReplaySession, **kwargs: Any) -> None:
        super().__init__(path, clock=session.clock, **kwargs)
        self.session = session
        session.trace = self

    def flush(self) -> None:
        """Replayed events are held: nothing outside happens between them, so there is no
        side effect to write ahead of (they go out in large batches, and at ``close``).
        Once live, the loop's flushes before each side effect take effect again."""
        if self.session.live:
            super().flush()

    @property
    def hold(self) -> frozenset[type[ev.Event]]:
        return self._hold if self.session.live else _EVERY_TYPE

    @hold.setter
    def hold(self, value: frozenset[type[ev.Event]]) -> None:
        self._hold = value

    def write(self, cls: type[ev.Event], step: int, payload: dict[str, Any]) -> str:
        s = self.session
        if not s.live:
            if (
                s.divergence is not None
                and cls is not ev.StepFinished
                and cls is not ev.RunFinished
            ):
                s.pending_divergence()
            if s.watching_steps:
                s.before_write(cls, step, self.seq)
            if cls is ev.ToolStarted and not s.live:
                s.before_tool_started(step, self.seq, payload)
        digest = super().write(cls, step, payload)
        assert self.last is not None
        s.after_write(cls, self.last)
        return digest


def differing(recorded: dict[str, Any] | None, replayed: dict[str, Any]) -> tuple[str, ...]:
    """Fields whose values differ, ignoring :data:`IGNORED`; a field that is absent equals
    null (older traces lack fields newer versions add)."""
    if recorded is None:
        return ("type",)
    if recorded["type"] != replayed["type"]:
        return ("type",)
    probe = recorded.copy()  # the common case, equal but for time and chain: one C compare
    for key in _PER_EVENT:
        if key in replayed:
            probe[key] = replayed[key]
        else:  # an event about to be written has no envelope yet
            probe.pop(key, None)
    if probe == replayed:
        return ()
    out = []
    for key in recorded.keys() | replayed.keys():
        if key in IGNORED or recorded.get(key) == replayed.get(key):
            continue
        if key == "totals":
            a, b = recorded.get(key) or {}, replayed.get(key) or {}
            if all(a.get(k) == b.get(k) for k in a.keys() | b.keys() if k != "duration_ms"):
                continue
        out.append(key)
    return tuple(sorted(out))


def describe_divergence(
    record: Record,
    seq: int,
    recorded: dict[str, Any] | None,
    replayed: dict[str, Any],
    fields: tuple[str, ...],
    *,
    hint: str = "",
) -> Divergence:
    step = replayed["step"]
    kind = replayed["type"]
    detail = ""
    if recorded is None:
        headline = (
            f"step {step}: the loop wrote {kind} (event {seq}), but the record ends at event "
            f"{len(record.events) - 1}"
            + (" (its last line is torn: the run crashed)" if record.torn else "")
        )
    elif "type" in fields:
        headline = (
            f"step {step}, event {seq}: the record holds {_what(recorded)}, but the loop wrote "
            f"{_what(replayed)}"
        )
    else:
        headline = f"step {step}, event {seq} ({_what(recorded)}) differs in {', '.join(fields)}"
        shown = [contrast(f, recorded.get(f), replayed.get(f)) for f in fields[:4]]
        detail = " — " + "; ".join(
            f"{label}: recorded {a!r}, replayed {b!r}" for label, a, b in shown
        )
    if kind == "model_request" and "prompt_hash" in fields:
        hint = (
            "The prompt is built from the system prompt, the task, the tool definitions and "
            "the history: one of them changed."
        )
    if any(b"[redacted]" in canonical(e) for e in record.events[: seq + 1]):
        hint += (
            " The record has secret values redacted, and a call whose arguments held one "
            "cannot be rebuilt exactly."
        )
    hint = hint.strip()
    message = headline + detail + (f" ({hint})" if hint else "")
    return Divergence(seq, step, kind, recorded, replayed, fields, message, headline, hint)


def _what(e: dict[str, Any]) -> str:
    kind = e["type"]
    name = e.get("tool") or (e.get("rule") if kind == "interrupt" else None)
    return f"{kind} {name}" if name else kind


def contrast(field: str, a: Any, b: Any, limit: int = 80) -> tuple[str, str, str]:
    """How to show two differing values: the first differing item of two lists (labelled
    ``field[i]``), and for text the part around the first differing character, so that two
    long values with a common start do not look the same."""
    if isinstance(a, list) and isinstance(b, list):
        i = next((n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
        if i is None:
            i = min(len(a), len(b))
        x = a[i] if i < len(a) else None
        y = b[i] if i < len(b) else None
        label, sx, sy = contrast(f"{field}[{i}]", x, y, limit)
        return label, sx, sy
    if a is None or b is None:
        return field, _clip(a, 0, limit), _clip(b, 0, limit)
    ta = a if isinstance(a, str) else canonical(a).decode()
    tb = b if isinstance(b, str) else canonical(b).decode()
    same = next((n for n, (x, y) in enumerate(zip(ta, tb, strict=False)) if x != y), None)
    start = max(0, (min(len(ta), len(tb)) if same is None else same) - limit // 4)
    return field, _clip(ta, start, limit), _clip(tb, start, limit)


def _clip(value: Any, start: int, limit: int) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else canonical(value).decode()
    shown = text[start : start + limit]
    return ("…" if start else "") + shown + ("…" if start + limit < len(text) else "")


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
            waiting = s.unused(s.record.compactions.get(s.step, ()))
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
        usage=Usage(**(e.get("usage") or {})),
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
                    f"{_fate(s.record, key)}, so the record has no outcome for it (run it for "
                    "real with --live-tools)"
                )
        assert s.live_ports is not None
        if s.resume and same and key not in s.record.finished:
            return self._in_flight(call, started or {})
        return s.live_ports.tools.execute(call)

    def _in_flight(self, call: PreparedCall, started: dict[str, Any]) -> ToolResult:
        """A call that started but never finished before the crash: its effect may or may
        not have happened. The operator decides, and the decision is recorded."""
        s = self.s
        assert s.live_ports is not None and s.trace is not None
        ask = s.live_ports.in_flight
        choice, who = ask(started) if ask is not None else ("skip", "govrun (no operator)")
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


def _fate(record: Record, key: tuple[int, str]) -> str:
    """What happened to a call in the recorded run, in words."""
    seq = record.policy.get(key)
    if seq is None:
        return "never proposed it"
    policy = record.events[seq]
    if policy["effect"] == "deny":
        return f"denied it ({policy.get('rule') or policy.get('failure_class') or 'default'})"
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
            return ApprovalDecision(
                decision=e["decision"],
                approver=str(e.get("approver", "")),
                via="replay",
                reason=str(s.record.resolved(e.get("reason", ""))),
            )
        if s.can_go_live:
            s.go_live()
            assert s.live_ports is not None
            return s.live_ports.approver.decide(request)
        if s.mode == "strict":
            raise s.not_in_record(f"the record holds no approval decision for {request.tool}")
        return ApprovalDecision(
            decision="reject",
            approver="replay (no recorded decision)",
            via="replay",
            reason="nobody decided this call in the recorded run; a counterfactual replay "
            "rejects it (pass --approvals RULES.yaml to decide by standing rules)",
        )


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
                outcomes += verify_call([check], ctx, base_dir=m.base_dir)
        return outcomes

    def check_success(self, final_answer: str | None) -> list[CheckOutcome]:
        s = self.s
        if s.live:
            return self._live.check_success(final_answer)
        recorded = self._recorded((s.step, None))
        base = s.m.base_dir
        outcomes: list[CheckOutcome] = []
        for check in s.m.success:
            if observes_world(check):
                outcomes.append(
                    self._observed(recorded, check.check, check.id, required=check.required)
                )
            else:
                outcomes += verify_success([check], final_answer=final_answer, base_dir=base)
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


# --- entry points ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayOutcome:
    """A finished replay: the new run, how it relates to its record, and the session."""

    result: RunResult
    record: Record
    session: ReplaySession
    mode: Mode

    @property
    def divergence(self) -> Divergence | None:
        return self.session.divergence

    def changes(self) -> list[Change]:
        """Decisions that differ between the record and this replay (counterfactual)."""
        replayed, _ = read_stored(self.result.trace_path)
        return changes(fold(self.record.events), fold(replayed))

    @property
    def reproduced(self) -> bool:
        """Strict replay matched the record for every event it wrote (up to ``until_step``
        when one was given; to the end otherwise, see :attr:`identical`)."""
        s = self.session
        if s.divergence is not None or self.mode != "strict":
            return False
        if s.until_step is not None:
            return s.stopped_early or self.identical
        return self.identical

    @property
    def identical(self) -> bool:
        """Strict replay reproduced the record event for event, to its end."""
        s = self.session
        return (
            self.mode == "strict"
            and s.divergence is None
            and not s.live
            and self.result.events == len(self.record.events)
            and self.record.run_finished is not None
        )


def recorded_manifest(record: Record, *, base_dir: Path | None = None) -> Manifest:
    """The manifest the run recorded, rebuilt; relative paths resolve against the original
    manifest's folder when it still exists, else ``base_dir`` or the trace's folder."""
    started = record.run_started
    snapshot = started.get("manifest")
    if not isinstance(snapshot, dict):
        raise GovrunError(f"{record.path}: run_started holds no manifest snapshot to replay.")
    return manifest_from_snapshot(snapshot, base_dir=base_dir or _original_dir(record))


def _original_dir(record: Record) -> Path:
    path = record.run_started.get("manifest_path")
    if isinstance(path, str) and path:
        folder = Path(path).expanduser().resolve().parent
        if folder.is_dir():
            return folder
    return record.path.resolve().parent


def replay(
    record: Record,
    output: str | Path,
    *,
    manifest: Manifest | None = None,
    strict: bool | None = None,
    live_from: int | None = None,
    resume: bool = False,
    live: LivePorts | None = None,
    live_tools: bool = False,
    rules: ApprovalRules | None = None,
    until_step: int | None = None,
    signer: Signer | None = None,
    observers: Iterable[Observer] = (),
    durability: Durability = "flush",
    secrets: Iterable[str] = (),
    run_id: str | None = None,
) -> ReplayOutcome:
    """Replay ``record`` into a new trace at ``output`` (see the module docstring).

    Without ``manifest`` the replay is strict, under the manifest the run recorded; with
    one, counterfactual — or strict with ``strict=True``: does the trajectory still come
    out the same under the changed manifest? ``live_from`` forks at that step, ``resume``
    continues where the record ends; both need ``live`` ports.
    """
    mode: Mode = "strict" if manifest is None or strict else "counterfactual"
    m = manifest or recorded_manifest(record)
    if resume:
        record = record.truncated(record.resume_point())
    session = ReplaySession(
        record,
        m,
        mode=mode,
        live_from=live_from,
        resume=resume,
        live=live,
        live_tools=live_tools,
        rules=rules,
        same_manifest=manifest is None,
        until_step=until_step,
    )
    ports = session.ports()
    started = record.run_started
    kind = "resume" if resume else "fork" if live_from is not None else f"replay-{mode}"
    from runtime.run import new_run_id

    trace = ReplayTrace(
        output,
        session=session,
        run_id=run_id or new_run_id(m.name),
        durability=durability,
        secrets=secrets,
        observers=observers,
    )
    snapshot = m.canonical_dict()
    task = str(record.resolved(started.get("input", "")))
    toolbox: Toolbox | None = None
    try:
        toolbox = Toolbox(m)
        loop = GovernedLoop(
            manifest=m,
            task=task,
            trace=trace,
            toolbox=toolbox,
            signer=signer or Signer.ephemeral(),
            run_started={
                "agent": m.name,
                "manifest": snapshot,
                "manifest_hash": sha256_hex(canonical(snapshot)),
                "manifest_path": started.get("manifest_path") if manifest is None else None,
                "input": task,
                "govrun_version": __version__,
                "schema_minor": SCHEMA_MINOR,
                "policy_hash": PolicyEngine(m).policy_hash,
                "user": started.get("user"),
                "host": started.get("host"),
                "parent": {
                    "kind": kind,
                    "trace": str(record.path),
                    "run_id": record.run_id,
                    "step": (live_from - 1) if live_from is not None else None,
                    "head": (record.run_finished or {}).get("head"),
                },
            },
            **ports,
        )
        with gc_frozen():
            result = loop.run()
    finally:
        trace.close()
        if toolbox is not None:
            toolbox.close()  # live tools (a fork, --live-tools) may have started workers
    return ReplayOutcome(result, record, session, mode)


def assert_replays(
    path: str | Path,
    *,
    manifest: Manifest | str | Path | None = None,
    secrets: Iterable[str] = (),
    output: str | Path | None = None,
) -> ReplayOutcome:
    """Replay a trace strictly and fail (``AssertionError``) unless it reproduces event for
    event: for golden traces kept in a repository and replayed in CI, so a change in prompt
    construction, policy evaluation or verification shows up as a named divergence.

    ``manifest`` (a path or a loaded manifest) replays under the agent's current manifest
    rather than the one recorded: the golden-trace check that a manifest change kept the
    trajectory. ``secrets`` are redacted from the replayed trace as the original run
    redacted them. The replayed trace goes to ``output``, or to a temporary file that is
    removed.
    """
    import tempfile

    from runtime.manifest import load_manifest

    if manifest is not None and not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    record = Record.load(path)
    with tempfile.TemporaryDirectory(prefix="govrun-replay-") as tmp:
        target = Path(output) if output is not None else Path(tmp) / "replay.jsonl"
        outcome = replay(record, target, manifest=manifest, strict=True, secrets=secrets)
    if not outcome.identical:
        why = (
            outcome.divergence.message
            if outcome.divergence is not None
            else f"the replay ended {outcome.result.status}: {outcome.result.reason}"
        )
        raise AssertionError(f"{path} does not replay: {why}")
    return outcome
