"""`govrun replay` and `govrun resume`: re-run recorded runs through the same loop.

Strict replay proves a trace reproduces; with `--manifest` it shows which decisions a new
policy would change (over one trace or a folder of them); `--live-from` forks a run and
`resume` continues a crashed or stopped one, both live after the recorded part.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from govrun.cli.commands.replay_many import replay_target
from govrun.cli.commands.run import ApproveMode, Frontend, _summary, frontend, told
from govrun.cli.console import err, handle_errors, out
from govrun.cli.jobs import default_jobs

if TYPE_CHECKING:
    from govrun.runtime.manifest.schema import Manifest
    from govrun.runtime.ports import Model
    from govrun.runtime.replayer.session import InFlightChoice, LivePorts, ReplayOutcome
    from govrun.runtime.trace.signing import Signer

TracesArg = Annotated[
    list[Path], typer.Argument(help="Recorded traces (JSONL).", metavar="TRACE.jsonl...")
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "-o",
        "--output",
        metavar="PATH",
        help="Where the new trace goes (a folder when replaying several); default "
        "runs/<agent>-replay-<timestamp>.jsonl.",
    ),
]
ManifestOpt = Annotated[
    Path | None,
    typer.Option(
        "--manifest",
        metavar="AGENT.yaml",
        help="Counterfactual: evaluate policy, standing approvals, budgets, interrupts and "
        "verification under this manifest; model replies still come from the record.",
    ),
]
ApprovalsOpt = Annotated[
    Path | None,
    typer.Option(
        "--approvals",
        metavar="RULES.yaml",
        help="Standing approval rules: decide `ask` calls by them (counterfactual and live).",
    ),
]
ApproveOpt = Annotated[
    ApproveMode | None,
    typer.Option(
        help="Who decides `ask` calls once live: prompt (default on a terminal), deny "
        "(default without one) or auto.",
        show_default=False,
    ),
]
ApproverOpt = Annotated[
    str | None,
    typer.Option(metavar="NAME", help="Approver identity recorded for live decisions."),
]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key", metavar="KEY.pem", help="Sign live approvals and the seal with this key."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]
JobsOpt = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        metavar="N",
        min=1,
        help="Replay this many traces at once, each in a worker process (default: one per "
        "core; 1: one after the other, in this process). The report is the same.",
        show_default=False,
    ),
]


@handle_errors
def replay(
    traces: TracesArg,
    output: OutputOpt = None,
    manifest: ManifestOpt = None,
    live_from: Annotated[
        int | None,
        typer.Option(
            "--live-from",
            metavar="STEP",
            min=1,
            help="Fork: replay the steps before STEP from the record, then continue with the "
            "live model and tools into a new trace that names its parent.",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="With --manifest: compare event for event instead (does the trajectory stay "
            "the same under the changed manifest? For golden traces in CI).",
        ),
    ] = False,
    live_tools: Annotated[
        bool,
        typer.Option(
            "--live-tools",
            help="Counterfactual: run for real a call the record never ran (it was denied or "
            "rejected before), instead of stopping the replay there.",
        ),
    ] = False,
    approvals: ApprovalsOpt = None,
    approve: ApproveOpt = None,
    approver: ApproverOpt = None,
    key: KeyOpt = None,
    json_output: JsonOpt = False,
    jobs: JobsOpt = None,
) -> None:
    """Re-run recorded runs deterministically from their traces: no model is called and no
    tool runs. Exit 0 when every replay reproduces its record (counterfactual: no decision
    changed), 1 with the first divergence or the changed decisions, 2 on bad input."""
    from govrun.runtime.errors import GovrunError
    from govrun.runtime.govern.approval_rules import load_approval_rules
    from govrun.runtime.manifest.schema import load_manifest

    if live_from is not None and len(traces) > 1:
        raise GovrunError("--live-from forks one run; give a single trace.")
    if strict and manifest is None:
        raise GovrunError("--strict goes with --manifest: without one, replay is strict already.")
    if live_tools and (manifest is None or strict):
        raise GovrunError(
            "--live-tools applies to a counterfactual replay (with --manifest): a strict "
            "replay never runs a tool."
        )
    new = load_manifest(manifest) if manifest is not None else None
    rules = load_approval_rules(approvals, manifest=new) if approvals and new else None
    if approvals and new is None and live_from is None:
        raise GovrunError("--approvals needs --manifest (counterfactual) or --live-from (fork).")
    if live_from is not None:
        _fork(traces[0], output, new, live_from, approve, approvals, approver, key, json_output)
        return
    from govrun.cli.commands.replay_many import Replays, replay_all
    from govrun.cli.render.replay import render_replays
    from govrun.runtime.replayer.summary import ReplaySummary

    replays = Replays(output, new, strict, live_tools, rules, several=len(traces) > 1)
    outcomes = replay_all(replays, traces, jobs=jobs or default_jobs())
    render_replays(outcomes, as_json=json_output)
    if any(isinstance(o, str) for o in outcomes):
        raise typer.Exit(2)
    ok = all(isinstance(o, ReplaySummary) and o.unchanged for o in outcomes)
    raise typer.Exit(0 if ok else 1)


def _live_ports(m: Manifest, ui: Frontend, in_flight: InFlight | None = None) -> LivePorts:
    from govrun.runtime.models import build_model
    from govrun.runtime.replayer.session import LivePorts

    def model() -> Model:  # built only when the run goes live
        return build_model(m.model, base_dir=m.base_dir, env=os.environ)

    def named(name: str) -> Model:
        return build_model(m.models[name], base_dir=m.base_dir, env=os.environ)

    return LivePorts(
        model=model,
        named=named,
        approver=ui.approver,
        operator=ui.operator,
        control=ui.control,
        in_flight=_in_flight_decider(ui, in_flight),
    )


def _fork(
    trace: Path,
    output: Path | None,
    new: Manifest | None,
    live_from: int,
    approve: ApproveMode | None,
    approvals: Path | None,
    approver: str | None,
    key: Path | None,
    json_output: bool,
) -> None:
    from govrun.cli.render.integrity import check_integrity
    from govrun.runtime.errors import GovrunError
    from govrun.runtime.replayer.session import recorded_manifest
    from govrun.runtime.replayer.session import replay as run_replay
    from govrun.runtime.trace.record import Record

    check_integrity(trace, doing="fork", refuse_altered=True)
    record = Record.load(trace)
    last = record.steps()
    if live_from > last + 1:
        raise GovrunError(
            f"--live-from {live_from} is past the recorded run, which has {last} steps; "
            f"fork from 1 to {last + 1}."
        )
    m = new or recorded_manifest(record)
    ui = frontend(
        m, approve=approve, approvals=approvals, approver=approver, json_events=json_output
    )
    target = replay_target(output, record, several=False, n=1, label="fork")
    from govrun.runtime.run import check_secrets

    check_secrets(m, os.environ)  # it goes on live, as a run starts
    with told(m, err if json_output else out), ui.running(), _watched(new, target) as watch:
        outcome = run_replay(
            record,
            target,
            manifest=new,
            live_from=live_from,
            live=_live_ports(m, ui),
            signer=_signer(key),
            observers=[*ui.observers, *watch],
            secrets=m.secret_values(os.environ),
        )
    _report_live(outcome, m, "forked", json_output)


def _watched(new: Manifest | None, target: Path) -> contextlib.AbstractContextManager[list[Any]]:
    """A fork or resume goes live: exported as it goes when its --manifest says
    `telemetry:` (the recorded manifest never holds the section)."""
    from govrun.runtime.views.telemetry.live import watching

    def say(text: str) -> None:
        err.print(f"[yellow]{escape(text)}[/]")

    return watching(new.telemetry if new else None, trace_path=target, env=os.environ, say=say)


class InFlight(StrEnum):
    rerun = "rerun"
    skip = "skip"


@handle_errors
def resume(
    trace: Annotated[
        Path, typer.Argument(help="The crashed or stopped run's trace.", metavar="TRACE.jsonl")
    ],
    output: OutputOpt = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            metavar="AGENT.yaml",
            help="Continue under this manifest (e.g. with a higher budget) instead of the "
            "recorded one.",
        ),
    ] = None,
    in_flight: Annotated[
        InFlight | None,
        typer.Option(
            "--in-flight",
            help="What to do with a call that was running when the run crashed (its effect "
            "is unknown): rerun or skip it. Asked on a terminal; required without one.",
            show_default=False,
        ),
    ] = None,
    approvals: ApprovalsOpt = None,
    approve: ApproveOpt = None,
    approver: ApproverOpt = None,
    key: KeyOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Continue a crashed or stopped run: replay its record to the last complete step (a
    crash: to where it ends), then go on live, into a new trace that names its parent."""
    from govrun.cli.render.integrity import check_integrity
    from govrun.runtime.errors import GovrunError
    from govrun.runtime.manifest.schema import load_manifest
    from govrun.runtime.replayer.session import recorded_manifest
    from govrun.runtime.replayer.session import replay as run_replay
    from govrun.runtime.trace.record import Record

    check_integrity(trace, doing="resume", refuse_altered=True)
    record = Record.load(trace)
    finished = record.run_finished
    if finished is not None and finished.get("status") == "completed":
        raise GovrunError(
            f"{trace}: the run completed; there is nothing to resume.",
            hint="`govrun replay --live-from STEP` forks a finished run from a step.",
        )
    new = load_manifest(manifest) if manifest is not None else None
    m = new or recorded_manifest(record)
    ui = frontend(
        m, approve=approve, approvals=approvals, approver=approver, json_events=json_output
    )
    pending = record.truncated(record.resume_point()).in_flight()
    if pending and in_flight is None and not ui.interactive:
        names = ", ".join(f"{e['tool']} (step {e['step']})" for e in pending)
        if m.on_in_flight in ("rerun", "skip"):  # the manifest says, for runs nobody watches
            in_flight = InFlight(m.on_in_flight)
        else:
            said = " (on_in_flight: fail)" if m.on_in_flight == "fail" else ""
            raise GovrunError(
                f"{names} was in flight when the run crashed, and its outcome is unknown; "
                f"nobody is at a terminal to decide whether to run it again{said}.",
                hint="Pass --in-flight rerun or --in-flight skip, or set `on_in_flight:` "
                "in the manifest.",
            )
    target = replay_target(output, record, several=False, n=1, label="resume")
    from govrun.runtime.run import check_secrets

    check_secrets(m, os.environ)  # it goes on live, as a run starts
    with told(m, err if json_output else out), ui.running(), _watched(new, target) as watch:
        outcome = run_replay(
            record,
            target,
            manifest=new,
            resume=True,
            live=_live_ports(m, ui, in_flight),
            signer=_signer(key),
            observers=[*ui.observers, *watch],
            secrets=m.secret_values(os.environ),
        )
    if finished is not None and finished.get("failure_class") == "budget_exceeded" and not new:
        err.print(
            "[dim]the run had stopped on a budget; resuming under the same manifest meets it "
            "again — pass --manifest with a higher budget[/]"
        )
    _report_live(outcome, m, "resumed", json_output)


