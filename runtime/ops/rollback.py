"""``govrun rollback``: undo a finished run's recorded effects into a rollback trace.

The trace must verify first (a crashed but intact trace is fine, a tampered one is refused
whatever the flags); the effects are undone newest first through the same undo mechanics
the loop uses for ``on_failure: rollback`` (:mod:`govrun.runtime.ops.undo`), each recorded as a
``rollback`` event in a new trace that names its parent.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from govrun.runtime.errors import GovrunError
from govrun.runtime.ports import Clock
from govrun.runtime.tools.base import (
    Tool,
)

if TYPE_CHECKING:
    from govrun.runtime.trace.record import Record
    from govrun.runtime.trace.signing import Signer
from govrun.runtime.ops.undo import Effect, LiveRollbacker, UndoOutcome, describe, undo_all


class RollbackError(GovrunError):
    """Rollback cannot start: the trace does not verify, the output exists, bad arguments."""


@dataclass(frozen=True)
class RollbackReport:
    """A finished (or planned) rollback of one trace."""

    trace: Path
    parent_run_id: str
    to_step: int | None
    outcomes: tuple[UndoOutcome, ...]
    already_undone: int
    """Effects the run's own rollback (``on_failure``) had already undone: not redone."""
    output: Path | None = None
    """The rollback trace; None for a dry run or when there was nothing to undo."""
    run_id: str | None = None
    head: str | None = None
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def summary(self) -> str:
        return describe(self.outcomes)


def default_output(trace: Path) -> Path:
    """``run.jsonl`` -> ``run.rollback.jsonl``, next to it."""
    return trace.with_name(f"{trace.stem}.rollback.jsonl")


def rollback_trace(
    trace: str | Path,
    *,
    to_step: int | None = None,
    force: bool = False,
    output: str | Path | None = None,
    dry_run: bool = False,
    signer: Signer | None = None,
    clock: Clock | None = None,
) -> RollbackReport:
    """Undo the effects a trace records for steps after ``to_step`` (all without it),
    newest first, into a new rollback trace (see the module docstring). Raises
    :class:`RollbackError` (exit 2) before touching anything when the trace does not
    verify, ``to_step`` is negative, or the output trace exists."""
    from govrun.runtime.trace.reader import check_trace
    from govrun.runtime.trace.record import Record
    from govrun.runtime.trace.verify import verify_trace

    path = Path(trace)
    check_trace(path)
    if to_step is not None and to_step < 0:
        raise RollbackError(f"--to-step must be 0 or more; got {to_step}.")
    report = verify_trace(path)
    if not report.intact:
        assert report.problem is not None
        raise RollbackError(
            f"{path} does not verify: {report.problem.message} Refusing to roll back from a "
            "record that may have been altered.",
            hint=f"`govrun verify {path}` shows what is wrong.",
        )
    record = Record.load(path)
    done = {
        (e.get("call_step"), e.get("call_id"))
        for e in record.events
        if e["type"] == "rollback" and e.get("ok")
    }
    effects: list[Effect] = []
    skipped = 0
    for e in record.events:
        if e["type"] != "tool_finished" or (to_step is not None and e["step"] <= to_step):
            continue
        effect = Effect.from_event(record.resolved(e))
        if effect is None:
            continue
        if (effect.step, effect.call_id) in done:
            skipped += 1
        else:
            effects.append(effect)
    base = RollbackReport(path, record.run_id, to_step, (), skipped, dry_run=dry_run)
    if not effects:
        return base
    rollbacker = LiveRollbacker(
        blob_dirs=[path.with_name(path.name + ".blobs")],
        tools=_ToolsOf(record),
        force=force,
        dry_run=dry_run,
    )
    if dry_run:
        outcomes = undo_all(effects, rollbacker, lambda _o: None)
        return replace(base, outcomes=tuple(outcomes))
    target = Path(output) if output is not None else default_output(path)
    return _write_rollback(record, base, effects, rollbacker, target, report.head, signer, clock)


