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
  changed are reported by :mod:`govrun.runtime.replayer.report`.
- **fork** (``live_from``) and **resume**: replay up to a point, then the ports switch to
  live adapters and the run continues for real, in a new trace naming its parent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from govrun.runtime import __version__
from govrun.runtime.errors import GovrunError
from govrun.runtime.govern.approval_rules import ApprovalRules
from govrun.runtime.govern.approvers import DenyApprover, StopOperator
from govrun.runtime.govern.decide import Preparer
from govrun.runtime.govern.policy import PolicyEngine
from govrun.runtime.govern.toolbox import LiveTools, Toolbox
from govrun.runtime.loop import GovernedLoop, RunEnded, RunResult
from govrun.runtime.manifest.schema import Manifest, manifest_from_snapshot
from govrun.runtime.manifest.workspace import workspace_folder
from govrun.runtime.models.scripted import ScriptedModel
from govrun.runtime.ports import (
    Approver,
    Control,
    Model,
    Operator,
    Tools,
)
from govrun.runtime.replayer.adapters import (
    RecordPreparer,
    ReplayApprover,
    ReplayClock,
    ReplayControl,
    ReplayModel,
    ReplayOperator,
    ReplayRollbacker,
    ReplaySummarizer,
    ReplayTools,
    ReplayVerifier,
    fate,
)
from govrun.runtime.replayer.report import Change, changes, fold
from govrun.runtime.replayer.revisions import Revision, record_revision
from govrun.runtime.tools.mcp.pins import lock_path
from govrun.runtime.tools.mcp.sources import (
    McpSources,
    open_sources,
    recorded_sources,
    servers_used,
)
from govrun.runtime.trace import events as ev
from govrun.runtime.trace.canonical import canonical, sha256_hex
from govrun.runtime.trace.events import REPLIES_JUDGED, SCHEMA_MINOR
from govrun.runtime.trace.reader import gc_frozen, read_stored
from govrun.runtime.trace.record import Record
from govrun.runtime.trace.signing import Signer
from govrun.runtime.trace.writer import Durability, Observer, TraceWriter

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
        # approval_decided: the hash of the policy in force; a changed policy shows at the
        # first decision that differs, not at the first approval after the change
        "policy_hash",
        # run_started: where, by whom and with what the run was started, not what it did
        "manifest_path",
        "user",
        "host",
        "govrun_version",
        "schema_minor",
        "parent",
        "workspace",
    }
)
"""Fields that differ between two runs of the same trajectory: time, identity, signatures.
(``via`` too: a replayed approval is recorded as ``via: replay``.)"""


_EVERY_TYPE = frozenset(ev.EVENT_TYPES.values())
_PER_EVENT = ("ts", "prev", "hash", "run_id", "duration_ms")

_MANIFEST_FIELDS = frozenset({"manifest", "manifest_hash", "policy_hash", "agent", "tools"})


