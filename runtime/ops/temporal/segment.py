"""One segment of a governed run, as a Temporal activity.

A segment runs the loop live — from the start, or resuming from the trace the previous
segment (or the previous attempt of this one) left — until the run ends or must wait for a
person. Waiting is :class:`~govrun.runtime.loop.RunSuspended`, raised by this module's
approver and operator when the answer is not in the segment's input: the trace then ends at
the question, unsealed, and the workflow waits for a signal or a timer.

Each attempt writes its own trace, ``<run>.s<segment>a<attempt>.jsonl`` in the run's folder,
and owns the run through a fencing token (``writer``, in the same folder) that its writer
checks before every append: an attempt that comes back after its successor started can never
write again. Heartbeats carry the trace's seq.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from govrun.runtime.errors import GovrunError, TraceWriteError
from govrun.runtime.govern.policy import PolicyEngine
from govrun.runtime.loop import RunEnded, RunSuspended
from govrun.runtime.manifest.schema import Manifest, manifest_from_snapshot
from govrun.runtime.ops.approvals import (
    Pending,
    Sent,
    applied,
    check_sent,
    refusal,
    sent_from,
    timed_out,
)
from govrun.runtime.ops.control import FileControl
from govrun.runtime.ops.registry import write_atomic
from govrun.runtime.ops.temporal.workflow import SEGMENT
from govrun.runtime.ports import ApprovalDecision, ApprovalRequest
from govrun.runtime.trace.signing import Signer, load_default_signer, load_trusted_keys

FENCE = "writer"


def fence_for(folder: Path, token: str) -> Any:
    """The check a writer runs before each append: the run's ``writer`` file still names
    this attempt (read each time: it is one small file, and a stale writer must stop at its
    very next line)."""
    path = folder / FENCE

    def check() -> None:
        try:
            holder = path.read_text()
        except OSError as exc:
            raise TraceWriteError(f"cannot read the run's fencing token {path}: {exc}") from None
        if holder != token:
            raise TraceWriteError(
                f"fenced off: {holder or 'another attempt'} owns this run now, not {token}; "
                "this worker's attempt may not write another line"
            )

    return check


def claim(folder: Path, workflow_run: str, segment: int, attempt: int) -> str:
    """Take the run's fencing token for this attempt — only from an earlier one. A task that
    reaches a worker late (it was handed to a worker that then hung, and retried elsewhere)
    finds a later attempt holding the token and does not start."""
    import fcntl

    token = f"{workflow_run}:s{segment}a{attempt}"
    path = folder / FENCE
    with open(folder / f".{FENCE}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            holder = path.read_text()
        except FileNotFoundError:
            holder = ""
        if holder and _order(holder, workflow_run) >= (segment, attempt):
            raise ApplicationError(
                f"superseded: {holder} owns the run; attempt {token} does not start",
                type="GovrunSuperseded",
                non_retryable=True,
            )
        write_atomic(path, token.encode(), mode=0o644)
    return token


def _order(token: str, workflow_run: str) -> tuple[int, int]:
    """(segment, attempt) of a token of this workflow run; (0, 0) for another run's."""
    run, _, rest = token.rpartition(":")
    if run != workflow_run or not rest.startswith("s") or "a" not in rest:
        return (0, 0)
    seg, _, att = rest[1:].partition("a")
    return (int(seg), int(att)) if seg.isdigit() and att.isdigit() else (0, 0)