def _in_flight_decider(
    ui: Frontend, flag: InFlight | None
) -> Callable[[dict[str, Any]], tuple[InFlightChoice, str]]:
    def decide(call: dict[str, Any]) -> tuple[InFlightChoice, str]:
        if flag is not None:
            return flag.value, f"{ui.who} (--in-flight {flag.value})"
        from rich.markup import escape
        from rich.prompt import Prompt

        from govrun.cli.console import live_paused
        from govrun.cli.terminal import prompt_mode

        # Ctrl-C here stops the run at once (the loop records it), never arms a pause.
        with live_paused(ui.live), prompt_mode(sys.stdin.fileno()):
            out.print(
                f"[bold yellow]{escape(str(call.get('tool')))}[/] (step {call.get('step')}) was "
                "running when the run crashed: whether it took effect is unknown."
            )
            choice = Prompt.ask(
                "[bold]r[/]e-run it or [bold]s[/]kip it?", choices=["r", "s"], console=out
            )
        return ("rerun" if choice == "r" else "skip"), ui.who

    return decide


def _signer(key: Path | None) -> Signer:
    from govrun.runtime.trace.signing import Signer, load_default_signer

    return Signer.load(key) if key else load_default_signer()


def _report_live(outcome: ReplayOutcome, m: Manifest, verb: str, json_output: bool) -> None:
    from govrun.cli.render.replay import render_live_continuation
    from govrun.runtime.replayer.summary import summarize

    render_live_continuation(summarize(outcome), verb, as_json=json_output)
    console = err if json_output else out
    if not json_output:
        _summary(outcome.result, m, console)
    raise typer.Exit(0 if outcome.result.status == "completed" else 1)