@dataclass(frozen=True)
class Divergence:
    """Where a replay first differs from its record, like a Temporal non-determinism error."""

    seq: int
    """Where, as the recorded file numbers its events (an older schema's file numbers them
    its own way)."""
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
        self.mcp_live = False
        self.same_run = False
        """Whether the new trace continues the recorded run under its own run id (a run
        resumed segment by segment): recorded approvals then keep their signatures."""
        """Whether the run's MCP servers were started and listed again (live tools)."""
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
        self.revision = Revision(record_revision(record.run_started, record.major))
        """The record's schema revision: what the loop writes is compared in it."""
        self._last_step = 0
        """The highest step the loop has written an event of (a higher one begins a step)."""
        self.called: dict[tuple[int, str], str] = {}
        """(step, call_id) -> tool, of each call the loop has decided (to name it later)."""
        self.preparer: Preparer | None = None
        """Where the loop gets each call's canonical form (set up with the toolbox)."""

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
        begins = step > self._last_step  # a step begins with its first event (schema 2)
        self._last_step = max(self._last_step, step)
        if begins and self.until_step is not None and step > self.until_step:
            self.stopped_early = True  # what the loop writes while stopping is not compared
            raise RunEnded("stopped", None, f"replayed up to step {self.until_step}, as asked")
        forking = begins and self.live_from is not None and step >= self.live_from
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
        tool = self.called.get(key, payload["call_id"])
        raise self.not_in_record(
            f"step {step} {tool} would run now, but the recorded run {fate(self.record, key)}, "
            "so the record has no outcome for it (run it for real with --live-tools)"
        )

    def after_write(self, cls: type[ev.Event], stored: dict[str, Any]) -> None:
        self.step = stored["step"]
        if cls is ev.ToolCall:
            self.called[(stored["step"], stored["call_id"])] = stored["tool"]
        if cls is ev.ModelRequest:
            self.request = (stored["step"], stored.get("attempt", 1))
        if cls is ev.McpServer and self.mcp_live:
            self._compare_listing(stored)
            return
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

    def _compare_listing(self, stored: dict[str, Any]) -> None:
        """A server listed again for live tools: what it offers now must be what the
        recorded run was shown — every tool both list, by definition hash."""
        if self.divergence is not None:
            return
        name = stored.get("server")
        seq = next(
            (
                i
                for i, e in enumerate(self.record.events)
                if e.get("type") == "mcp_server" and e.get("server") == name
            ),
            None,
        )
        if seq is None:
            return  # the record never listed it: a what-if manifest's new server
        recorded = self.record.resolved(self.record.events[seq])
        before: dict[str, str] = recorded.get("offered") or {}
        now: dict[str, str] = stored.get("offered") or {}
        differ = [t for t in sorted(before) if now.get(t) != before[t]]
        if not differ:
            return
        gone = [t for t in differ if t not in now]
        what = "; ".join(
            f"{t}: no longer offered" if t in gone else f"{t}: its definition changed"
            for t in differ
        )
        self.divergence = describe_divergence(
            self.record,
            seq,
            recorded,
            stored,
            ("offered",),
            hint=f"MCP server {name!r} lists tools differently than when the run was "
            f"recorded ({what}).",
        )
        raise RunEnded("failed", "divergence", self.divergence.message)

    def _why(self, cls: type[ev.Event]) -> str:
        """What explains a divergence at an event of this kind, beyond the values."""
        return self.revision.changed_decision_hint() if cls is ev.ToolCall else ""

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
        a, b = recorded.get(key), replayed.get(key)
        if key in IGNORED or a == b:
            continue
        if key == "totals":
            a, b = a or {}, b or {}
            if all(a.get(k) == b.get(k) for k in a.keys() | b.keys() if k != "duration_ms"):
                continue
        if key in _NAMED_PARTS and isinstance(a, dict) and isinstance(b, dict):
            out.extend(f"{key}.{k}" for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            continue
        out.append(key)
    return tuple(sorted(out))


_NAMED_PARTS = frozenset({"decision"})
"""Object fields whose differing parts are named (``decision.effect``), not the whole."""


def field_of(event: dict[str, Any], name: str) -> Any:
    """A field by the name :func:`differing` gives it (``decision.rule`` reaches in)."""
    head, _, part = name.partition(".")
    value = event.get(head)
    return value.get(part) if part and isinstance(value, dict) else value


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
    at, recorded_kind = record.in_file(seq, fields)  # the file's own seq (an older schema)
    if recorded is None:
        headline = (
            f"step {step}: the loop wrote {kind} (event {seq}), but the record ends at event "
            f"{at}" + (" (its last line is torn: the run crashed)" if record.torn else "")
        )
        at = seq if record.origins is None else at + 1
    elif "type" in fields:
        headline = (
            f"step {step}, event {at}: the record holds {_what(recorded, recorded_kind)}, but "
            f"the loop wrote {_what(replayed)}"
        )
    else:
        what = _what(recorded, recorded_kind)
        headline = f"step {step}, event {at} ({what}) differs in {', '.join(fields)}"
        shown = [contrast(f, field_of(recorded, f), field_of(replayed, f)) for f in fields[:4]]
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
    return Divergence(at, step, kind, recorded, replayed, fields, message, headline, hint)


def _what(e: dict[str, Any], kind: str | None = None) -> str:
    kind = kind or e["type"]
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
    manifest's folder when it still exists, else ``base_dir`` or the trace's folder, and
    the workspace template means the run's copy (see :func:`in_recorded_workspace`)."""
    started = record.run_started
    snapshot = started.get("manifest")
    if not isinstance(snapshot, dict):
        raise GovrunError(f"{record.path}: run_started holds no manifest snapshot to replay.")
    manifest = manifest_from_snapshot(snapshot, base_dir=base_dir or _original_dir(record))
    return in_recorded_workspace(manifest, record)


def in_recorded_workspace(manifest: Manifest, record: Record) -> Manifest:
    """``manifest`` working in the recorded run's workspace copy, never a fresh one: what
    a fork, a resume, a live call or a rollback acts on is what that run left. (A strict
    replay touches no file, so a trace replays without it.)"""
    folder = record.run_started.get("workspace")
    where = Path(folder) if isinstance(folder, str) and folder else workspace_folder(record.path)
    return manifest.with_workspace(where)


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
    fence: Callable[[], None] | None = None,
) -> ReplayOutcome:
    """Replay ``record`` into a new trace at ``output`` (see the module docstring).

    Without ``manifest`` the replay is strict, under the manifest the run recorded; with
    one, counterfactual — or strict with ``strict=True``: does the trajectory still come
    out the same under the changed manifest? ``live_from`` forks at that step, ``resume``
    continues where the record ends; both need ``live`` ports.
    """
    mode: Mode = "strict" if manifest is None or strict else "counterfactual"
    m = in_recorded_workspace(manifest, record) if manifest else recorded_manifest(record)
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
    from govrun.runtime.run import new_run_id

    trace = ReplayTrace(
        output,
        session=session,
        run_id=run_id or new_run_id(m.name),
        durability=durability,
        secrets=secrets,
        observers=observers,
        fence=fence,
    )
    session.same_run = record.run_id == trace.run_id  # a continuation keeps its signatures
    same = manifest is None
    # Under the recorded manifest, as recorded: its snapshot, hashes and the tools the model
    # was shown, so defaults a newer govrun adds are not divergences and the tools' code is
    # not needed.
    snapshot = record.resolved(started.get("manifest")) if same else m.canonical_dict()
    recorded_policy = started.get("policy_hash") if same else None
    if not isinstance(recorded_policy, str):
        recorded_policy = None
    manifest_hash = started.get("manifest_hash") if same else sha256_hex(canonical(snapshot))
    tools = record.resolved(started.get("tools")) if same else None
    recorded_tools = tools if isinstance(tools, list) else None
    task = str(record.resolved(started.get("input", "")))
    toolbox: Toolbox | None = None
    mcp = _mcp_sources(m, record, live=live_from is not None or resume or live_tools)
    session.mcp_live = bool(mcp.connections)
    m = mcp.manifest  # `SERVER/*` entries expanded as the run (or a live listing) found them
    try:
        # The loop as the record's revision ran it (tool schemas, replies judged or not).
        revision = session.revision.revision
        toolbox = Toolbox(m, recorded=recorded_tools, tools=mcp.tools, revision=revision)
        toolbox.closing(mcp)
        policy = PolicyEngine(
            m, policy_hash=recorded_policy if isinstance(recorded_policy, str) else None
        )
        session.preparer = RecordPreparer(session, toolbox)
        loop = GovernedLoop(
            manifest=m,
            task=task,
            trace=trace,
            toolbox=toolbox,
            preparer=session.preparer,
            policy=policy,
            mcp_servers=mcp.events,
            signer=signer or Signer.ephemeral(),
            run_started={
                "agent": m.name,
                "manifest": snapshot,
                "manifest_hash": manifest_hash,
                "manifest_path": started.get("manifest_path") if manifest is None else None,
                "input": task,
                "govrun_version": __version__,
                "schema_minor": SCHEMA_MINOR if revision >= REPLIES_JUDGED else 0,
                "tools": toolbox.definitions,
                "policy_hash": policy.policy_hash,
                "user": started.get("user"),
                "host": started.get("host"),
                **({"workspace": str(m.workspace_copy.folder)} if m.workspace_copy else {}),
                "parent": {
                    "kind": kind,
                    "trace": str(record.path),
                    "run_id": record.run_id,
                    "step": (live_from - 1) if live_from is not None else None,
                    "head": (record.run_finished or {}).get("head"),
                },
            },
            revision=revision,
            **ports,
        )
        with gc_frozen():
            result = loop.run()
    finally:
        trace.close()
        if toolbox is not None:
            toolbox.close()  # live tools (a fork, --live-tools) may have started workers
        else:
            mcp.close()
    return ReplayOutcome(result, record, session, mode)


