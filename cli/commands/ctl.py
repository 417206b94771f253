"""`govrun status` and `govrun ctl`: see the runs going on and steer one from another
terminal. The protocol lives in :mod:`govrun.runtime.ops.control` and
:mod:`govrun.runtime.ops.registry`; this is only the terminal side.

`ctl` exits 0 once the run acknowledged the request (it wrote what it did into its
registry entry, after recording the interrupt in its trace), 1 if it did not within
``--wait`` seconds (the request stays queued: a run busy inside a long stage acts on it at
its next stage boundary), and 2 for an unknown, finished or crashed run or bad input.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from govrun.cli.console import err, handle_errors, out

if TYPE_CHECKING:
    from govrun.runtime.ops.control import Action
    from govrun.runtime.ops.registry import Registry, RunEntry

RunsDir = Annotated[
    Path | None,
    typer.Option(
        "--runs",
        metavar="DIR",
        help="The runs folder whose .registry lists the runs (default: $GOVRUN_RUNS, else ./runs).",
        show_default=False,
    ),
]
RunRef = Annotated[
    str, typer.Argument(help="A run id, a unique prefix of one, or its trace path.", metavar="RUN")
]
As = Annotated[
    str | None,
    typer.Option(
        "--as", metavar="NAME", help="Who you are, as recorded in the trace (default: user@host)."
    ),
]
Reason = Annotated[
    str | None,
    typer.Option("--reason", metavar="TEXT", help="Why: recorded with the action in the trace."),
]
TemporalRef = Annotated[
    str | None,
    typer.Option(
        "--temporal",
        metavar="HOST:PORT",
        help="The run is on Temporal at HOST:PORT (RUN is its run id).",
        show_default=False,
    ),
]
Wait = Annotated[
    float,
    typer.Option(
        "--wait", metavar="SECONDS", help="How long to wait for the run to acknowledge.", min=0
    ),
]

STATE_STYLE = {
    "running": "green",
    "paused": "yellow",
    "stopping": "yellow",
    "finished": "dim",
    "crashed": "bold red",
}
POLL_S = 0.05


def run_registry() -> Registry | None:
    """The registry `govrun run` lists its run in; when it cannot be made, a warning and
    the run goes on unlisted (and cannot be steered from outside)."""
    from govrun.runtime.errors import GovrunError
    from govrun.runtime.ops.registry import Registry

    registry = Registry.default()
    try:
        registry.ensure()
    except GovrunError as exc:
        err.print(
            f"[yellow]warning:[/] {escape(exc.message)}; this run will not be listed by "
            "`govrun status` nor steered by `govrun ctl`."
        )
        return None
    return registry


# --- status ------------------------------------------------------------------------------------


@handle_errors
def status(
    runs: RunsDir = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also list runs that finished recently.")
    ] = False,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Remove the entries of finished and crashed runs first."),
    ] = False,
    temporal: TemporalRef = None,
) -> None:
    """List the runs going on: pid, state (running, waiting for an approval, paused,
    stopping, crashed), step, trace."""
    from govrun.runtime.ops.registry import Registry, age_s, shown_state

    if temporal is not None:
        from govrun.cli.commands.temporal import temporal_status

        temporal_status(temporal, json_output)
        return
    registry = Registry.default(runs)
    if prune:
        for entry in registry.prune():
            err.print(f"pruned {escape(entry.run_id)} ({shown_state(entry)})")
    entries = registry.entries()
    for problem in registry.skipped:
        err.print(f"[yellow]skipped[/] {escape(problem)}")
    rows = [(e, shown_state(e)) for e in entries]
    if not show_all:
        rows = [(e, s) for e, s in rows if s != "finished"]
    if json_output:
        doc = [
            {**e.model_dump(mode="json"), "state": s, "recorded_state": e.state} for e, s in rows
        ]
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not rows:
        hidden = len(entries)
        more = f" ({hidden} finished: govrun status --all)" if hidden else ""
        out.print(f"No runs going on in {escape(str(registry.runs))}.{more}")
        return
    table = Table(
        title=f"govrun runs · {escape(str(registry.runs))}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("run", overflow="fold", min_width=12)
    table.add_column("agent", overflow="fold")
    for column in ("pid", "state", "step", "updated"):
        table.add_column(column, no_wrap=True)
    table.add_column("trace", overflow="fold", min_width=20)
    for e, shown in rows:
        label = e.status or shown if shown == "finished" else shown  # how a finished run ended
        if shown == "running" and e.waiting:
            label = f"waiting: {e.waiting.get('tool')} ({e.waiting.get('call_id')})"
            shown = "paused"  # styled as a run that is not moving
        table.add_row(
            escape(e.run_id),
            escape(e.agent),
            str(e.pid),
            f"[{STATE_STYLE.get(shown, '')}]{escape(label)}[/]",
            str(e.step),
            _ago(age_s(e.updated)) + " ago",
            escape(e.trace),
        )
    out.print(table)


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"


# --- ctl ---------------------------------------------------------------------------------------

ctl_app = typer.Typer(
    help="Pause, resume or stop a run from another terminal; each action is recorded in its "
    "trace with who did it.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@ctl_app.command()
@handle_errors
def pause(
    run: RunRef,
    as_: As = None,
    reason: Reason = None,
    runs: RunsDir = None,
    wait: Wait = 5.0,
    temporal: TemporalRef = None,
) -> None:
    """Pause a run at its next stage boundary; it waits for `govrun ctl resume` or `stop`."""
    steer("pause", run, as_=as_, reason=reason, runs=runs, wait=wait, temporal=temporal)


@ctl_app.command()
@handle_errors
def resume(
    run: RunRef,
    as_: As = None,
    reason: Reason = None,
    runs: RunsDir = None,
    wait: Wait = 5.0,
    temporal: TemporalRef = None,
) -> None:
    """Resume a paused run."""
    steer("resume", run, as_=as_, reason=reason, runs=runs, wait=wait, temporal=temporal)


@ctl_app.command()
@handle_errors
def stop(
    run: RunRef,
    as_: As = None,
    reason: Reason = None,
    runs: RunsDir = None,
    wait: Wait = 5.0,
    temporal: TemporalRef = None,
) -> None:
    """Stop a run at its next stage boundary, or at once if paused (`operator_stop`)."""
    steer("stop", run, as_=as_, reason=reason, runs=runs, wait=wait, temporal=temporal)


def steer(
    action: Action,
    ref: str,
    *,
    as_: str | None,
    reason: str | None,
    runs: Path | None,
    wait: float,
    temporal: str | None = None,
) -> None:
    """Send ``action`` to the run ``ref`` names and report what it did."""
    from govrun.runtime.errors import GovrunError
    from govrun.runtime.govern.approvers import local_identity
    from govrun.runtime.ops.control import send_request, withdraw
    from govrun.runtime.ops.registry import Registry, shown_state

    if temporal is not None:
        from govrun.cli.commands.temporal import temporal_control

        temporal_control(temporal, ref, action, as_ or local_identity(), reason or "")
        return

    registry = Registry.default(runs)
    entry = registry.resolve(ref)
    name = escape(entry.run_id)
    shown = shown_state(entry)
    if shown == "finished":
        ended = f" ({entry.status})" if entry.status else ""
        raise GovrunError(f"run {entry.run_id} has finished{ended}; there is nothing to {action}.")
    if shown == "crashed":
        raise GovrunError(
            f"run {entry.run_id} crashed: its process {entry.pid} is gone and its trace has "
            "no end.",
            hint=f"`govrun resume {entry.trace}` continues it; `govrun status --prune` "
            "removes the entry.",
        )
    request = send_request(
        Path(entry.control), action, by=as_ or local_identity(), reason=reason or ""
    )
    deadline = time.monotonic() + wait
    latest: RunEntry | None = entry
    while True:
        latest = registry.reload(entry)
        outcome = latest.outcome_of(request.nonce) if latest is not None else None
        if outcome is not None:
            break
        if latest is None or shown_state(latest) in ("finished", "crashed"):
            withdraw(Path(entry.control), request)
            why = "finished" if latest is None or latest.state == "finished" else "crashed"
            err.print(f"[red]run {name} {why} before it read the request.[/]")
            raise typer.Exit(1)
        if time.monotonic() >= deadline:
            err.print(
                f"[yellow]run {name} did not acknowledge within {wait:g}s[/]: it is busy inside "
                f"a stage (step {latest.step}). The request stays queued and applies at its "
                "next stage boundary; `govrun status` shows when."
            )
            raise typer.Exit(1)
        time.sleep(POLL_S)
    assert latest is not None
    who = escape(request.by)
    if outcome.startswith("rejected"):
        raise GovrunError(f"run {entry.run_id} rejected the request: {outcome}")
    if outcome.startswith("ignored"):
        out.print(f"{action} {name}: {escape(outcome)}")
        return
    out.print(f"[bold]{escape(outcome)}[/] {name} at step {latest.step} (by {who})")
    if outcome == "stopping":
        _report_end(registry, latest, deadline)


def _report_end(registry: Registry, entry: RunEntry, deadline: float) -> None:
    """After a stop: say how the run ended, if it does within the wait."""
    while time.monotonic() < deadline:
        latest = registry.reload(entry)
        if latest is None:
            return
        if latest.state == "finished":
            why = f", {latest.failure_class}" if latest.failure_class else ""
            out.print(f"run {escape(latest.run_id)} ended {latest.status}{why}")
            return
        time.sleep(POLL_S)
