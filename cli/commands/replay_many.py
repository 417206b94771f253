"""Replaying several traces: one after the other in this process (``--jobs 1``), or
several at once in worker processes (:mod:`govrun.cli.jobs`). Either way each trace gives
the same small result, in the order given, so the report reads the same."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from govrun.cli.console import err
from govrun.cli.jobs import Job, WorkerDied, run_jobs

if TYPE_CHECKING:
    from govrun.cli.render.replay import Replayed
    from govrun.runtime.govern.approval_rules import ApprovalRules
    from govrun.runtime.manifest.schema import Manifest
    from govrun.runtime.replayer.summary import ReplaySummary
    from govrun.runtime.trace.record import Record

Task = tuple[int, Path, Path | None]
"""(position from 1, trace, where its replay goes, or None to name it as it starts)."""
Done = tuple[str | None, "ReplaySummary | str"]
"""(what to say about the trace's damage first, or None; the summary, or why the trace
could not be replayed)."""


@dataclass(frozen=True)
class Replays:
    """What every replay of one command shares; sent to each worker with its task."""

    output: Path | None
    manifest: Manifest | None
    strict: bool
    live_tools: bool
    rules: ApprovalRules | None
    several: bool

    def one(self, task: Task) -> Done:
        """Replay one trace. A trace that cannot be read becomes its error message when
        there are several (one bad file must not hide the others' results)."""
        from govrun.cli.render.integrity import integrity_note
        from govrun.runtime.errors import GovrunError
        from govrun.runtime.replayer.session import replay
        from govrun.runtime.replayer.summary import summarize
        from govrun.runtime.trace.record import Record

        n, trace, target = task
        note = None
        try:
            _, note = integrity_note(trace, doing="replay", refuse_altered=True)
            record = Record.load(trace)
            if target is None:
                target = replay_target(self.output, record, several=self.several, n=n)
            outcome = replay(
                record,
                target,
                manifest=self.manifest,
                strict=self.strict,
                live_tools=self.live_tools,
                rules=self.rules,
                secrets=_secrets(self.manifest, record),
            )
            return note, summarize(outcome)
        except GovrunError as exc:
            if not self.several:
                if note is not None:  # said before the error, as it was found
                    err.print(note, soft_wrap=True)
                raise
            named = exc.message.startswith(str(trace))  # trace errors name their file
            return note, exc.message if named else f"{trace}: {exc.message}"


def replay_all(replays: Replays, traces: list[Path], *, jobs: int) -> list[Replayed]:
    """Every trace's result, in the order given: in this process with ``jobs`` 1 (or one
    trace), else in up to ``jobs`` worker processes."""
    tasks: list[Task] = [(n, trace, None) for n, trace in enumerate(traces, 1)]
    if jobs == 1 or len(traces) == 1:
        results: list[Replayed] = []
        for task in tasks:
            note, result = replays.one(task)
            if note is not None:
                err.print(note, soft_wrap=True)
            results.append(result)
        return results
    if replays.output is None:  # named here, in order, so two workers never take one name
        targets = _targets(traces)
        tasks = [(n, trace, target) for (n, trace, _), target in zip(tasks, targets, strict=True)]
    done = run_jobs(Job(replays.one, _failed, "replay", warm=_warm), tasks, jobs=jobs)
    for result in done:
        if not isinstance(result, WorkerDied) and result[0] is not None:
            err.print(result[0], soft_wrap=True)
    return [
        WorkerDied(f"{trace}: {r.message}") if isinstance(r, WorkerDied) else r[1]
        for trace, r in zip(traces, done, strict=True)
    ]


def _warm() -> None:
    """What every replay imports (most of a worker's start), imported before the first."""
    import govrun.cli.render.integrity
    import govrun.runtime.replayer.session
    import govrun.runtime.replayer.summary
    import govrun.runtime.trace.record  # noqa: F401


def _failed(done: Done) -> bool:
    result = done[1]
    return isinstance(result, str) or not result.unchanged


def replay_target(
    output: Path | None, record: Record, *, several: bool, n: int, label: str = "replay"
) -> Path:
    """Where a replay (a fork, a resume: ``label``) goes: ``-o`` itself for one trace; in
    the ``-o`` folder, numbered, for several; else ``runs/<agent>-<label>-<time>.jsonl``."""
    from govrun.runtime.run import default_trace_path

    agent = str(record.run_started.get("agent") or "agent")
    if output is None:
        return default_trace_path(f"{agent}-{label}")
    if several:
        output.mkdir(parents=True, exist_ok=True)
        return default_trace_path(f"{n:03d}-{record.path.stem}-{label}", runs_dir=output)
    return output


def _targets(traces: list[Path]) -> list[Path]:
    """``runs/<agent>-replay-<timestamp>.jsonl`` for each trace, none the same: what one
    process naming them in turn would choose."""
    from govrun.runtime.run import default_trace_path

    targets: list[Path] = []
    taken: set[Path] = set()
    for trace in traces:
        targets.append(default_trace_path(f"{_agent(trace)}-replay", taken=taken))
        taken.add(targets[-1])
    return targets


def _agent(trace: Path) -> str:
    """The agent a trace's first line names (``agent`` when it names none or is not a
    trace: then its replay fails before it writes anything)."""
    from govrun.runtime.trace.canonical import MAX_LINE_BYTES
    from govrun.runtime.trace.reader import open_trace

    try:
        with open_trace(trace) as f:
            first = orjson.loads(f.readline(MAX_LINE_BYTES))
    except Exception:  # any reason at all: the worker says it, as it reads the trace
        return "agent"
    return str((first.get("agent") if isinstance(first, dict) else None) or "agent")


def _secrets(manifest: Manifest | None, record: Record) -> set[str]:
    """Values of the secret env vars named by the manifest in force, as a live run would
    redact them."""
    from govrun.runtime.replayer.session import recorded_manifest

    m = manifest or recorded_manifest(record)
    return m.secret_values(os.environ)
