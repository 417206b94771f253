"""What a finished replay came to, small enough to cross a process boundary.

A :class:`~govrun.runtime.replayer.session.ReplayOutcome` holds the whole record and the
session; a report needs a few numbers, the first divergence and the changed decisions. A
replay done in a worker process sends back this summary (picklable, a few KB), and a
report is made from summaries however the replays ran, so it reads the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from govrun.runtime.govern.policy import PolicyEngine
from govrun.runtime.replayer.report import Change
from govrun.runtime.replayer.session import Divergence, Mode, ReplayOutcome


@dataclass(frozen=True)
class RunCounts:
    """One side of a replay: the recorded run or the replayed one."""

    run_id: str
    status: str | None
    """None: the recorded run has no ``run_finished`` (it crashed or was cut)."""
    steps: int
    events: int
    failure_class: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class ReplaySummary:
    """A replay's verdict and evidence, as reports show them."""

    trace: Path
    """The recorded trace."""
    output: str
    """The replayed trace."""
    mode: Mode
    identical: bool
    recorded: RunCounts
    replayed: RunCounts
    divergence: Divergence | None
    ended_for: str | None
    """Why a counterfactual replay could not go on (a call the record never ran)."""
    live_calls: tuple[str, ...]
    went_live: tuple[int, int] | None
    changes: tuple[Change, ...]
    """Decisions that changed (counterfactual; empty for a strict replay)."""
    manifest: str
    """The name of the manifest the replay ran under."""
    policy_hash: str

    @property
    def unchanged(self) -> bool:
        """Strict: the record reproduced; counterfactual: no decision changed and the
        replay went to its end."""
        if self.mode == "strict":
            return self.identical
        return self.ended_for is None and not self.changes


def summarize(outcome: ReplayOutcome) -> ReplaySummary:
    """The summary of ``outcome`` (a counterfactual one reads its replayed trace once, to
    list the changed decisions)."""
    s, result, record = outcome.session, outcome.result, outcome.record
    finished = record.run_finished
    return ReplaySummary(
        trace=record.path,
        output=result.trace_path,
        mode=outcome.mode,
        identical=outcome.identical,
        recorded=RunCounts(
            run_id=record.run_id,
            status=None if finished is None else finished.get("status"),
            steps=record.steps(),
            events=len(record.events),
        ),
        replayed=RunCounts(
            run_id=result.run_id,
            status=result.status,
            steps=result.steps,
            events=result.events,
            failure_class=result.failure_class,
            reason=result.reason,
        ),
        divergence=outcome.divergence,
        ended_for=s.ended_for,
        live_calls=tuple(s.live_calls),
        went_live=s.went_live,
        changes=tuple(outcome.changes()) if outcome.mode == "counterfactual" else (),
        manifest=s.m.name,
        policy_hash=PolicyEngine(s.m).policy_hash,
    )