class SegmentApprover:
    """Answers the gate from the segment's input: a signed decision sent from elsewhere,
    the timeout the workflow's timer fired, a stop; otherwise the run waits."""

    def __init__(self, params: Mapping[str, Any], manifest: Manifest, policy_hash: str) -> None:
        self.decisions = [dict(d) for d in params.get("decisions") or ()]
        self.timed_out = bool(params.get("timed_out"))
        self.stop = next(
            (c for c in params.get("control") or () if c.get("action") == "stop"), None
        )
        self.on_timeout = manifest.approvals.on_timeout.model_dump()
        keys = manifest.approvals.trusted_keys
        self.trusted = load_trusted_keys(manifest.resolve_path(keys)) if keys else None
        self.policy_hash = policy_hash
        self.handled: list[dict[str, str]] = []

    def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        if self.stop is not None:
            by, why = self.stop.get("by", "operator"), self.stop.get("reason", "")
            raise RunEnded(
                "stopped",
                "operator_stop",
                f"stop requested by {by} (govrun ctl, through Temporal)"
                + (f": {why}" if why else ""),
            )
        pending = Pending.of(request, policy_hash=self.policy_hash)
        notes: list[dict[str, Any]] = []
        chosen: ApprovalDecision | None = None
        for data in self.decisions:
            sent = _sent(data)
            why = (
                check_sent(sent, pending, self.trusted, request.recordable)
                if sent is not None
                else "not a decision"
            )
            if why is None and chosen is not None:
                why = f"the call was already decided ({chosen.decision} by {chosen.approver})"
            nonce = str(data.get("nonce") or "")
            if why is None and sent is not None:
                chosen = applied(sent)
                self.handled.append({"nonce": nonce, "outcome": f"applied: {chosen.decision}"})
                continue
            self.handled.append({"nonce": nonce, "outcome": f"refused: {why}"})
            notes.append(refusal(sent, why or "not a decision"))
        self.decisions = []
        if chosen is not None:
            return chosen.model_copy(update={"notes": tuple(notes)})
        if self.timed_out:
            self.timed_out = False
            decided = timed_out(request, self.on_timeout, "the workflow's durable timer")
            return decided.model_copy(update={"notes": tuple(notes)})
        raise RunSuspended(
            {
                "kind": "approval",
                "run_id": request.run_id,
                "step": request.step,
                "call_id": request.call_id,
                "tool": request.tool,
                "call_hash": request.call_hash,
                "policy_hash": self.policy_hash,
                "risk": request.risk,
                "rule": request.rule,
                "timeout_s": request.timeout_s,
                "request": request.model_dump(mode="json"),
                "notes": notes,
            }
        )


def _sent(data: Mapping[str, Any]) -> Sent | None:
    try:
        return sent_from(data)
    except ValueError:
        return None