def _mcp_sources(m: Manifest, record: Record, *, live: bool) -> McpSources:
    """The run's MCP servers as the record found them — no server starts — or, when tools
    may run for real (a fork, a resume, --live-tools), started and listed again: the loop
    then records what they list now, and a definition that differs from the record's is a
    divergence (see :meth:`ReplaySession.after_write`)."""
    if live and servers_used(m):
        return open_sources(m, lock_file=_lock_beside(m))
    recorded = [
        {k: v for k, v in record.resolved(e).items() if k not in ev.ENVELOPE_FIELDS}
        for e in record.events
        if e.get("type") == "mcp_server"
    ]
    return recorded_sources(m, recorded)


def _lock_beside(m: Manifest) -> Path | None:
    source = m.source_file
    return lock_path(source) if source is not None else None


def replay_many(
    traces: Iterable[str | Path], output_dir: str | Path, **options: Any
) -> dict[str, ReplayOutcome]:
    """Replay each trace (strictly, unless ``options`` say otherwise, as for :func:`replay`)
    into ``output_dir/<name>.replay.jsonl``; the outcomes keyed by the recorded run id."""
    folder = Path(output_dir)
    outcomes: dict[str, ReplayOutcome] = {}
    for path in traces:
        record = Record.load(path)
        target = folder / f"{Path(path).stem}.replay.jsonl"
        outcomes[record.run_id] = replay(record, target, **options)
    return outcomes


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

    from govrun.runtime.manifest.schema import load_manifest

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
