"""A recorded run, indexed for replay: where each port's answer is in the trace. A record
written with an older schema is read as the current one (what happened, not its shapes).

Events stay the dicts the trace stores (blob references left in), read without building a
pydantic object per event: replay compares stored forms, and reading a 10,000-step trace
must cost a fraction of replaying it. Ports look answers up by what the loop knows when it
asks — the step and the model's call id — so a counterfactual replay whose trajectory has
shifted still finds them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govrun.runtime.errors import TraceError
from govrun.runtime.trace.canonical import blob_dir
from govrun.runtime.trace.events import SCHEMA_MAJOR
from govrun.runtime.trace.reader import TornTail, gc_paused, read_stored, resolve_blobs
from govrun.runtime.trace.upgrade import Origin, as_schema_2, major_of

Key = tuple[int, str]
"""(step, call_id): how a call's events are found."""


@dataclass
class Record:
    """One run's events and indexes from each port question to the recorded answer."""

    path: Path
    events: list[dict[str, Any]]
    torn: TornTail | None
    model: dict[tuple[int, int], int] = field(default_factory=dict)
    """(step, attempt) -> seq of its model_response."""
    calls: dict[Key, int] = field(default_factory=dict)
    """(step, call_id) -> seq of its ``tool_call`` (the call as sent and as decided)."""
    approvals: dict[Key, int] = field(default_factory=dict)
    started: dict[Key, int] = field(default_factory=dict)
    finished: dict[Key, int] = field(default_factory=dict)
    checks: dict[tuple[int, str | None], list[int]] = field(
        default_factory=lambda: defaultdict(list)
    )
    """(step, call_id or None for success checks) -> seqs of its verification events."""
    answers: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    """step -> seqs of the operator's answers to pauses."""
    requests: list[int] = field(default_factory=list)
    """seqs of operator requests from outside the loop (Ctrl-C)."""
    rollbacks: dict[tuple[int | None, str], int] = field(default_factory=dict)
    """(call_step, call_id) -> seq of the rollback event that undid that call's effect."""
    compactions: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    """step -> seqs of its compaction events (a summary replay reuses)."""
    _blobs: bool | None = None
    major: int = SCHEMA_MAJOR
    """The schema major the file was written with; the events are read as the current one
    (:mod:`govrun.runtime.trace.upgrade`)."""
    origins: list[Origin] | None = None
    """For an older schema's file: where each event came from in it (None: it is itself)."""

    @classmethod
    def load(cls, path: str | Path) -> Record:
        """Read and index a trace; it must start with ``run_started``."""
        with gc_paused():  # indexing makes a key per call: the collector would walk every event
            events, torn = read_stored(path)
            if events[0]["type"] != "run_started":
                first = events[0]["type"]
                raise TraceError(f"{path}: the first event is {first}, not run_started.")
            major = major_of(events)
            origins = None
            if major < SCHEMA_MAJOR:
                events, origins = as_schema_2(events)
            record = cls(Path(path), events, torn, major=major, origins=origins)
            record._index()
        return record

    def _index(self) -> None:
        # One dict lookup per event: most events are none of the kinds indexed by call.
        by_call = {
            "tool_call": self.calls,
            "approval_decided": self.approvals,
            "tool_started": self.started,
            "tool_finished": self.finished,
        }
        paused = False
        for seq, e in enumerate(self.events):
            kind = e["type"]
            calls = by_call.get(kind)
            if calls is not None:
                calls[(e["step"], e["call_id"])] = seq
            elif kind == "model_response":
                self.model[(e["step"], e.get("attempt", 1))] = seq
            elif kind == "verification":
                self.checks[(e["step"], e.get("call_id"))].append(seq)
            elif kind == "rollback":
                self.rollbacks[(e.get("call_step"), str(e.get("call_id")))] = seq
            elif kind == "compaction":
                self.compactions[e["step"]].append(seq)
            elif kind == "interrupt":
                if e.get("kind") == "operator":
                    if paused:
                        self.answers[e["step"]].append(seq)
                    elif e.get("rule") == "operator_request":
                        self.requests.append(seq)
                paused = e.get("action") == "pause"
                continue
            paused = False

    # --- views -------------------------------------------------------------------------

    @property
    def run_started(self) -> dict[str, Any]:
        return self.events[0]

    @property
    def run_finished(self) -> dict[str, Any] | None:
        last = self.events[-1]
        return last if last["type"] == "run_finished" else None

    @property
    def run_id(self) -> str:
        return str(self.run_started.get("run_id", ""))

    def resolved(self, value: Any) -> Any:
        """A stored value with sidecar blobs inlined (what the loop originally saw)."""
        if self._blobs is None:
            self._blobs = blob_dir(self.path).is_dir()
        return resolve_blobs(value, self.path) if self._blobs else value

    def steps(self) -> int:
        """The highest step number reached."""
        return max((e["step"] for e in self.events), default=0)

    def resume_point(self) -> int:
        """How many events a resume replays. A crashed run (no ``run_finished``) resumes
        exactly where the record ends, in-flight calls included; a stopped or failed run
        resumes after its last step that ended normally, so what ended it happens again
        live (or not, under a new manifest)."""
        if self.run_finished is None:
            return len(self.events)
        for seq in range(len(self.events) - 1, -1, -1):
            e = self.events[seq]
            if e["type"] == "step_finished" and e.get("outcome") == "continue":
                return seq + 1
        return 1  # no step completed: start again after run_started

    def in_flight(self) -> list[dict[str, Any]]:
        """The ``tool_call`` of each call that started with no ``tool_finished``: calls
        running at the crash, whose effect may or may not have happened."""
        return [
            self.events[self.calls[key]]
            for key in self.started
            if key not in self.finished and key in self.calls
        ]

    def in_file(self, seq: int, fields: tuple[str, ...] = ()) -> tuple[int, str]:
        """(seq, type) in the file of event ``seq`` as read here: itself, or for an older
        schema's ``tool_call`` its decision when only ``decision.*`` differ, else its
        proposal. Past the end: the file's last event."""
        if seq >= len(self.events):
            seq = len(self.events) - 1
        if self.origins is None:
            return seq, self.events[seq]["type"]
        origin = self.origins[seq]
        decided = bool(fields) and all(f.startswith("decision.") for f in fields)
        return origin[-1] if decided else origin[0]

    def truncated(self, count: int) -> Record:
        """The first ``count`` events, re-indexed: what a resume replays."""
        origins = self.origins[:count] if self.origins is not None else None
        record = Record(self.path, self.events[:count], None, major=self.major, origins=origins)
        record._index()
        return record