class _ToolsOf:
    """The run's shell tools, rebuilt from the manifest it recorded, on first use only."""

    def __init__(self, record: Record) -> None:
        self.record = record
        self._tools: dict[str, Tool | None] = {}

    def __call__(self, name: str) -> Tool | None:
        if name not in self._tools:
            self._tools[name] = self._build(name)
        return self._tools[name]

    def _build(self, name: str) -> Tool | None:
        from govrun.runtime.govern.toolbox import build_tool
        from govrun.runtime.replayer.session import recorded_manifest

        manifest = recorded_manifest(self.record)
        spec = manifest.tool(name)
        return None if spec is None else build_tool(spec, manifest)


def _write_rollback(
    record: Record,
    base: RollbackReport,
    effects: list[Effect],
    rollbacker: LiveRollbacker,
    target: Path,
    parent_head: str,
    signer: Signer | None,
    clock: Clock | None,
) -> RollbackReport:
    """The rollback trace: run_started naming the parent, one rollback event per undo
    (each written as soon as it is done), run_finished with the outcome, sealed."""
    from govrun.runtime import __version__
    from govrun.runtime.ports import SystemClock
    from govrun.runtime.run import new_run_id
    from govrun.runtime.trace import events as ev
    from govrun.runtime.trace.canonical import canonical, sha256_hex
    from govrun.runtime.trace.signing import Signer, load_default_signer, seal_message
    from govrun.runtime.trace.writer import TraceWriter

    started = record.resolved(record.run_started)
    snapshot = started.get("manifest") or {}
    agent = str(started.get("agent") or "agent")
    signer = signer or load_default_signer() or Signer.ephemeral()
    clock = clock or SystemClock()
    t0 = time.monotonic()
    run_id = new_run_id(agent)
    writer = TraceWriter(
        target,
        run_id=run_id,
        clock=clock,
        durability="fsync" if snapshot.get("durability") == "fsync" else "flush",
        secrets=_secret_values(snapshot),
    )
    with writer:
        writer.write(
            ev.RunStarted,
            0,
            {
                "agent": agent,
                "manifest": snapshot,
                "manifest_hash": sha256_hex(canonical(snapshot)),
                "manifest_path": started.get("manifest_path"),
                "input": f"roll back run {record.run_id}"
                + (f" after step {base.to_step}" if base.to_step is not None else ""),
                "govrun_version": __version__,
                "policy_hash": started.get("policy_hash"),
                "user": _user(),
                "host": socket.gethostname(),
                "parent": {
                    "kind": "rollback",
                    "trace": str(base.trace),
                    "run_id": record.run_id,
                    "step": base.to_step,
                    "head": parent_head,
                },
            },
        )
        outcomes = undo_all(
            effects, rollbacker, lambda o: writer.write(ev.Rollback, 0, o.payload())
        )
        failed = next((o for o in outcomes if not o.ok), None)
        outcome = writer.redact(
            {
                "status": "completed" if failed is None else "failed",
                "failure_class": None if failed is None else failed.failure_class,
                "reason": f"rollback of run {record.run_id}: {describe(outcomes)}",
                "steps": 0,
                "event_count": writer.seq + 1,
                "head": writer.head,
                "final_answer": None,
                "totals": {
                    "effects": len(outcomes),
                    "undone": sum(o.ok for o in outcomes),
                    "refused": sum(o.action == "refused" for o in outcomes),
                    "skipped": sum(o.action == "skipped" and not o.ok for o in outcomes),
                    "failed": sum(o.action == "failed" for o in outcomes),
                    "duration_ms": round((time.monotonic() - t0) * 1000, 3),
                },
            }
        )
        message = seal_message({**outcome, "run_id": run_id})
        seal = {
            "key_fingerprint": signer.fingerprint,
            "public_key": signer.public_key,
            "key_source": signer.source,
            "signature": signer.sign(message),
        }
        writer.write(ev.RunFinished, 0, {**outcome, "seal": seal})
        head = writer.head
    return replace(base, outcomes=tuple(outcomes), output=target, run_id=run_id, head=head)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _secret_values(snapshot: Mapping[str, Any]) -> set[str]:
    """Values of the env vars the run's manifest names as secret: never in this trace either."""
    names = {str(n) for n in snapshot.get("secrets") or []}
    key_env = (snapshot.get("model") or {}).get("api_key_env")
    if key_env:
        names.add(str(key_env))
    return {value for name in names if (value := os.environ.get(name))}
