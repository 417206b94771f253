"""`govrun approvals`, `govrun approve`, `govrun reject`: decide, from another terminal, the
calls runs started with `--approve wait` are waiting on. The protocol lives in
:mod:`govrun.runtime.ops.approvals`; this is only the terminal side.

`approve` / `reject` exit 0 once the run applied the decision, 1 when nothing is pending,
the run refused the decision (it says why) or did not answer within ``--wait``, and 2 for
an unknown run or bad input.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import orjson
import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from govrun.cli.commands.ctl import As, RunRef, RunsDir, Wait
from govrun.cli.commands.temporal import TemporalOpt
from govrun.cli.console import err, handle_errors, out

if TYPE_CHECKING:
    from govrun.runtime.ops.approvals import Pending
    from govrun.runtime.ops.registry import Registry, RunEntry

POLL_S = 0.05
CallRef = Annotated[
    str | None,
    typer.Argument(
        help="The pending call's id (may be left out when the run waits on one call).",
        metavar="CALL",
        show_default=False,
    ),
]

approvals_app = typer.Typer(
    help="The calls runs are waiting on for a decision from elsewhere (--approve wait).",
    invoke_without_command=True,
    rich_markup_mode="rich",
)


@approvals_app.callback()
@handle_errors
def approvals(
    ctx: typer.Context,
    runs: RunsDir = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print them as JSON.")] = False,
    temporal: TemporalOpt = None,
) -> None:
    """List the calls waiting for a decision across the runs in the registry (or, with
    --temporal, the runs on Temporal): run, step, call, tool, risk, rule, waiting since,
    time left. `govrun approvals show RUN` shows one as the inline prompt would;
    `govrun approve` / `govrun reject` decide it."""
    if ctx.invoked_subcommand is not None:
        return
    from govrun.runtime.ops.registry import Registry, age_s, shown_state

    if temporal is not None:
        _temporal_approvals(temporal, json_output)
        return
    registry = Registry.default(runs)
    waiting = [
        (e, _pending_of(e)) for e in registry.entries() if shown_state(e) == "running" and e.waiting
    ]
    waiting = [(e, p) for e, p in waiting if p is not None]
    if json_output:
        doc = [{**p.as_dict(), "seconds_left": p.seconds_left()} for _, p in waiting]
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not waiting:
        out.print(f"No calls are waiting for a decision in {escape(str(registry.runs))}.")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("run", "step", "call", "tool", "risk", "rule", "waiting", "left"):
        table.add_column(column, overflow="fold")
    for e, p in waiting:
        left = p.seconds_left()
        table.add_row(
            escape(e.run_id),
            str(p.step),
            escape(p.call_id),
            f"[bold]{escape(p.tool)}[/]",
            escape(p.risk),
            escape(p.rule or "policy default"),
            f"{age_s(p.since) or 0:.0f}s",
            "no limit" if left is None else f"{max(left, 0):.0f}s",
        )
    out.print(table)
    out.print(
        "[dim]decide with: govrun approve RUN [CALL] --as NAME  ·  govrun reject RUN "
        "[CALL] --reason TEXT[/]"
    )


def _temporal_approvals(address: str, json_output: bool) -> None:
    """The calls runs on Temporal wait on (their workflows' state)."""
    from govrun.cli.commands.temporal import _sync, _target
    from govrun.runtime.ops.temporal.service import runs as temporal_runs

    found = [r for r in _sync(temporal_runs(_target(address))) if r.get("pending")]
    if json_output:
        doc = [{"run_id": r["run_id"], **r["pending"]} for r in found]
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not found:
        out.print(f"No runs on Temporal at {escape(address)} are waiting for a decision.")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("run", "step", "call", "tool", "risk", "rule", "timeout"):
        table.add_column(column, overflow="fold")
    for r in found:
        p = r["pending"]
        limit = p.get("timeout_s")
        table.add_row(
            escape(r["run_id"]),
            str(p.get("step")),
            escape(str(p.get("call_id"))),
            f"[bold]{escape(str(p.get('tool')))}[/]",
            escape(str(p.get("risk"))),
            escape(str(p.get("rule") or "policy default")),
            "no limit" if limit is None else f"{limit:g}s",
        )
    out.print(table)


@approvals_app.command()
@handle_errors
def show(run: RunRef, call: CallRef = None, runs: RunsDir = None) -> None:
    """Show a waiting call as the inline prompt shows it: the arguments that will run, the
    model's reason, and what a file write would change."""
    from govrun.cli.approval_prompt import approval_panel
    from govrun.runtime.ports import ApprovalRequest

    _, pending = _waiting(run, call, runs)
    out.print(approval_panel(ApprovalRequest.model_validate(pending.request)))
    left = pending.seconds_left()
    out.print(
        f"[dim]waiting since {escape(pending.since)}"
        + ("" if left is None else f", {max(left, 0):.0f}s left")
        + f" · trace {escape(pending.trace)}[/]"
    )


@handle_errors
def approve(
    run: RunRef,
    call: CallRef = None,
    reason: Annotated[
        str | None, typer.Option("--reason", metavar="TEXT", help="Why (recorded).")
    ] = None,
    as_: As = None,
    for_run: Annotated[
        bool,
        typer.Option("--for-run", help="Approve this tool for the rest of the run, too."),
    ] = False,
    runs: RunsDir = None,
    wait: Wait = 10.0,
    temporal: TemporalOpt = None,
) -> None:
    """Approve the call RUN is waiting on, signed with your own key (`govrun keys init`);
    with --temporal, a run on Temporal (RUN is its run id)."""
    decide(
        "approve",
        run,
        call,
        reason=reason or "",
        as_=as_,
        for_run=for_run,
        runs=runs,
        wait=wait,
        temporal=temporal,
    )


@handle_errors
def reject(
    run: RunRef,
    call: CallRef = None,
    reason: Annotated[
        str,
        typer.Option(
            "--reason", metavar="TEXT", help="Why: the model is told.", show_default=False
        ),
    ] = ...,  # type: ignore[assignment]
    as_: As = None,
    runs: RunsDir = None,
    wait: Wait = 10.0,
    temporal: TemporalOpt = None,
) -> None:
    """Reject the call RUN is waiting on, signed with your own key; the reason reaches the
    model, and the run continues. With --temporal, a run on Temporal."""
    decide(
        "reject",
        run,
        call,
        reason=reason,
        as_=as_,
        for_run=False,
        runs=runs,
        wait=wait,
        temporal=temporal,
    )


def decide(
    decision: Literal["approve", "reject"],
    ref: str,
    call: str | None,
    *,
    reason: str,
    as_: str | None,
    for_run: bool,
    runs: Path | None,
    wait: float,
    temporal: str | None = None,
) -> None:
    from govrun.runtime.errors import GovrunError
    from govrun.runtime.govern.approvers import local_identity
    from govrun.runtime.ops.approvals import send_decision
    from govrun.runtime.trace.signing import load_default_signer

    if temporal is not None:
        from govrun.cli.commands.temporal import temporal_decide

        who = as_ or local_identity()
        temporal_decide(
            temporal, ref, call, decision, reason=reason, by=who, for_run=for_run, wait=wait
        )
        return

    signer = load_default_signer()
    if signer is None:
        raise GovrunError(
            "a decision is signed with your own key, and you have none yet",
            hint="Create one with `govrun keys init` (and give its public key to whoever "
            "pins approvers' keys).",
        )
    entry, pending = _waiting(ref, call, runs)
    registry = _registry(runs)
    nonce = send_decision(
        Path(str(entry.approvals)),
        pending,
        decision,
        signer=signer,
        by=as_ or local_identity(),
        reason=reason,
        for_run=for_run,
    )
    outcome = _outcome(registry, entry, nonce, wait)
    name = escape(entry.run_id)
    if outcome is None:
        err.print(f"[yellow]run {name} did not take the decision within {wait:g}s[/]")
        raise typer.Exit(1)
    if outcome.startswith("refused"):
        err.print(f"[red]run {name} refused the decision[/]: {escape(outcome[9:])}")
        raise typer.Exit(1)
    verb = "approved" if decision == "approve" else "rejected"
    out.print(
        f"[bold]{verb}[/] {escape(pending.tool)} ({escape(pending.call_id)}) at step "
        f"{pending.step} of {name}, signed by {escape(signer.fingerprint)}"
    )


def _registry(runs: Path | None) -> Registry:
    from govrun.runtime.ops.registry import Registry

    return Registry.default(runs)


def _pending_of(entry: RunEntry) -> Pending | None:
    from govrun.runtime.ops.approvals import read_pending

    return read_pending(Path(entry.approvals)) if entry.approvals else None


def _waiting(ref: str, call: str | None, runs: Path | None) -> tuple[RunEntry, Pending]:
    """The run ``ref`` names and the call it waits on; exit 1 when it waits on nothing."""
    from govrun.runtime.errors import GovrunError
    from govrun.runtime.ops.registry import shown_state

    entry = _registry(runs).resolve(ref)
    if shown_state(entry) != "running":
        raise GovrunError(f"run {entry.run_id} is {shown_state(entry)}; nothing can be decided")
    pending = _pending_of(entry)
    if pending is None:
        err.print(f"run {escape(entry.run_id)} is not waiting for a decision.")
        raise typer.Exit(1)
    if call is not None and call != pending.call_id:
        err.print(
            f"run {escape(entry.run_id)} is not waiting on {escape(call)}: it waits on "
            f"{escape(pending.call_id)} ({escape(pending.tool)}) at step {pending.step}."
        )
        raise typer.Exit(1)
    return entry, pending


def _outcome(registry: Registry, entry: RunEntry, nonce: str, wait: float) -> str | None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        latest = registry.reload(entry)
        found = latest.outcome_of(nonce) if latest is not None else None
        if found is not None:
            return found
        time.sleep(POLL_S)
    return None