class SegmentOperator:
    """Answers a pause from the segment's input (`govrun ctl resume|stop` sent while the run
    waited); otherwise the run waits for one."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        answers = [c for c in params.get("control") or () if c.get("action") in ("resume", "stop")]
        self.answer = answers[-1] if answers else None
        self.identity = "temporal"
        self.reason: str | None = None

    def on_pause(self, reason: str) -> str:
        if self.answer is None:
            raise RunSuspended({"kind": "pause", "reason": reason})
        answer, self.answer = self.answer, None
        self.identity = str(answer.get("by") or "operator")
        did = "resumed" if answer["action"] == "resume" else "stopped"
        why = answer.get("reason") or ""
        self.reason = f"{self.identity} {did} the run (govrun ctl, through Temporal)" + (
            f": {why}" if why else ""
        )
        return "resume" if answer["action"] == "resume" else "stop"


class Heartbeats:
    """Heartbeats with the trace's seq, from a thread of their own: a long tool call must
    not look like a lost worker."""

    def __init__(self, every_s: float) -> None:
        self.seq = 0
        self.every_s = every_s
        self._stop = threading.Event()
        context = contextvars.copy_context()  # the activity's context, for heartbeat()
        self._thread = threading.Thread(
            target=lambda: context.run(self._beat), name="govrun-heartbeat", daemon=True
        )

    def observe(self, event: Any) -> None:
        self.seq = event.seq

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            activity.heartbeat({"seq": self.seq})

    def __enter__(self) -> Heartbeats:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@activity.defn(name=SEGMENT)
def run_segment(params: dict[str, Any]) -> dict[str, Any]:
    info = activity.info()
    folder = Path(params["folder"])
    run_id = params["run_id"]
    segment, attempt = int(params["segment"]), info.attempt
    manifest = _manifest(params)
    folder.mkdir(parents=True, exist_ok=True)
    token = claim(folder, info.workflow_run_id, segment, attempt)
    trace = folder / f"{run_id}.s{segment}a{attempt}.jsonl"
    source = _source(folder, run_id, segment, attempt, params.get("source"))
    policy_hash = PolicyEngine(manifest).policy_hash
    approver = SegmentApprover(params, manifest, policy_hash)
    operator = SegmentOperator(params)
    control = FileControl(folder / "control.d")
    signer = load_default_signer() or Signer.ephemeral()
    beats = Heartbeats(max(float(params["heartbeat_s"]) / 3, 0.2))
    result: Any
    try:
        with beats:
            if source is None:
                from govrun.runtime.run import run_agent

                result = run_agent(
                    manifest,
                    task=params["task"],
                    trace_path=trace,
                    approver=approver,
                    operator=operator,
                    control=control,
                    observers=[beats.observe],
                    run_id=run_id,
                    manifest_path=params.get("manifest_path"),
                    signer=signer,
                    fence=fence_for(folder, token),
                )
            else:
                result = _resume(
                    params,
                    manifest,
                    source,
                    trace,
                    approver,
                    operator,
                    control,
                    beats,
                    signer,
                    fence_for(folder, token),
                )
    except RunSuspended as suspended:
        return {
            "status": "waiting",
            "trace": str(trace),
            "waiting": suspended.waiting,
            "handled": approver.handled,
            "step": suspended.waiting.get("step", 0),
        }
    except GovrunError as exc:
        raise ApplicationError(exc.message, type="GovrunConfig", non_retryable=True) from None
    finally:
        control.close()
    return {
        "status": "finished",
        "trace": str(trace),
        "handled": approver.handled,
        "step": result.steps,
        "result": {
            "status": result.status,
            "failure_class": result.failure_class,
            "reason": result.reason,
            "steps": result.steps,
            "head": result.head,
            "trace": str(trace),
        },
    }


def _resume(
    params: Mapping[str, Any],
    manifest: Manifest,
    source: Path,
    trace: Path,
    approver: SegmentApprover,
    operator: SegmentOperator,
    control: FileControl,
    beats: Heartbeats,
    signer: Signer,
    fence: Any,
) -> Any:
    from govrun.runtime.models import build_model
    from govrun.runtime.replayer.session import LivePorts, replay
    from govrun.runtime.trace.record import Record

    record = Record.load(source)
    choice = manifest.on_in_flight or "fail"

    def in_flight(call: dict[str, Any]) -> tuple[str, str]:
        if choice == "fail":
            # its outcome is unknown, and the manifest says not to guess: skip it (recorded),
            # then stop at the first stage boundary
            control.request("stop", by="on_in_flight: fail (a call was in flight)")
            return "skip", "on_in_flight: fail"
        return choice, f"on_in_flight: {choice}"

    env = os.environ
    live = LivePorts(
        model=lambda: build_model(manifest.model, base_dir=manifest.base_dir, env=env),
        named=lambda name: build_model(manifest.models[name], base_dir=manifest.base_dir, env=env),
        approver=approver,
        operator=operator,
        in_flight=in_flight,
        control=control,
    )
    outcome = replay(
        record,
        trace,
        resume=True,
        live=live,
        run_id=params["run_id"],
        signer=signer,
        observers=[beats.observe],
        secrets=manifest.secret_values(env),
        fence=fence,
    )
    return outcome.result


def _manifest(params: Mapping[str, Any]) -> Manifest:
    """The submitted manifest, rebuilt where this worker sees the agent's folder."""
    base = Path(params["base_dir"])
    if not base.is_dir():
        raise ApplicationError(
            f"the agent's folder {base} is not visible on this worker "
            f"({os.uname().nodename}): workers read the manifest's files (model scripts, "
            "Python tools, workspaces) from the folder `govrun submit` loaded it from, at the "
            "same path — share it with every worker",
            type="GovrunConfig",
            non_retryable=True,
        )
    try:
        return manifest_from_snapshot(params["snapshot"], base_dir=base)
    except GovrunError as exc:
        raise ApplicationError(exc.message, type="GovrunConfig", non_retryable=True) from None


def _source(
    folder: Path, run_id: str, segment: int, attempt: int, previous: str | None
) -> Path | None:
    """What this attempt resumes from: the latest earlier attempt of this segment that left
    a trace (its worker was lost), else the previous segment's trace, else nothing."""
    for earlier in range(attempt - 1, 0, -1):
        path = folder / f"{run_id}.s{segment}a{earlier}.jsonl"
        if path.exists() and path.stat().st_size > 0:
            return path
    return Path(previous) if previous else None


__all__ = ["FENCE", "claim", "fence_for", "run_segment"]
