"""`govrun run`: the governed loop with a live view, Ctrl-C pause, and a final summary.

Who decides `ask` calls: the person at the terminal (`--approve prompt`, the default on a
terminal), nobody (`deny`, the default without one: no run ever waits for input) or
`auto`; `--approvals RULES.yaml` puts standing decisions in front of whichever it is.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from govrun.cli.channels import bound_consoles, json_channel
from govrun.cli.console import err, handle_errors, out, print_crash, print_error
from govrun.cli.pause_prompt import CtrlC, TerminalOperator

if TYPE_CHECKING:
    from govrun.runtime.govern.approval_rules import ApprovalRules
    from govrun.runtime.govern.guards import Counters
    from govrun.runtime.loop import RunResult
    from govrun.runtime.manifest.schema import Budgets, Manifest
    from govrun.runtime.manifest.telemetry import Telemetry
    from govrun.runtime.ports import Approver, Control, Operator
    from govrun.runtime.trace import events as ev
    from govrun.runtime.trace.writer import Observer


class ApproveMode(StrEnum):
    prompt = "prompt"
    auto = "auto"
    deny = "deny"
    wait = "wait"


class DurabilityMode(StrEnum):
    flush = "flush"
    fsync = "fsync"


@handle_errors
def run(
    manifest: Annotated[Path, typer.Argument(help="The agent manifest.", metavar="AGENT.yaml")],
    input: Annotated[
        str | None,
        typer.Option(
            "-i",
            "--input",
            metavar="TASK",
            help="The task; defaults to the manifest's `input:`. Use @FILE to read it from a file.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            metavar="TRACE.jsonl",
            help="Trace path; default runs/<agent>-<timestamp>.jsonl.",
        ),
    ] = None,
    approve: Annotated[
        ApproveMode | None,
        typer.Option(
            help="Who decides `ask` calls: prompt asks at the terminal (default on one), deny "
            "rejects (default without one), auto approves (recorded as automatic), wait "
            "waits for `govrun approve` / `govrun reject` from elsewhere (and prompts too on "
            "a terminal) until approvals.timeout_s. Default: the manifest's approvals.mode.",
            show_default=False,
        ),
    ] = None,
    approvals: Annotated[
        Path | None,
        typer.Option(
            "--approvals",
            metavar="RULES.yaml",
            help="Standing approval rules tried first: the first rule matching an `ask` call "
            "approves or rejects it; other calls go to --approve.",
        ),
    ] = None,
    approver: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Approver identity recorded with each decision (default: the manifest's "
            "approvals.identity, else user@host).",
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            metavar="KEY.pem",
            help="Sign approvals and the trace seal with this Ed25519 private key (default: "
            "yours from `govrun keys init`, else a key for this run only).",
        ),
    ] = None,
    durability: Annotated[
        DurabilityMode | None,
        typer.Option(help="flush each event, or also fsync it (overrides the manifest)."),
    ] = None,
    json_events: Annotated[
        bool,
        typer.Option(
            "--json", help="Stream events to stdout as JSON lines for other programs; no live view."
        ),
    ] = False,
    otel: Annotated[
        bool,
        typer.Option(
            "--otel",
            help="Export the run live as OpenTelemetry spans to the collector the "
            "OTEL_EXPORTER_OTLP_* variables name (a manifest's `telemetry:` does this "
            "without the flag, and wins). Needs govrun[otel].",
        ),
    ] = False,
) -> None:
    """Run an agent under the governed loop and record every step in a trace."""
    from govrun.cli.commands.ctl import run_registry
    from govrun.runtime.manifest.schema import load_manifest
    from govrun.runtime.run import run_agent
    from govrun.runtime.trace.signing import Signer

    m = load_manifest(manifest)
    task = _read_task(input)
    ui = frontend(
        m, approve=approve, approvals=approvals, approver=approver, json_events=json_events
    )
    signer = Signer.load(key) if key else None
    console = err if json_events else out
    with told(m, console), ui.running():
        result = run_agent(
            m,
            task=task,
            trace_path=output,
            approver=ui.approver,
            operator=ui.operator,
            control=ui.control,
            observers=ui.observers,
            durability=durability.value if durability else None,
            manifest_path=manifest,
            signer=signer,
            registry=run_registry(),
            telemetry=_otel_from_env() if otel and m.telemetry is None else None,
            on_telemetry_problem=lambda said: err.print(f"[yellow]{escape(said)}[/]"),
        )
    _summary(result, m, console)
    raise typer.Exit(0 if result.status == "completed" else 1)


def _otel_from_env() -> Telemetry:
    """`--otel`: export wherever the standard OTLP variables say."""
    from govrun.runtime.manifest.telemetry import Otlp, Telemetry

    return Telemetry(otlp=Otlp())


@contextlib.contextmanager
def told(m: Manifest, console: Console) -> Iterator[None]:
    """However a run ends, the person is told how, where its trace is and its head. Most
    ends return a result; these three raise one: Ctrl-C that stopped the run at once (exit
    130, as for any command Ctrl-C ends), a trace write that failed and an internal error
    (exit 1)."""
    from govrun.runtime.loop import RunCrashed, RunHalted, RunInterrupted

    try:
        yield
    except RunInterrupted as stopped:
        err.print("[yellow]interrupted: the run stopped at once[/]")
        _summary(stopped.result, m, console)
        raise typer.Exit(130) from None
    except RunHalted as halted:
        print_error(halted)
        _summary(halted.result, m, console, sealed=False)
        raise typer.Exit(halted.exit_code) from None
    except RunCrashed as crashed:
        if os.environ.get("GOVRUN_DEBUG"):
            raise
        cause = crashed.__cause__ or crashed
        print_crash(cause, after="The trace records the failure (internal_error). ")
        _summary(crashed.result, m, console)
        raise typer.Exit(1) from None


@dataclass
class Frontend:
    """Everything a live run needs from the terminal: who approves, who answers a pause,
    Ctrl-C, the live view, and which stream carries what. Shared by `run` and the live part
    of `replay`/`resume`."""

    approver: Approver
    operator: Operator
    control: Control
    observers: list[Observer]
    live: Live | None
    interactive: bool
    who: str
    ctrl_c: CtrlC
    json_lines: JsonLines | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """While the run goes: with ``--json`` stdout carries the events alone; govrun's
        consoles keep to their streams while tools print into captures; Ctrl-C pauses;
        the live view draws."""
        with contextlib.ExitStack() as stack:
            if self.json_lines is not None:
                self.json_lines.stream = stack.enter_context(json_channel())
            stack.enter_context(bound_consoles())
            stack.enter_context(self.ctrl_c.installed())
            if self.live is not None:
                stack.enter_context(self.live)
            yield


class JsonLines:
    """The ``--json`` observer: each event as one JSON line on ``stream`` (standard output,
    kept for the events alone while the run goes: see :func:`json_channel`)."""

    def __init__(self) -> None:
        self.stream: TextIO = sys.stdout

    def __call__(self, e: ev.Event) -> None:
        self.stream.write(e.model_dump_json() + "\n")
        self.stream.flush()


def frontend(
    m: Manifest,
    *,
    approve: ApproveMode | None,
    approvals: Path | None,
    approver: str | None,
    json_events: bool,
    view: bool = True,
) -> Frontend:
    """Build the terminal side of a run; refuses ``--approve prompt`` without a terminal
    before anything runs. ``view=False`` logs plainly instead of the live view."""
    from govrun.runtime.govern.approval_rules import load_approval_rules
    from govrun.runtime.govern.approvers import StopOperator, local_identity
    from govrun.runtime.ports import Control

    identity = approver or m.approvals.identity
    who = identity or local_identity()
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not json_events
    configured = ApproveMode(m.approvals.mode) if m.approvals.mode else None
    mode = approve or configured or (ApproveMode.prompt if interactive else ApproveMode.deny)
    if mode is ApproveMode.prompt and not interactive and approve is None:
        mode = ApproveMode.deny  # the manifest's prompt, with nobody at a terminal
    if mode is ApproveMode.prompt and not interactive:
        _refuse_prompt(json_events)
    rules = load_approval_rules(approvals, manifest=m) if approvals else None
    observers: list[Observer] = [_warn_unpinned]
    live: Live | None = None
    json_lines = JsonLines() if json_events else None
    if json_lines is not None:
        observers.append(json_lines)
    elif interactive and view:
        from govrun.cli.live import RunView

        run_view = RunView(manifest=m)
        live = Live(run_view, console=out, refresh_per_second=8, transient=False)
        observers.append(run_view.observe)
    else:
        from govrun.cli.live import PlainLog

        observers.append(PlainLog(err).observe)
    control = Control()
    ctrl_c = CtrlC(control, interactive=interactive, who=who, console=err)
    operator: Operator = (
        TerminalOperator(out, live, who, ctrl_c=ctrl_c) if interactive else StopOperator()
    )
    decider = _approver(
        mode, m, identity=identity, who=who, live=live, rules=rules, interactive=interactive
    )
    return Frontend(
        decider, operator, control, observers, live, interactive, who, ctrl_c, json_lines
    )


def _warn_unpinned(event: Any) -> None:
    """Once per server, on standard error: its tools are used without a pin."""
    if getattr(event, "type", None) == "mcp_server" and getattr(event, "lock", None) == "unpinned":
        err.print(
            f"[yellow]warning:[/] MCP server {escape(event.server)!r}: its tools are not pinned, "
            "so a changed description or schema would go unnoticed; pin them with "
            "`govrun mcp pin AGENT.yaml`"
        )


def _refuse_prompt(json_events: bool) -> None:
    """``--approve prompt`` where nobody can answer: refuse before anything runs."""
    from govrun.runtime.errors import GovrunError

    choices = "--approvals RULES.yaml for standing decisions, --approve deny or --approve auto"
    if json_events:
        raise GovrunError(
            "--approve prompt cannot be used with --json: standard output carries the events",
            hint=f"Use {choices}.",
        )
    ttys = {"standard input": sys.stdin.isatty(), "standard output": sys.stdout.isatty()}
    missing = [name for name, tty in ttys.items() if not tty]
    which = f"{missing[0]} is" if len(missing) == 1 else "neither standard input nor output is"
    raise GovrunError(
        f"--approve prompt needs a terminal to ask on, but {which} a terminal",
        hint=f"Nobody could answer, so the run would wait forever. Use {choices} "
        "(deny is the default without a terminal).",
    )


def _approver(
    mode: ApproveMode,
    m: Manifest,
    *,
    identity: str | None,
    who: str,
    live: Live | None,
    rules: ApprovalRules | None,
    interactive: bool = False,
) -> Approver:
    """The approver for ``mode``, behind the standing rules if any. (The loop puts the
    manifest's ``approvals.timeout_s`` on every request.)"""
    from govrun.runtime.govern.approvers import approver_for

    on_timeout = m.approvals.on_timeout.model_dump()
    if mode is ApproveMode.prompt:
        from govrun.cli.approval_prompt import TerminalApprover

        decider: Approver = TerminalApprover(out, identity=who, live=live, on_timeout=on_timeout)
    elif mode is ApproveMode.wait:
        decider = _waiting_approver(m, who, live, on_timeout, interactive)
    else:
        decider = approver_for(mode.value, identity)
    if rules is not None:
        from govrun.runtime.govern.approval_rules import RulesApprover

        decider = RulesApprover(rules, manifest=m, fallback=decider)
    return decider


def _waiting_approver(
    m: Manifest, who: str, live: Live | None, on_timeout: dict[str, str], interactive: bool
) -> Approver:
    """`--approve wait`: decisions from elsewhere, and the inline prompt at the same time
    when there is a terminal."""
    from govrun.runtime.ops.approvals import waiting_approver

    prompt = None
    if interactive:
        from govrun.cli.approval_prompt import TerminalApprover

        prompt = TerminalApprover(out, identity=who, live=live, on_timeout=on_timeout)
    return waiting_approver(m, identity=who, prompt=prompt)


def _read_task(value: str | None) -> str | None:
    if value is None or not value.startswith("@"):
        return value
    from govrun.runtime.manifest.inputs import TASK, read_text

    return read_text(value[1:], TASK)


STATUS = {"completed": "bold green", "failed": "bold red", "stopped": "bold yellow"}


def _budget_usage(c: Counters, b: Budgets) -> str:
    """`used/limit` for every budget the manifest sets."""
    parts = [f"steps {c.steps}/{b.max_steps}"]
    for label, used, limit, fmt in (
        ("model calls", c.model_calls, b.max_model_calls, "{:g}"),
        ("tool calls", c.tool_calls, b.max_tool_calls, "{:g}"),
        ("tokens", c.tokens, b.max_tokens, "{:,}"),
        ("cost", c.cost_usd, b.max_cost_usd, "${:.4f}"),
        ("wall s", c.elapsed_s, b.max_wall_time_s, "{:.1f}"),
    ):
        if limit is not None:
            parts.append(f"{label} {fmt.format(used)}/{fmt.format(limit)}")
    parts += [f"{tool} {c.per_tool[tool]}/{n}" for tool, n in b.max_tool_calls_per_tool.items()]
    return ", ".join(parts)


def _summary(
    result: RunResult, manifest: Manifest, console: Console, *, sealed: bool = True
) -> None:
    """The run's outcome, then its trace's head and how to check it later. ``sealed=False``:
    the trace ends where writing failed, without its seal; its head is the last whole line."""
    c = result.counters
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan")
    grid.add_column()
    status = f"[{STATUS.get(result.status, 'bold')}]{result.status.upper()}[/]"
    if result.failure_class:
        status += f"  [red]{result.failure_class}[/]"
    grid.add_row("status", status)
    grid.add_row("reason", escape(result.reason))
    if result.final_answer:
        grid.add_row("answer", escape(result.final_answer.strip()[:400]))
    grid.add_row(
        "steps",
        f"{result.steps}  ({c.model_calls} model calls, {c.tool_calls} tool "
        f"calls, {c.denials} denied)",
    )
    grid.add_row("tokens", f"{c.tokens:,}  cost ${c.cost_usd:.4f}  time {c.elapsed_s:.2f}s")
    grid.add_row("budgets", _budget_usage(c, manifest.budgets))
    grid.add_row("trace", escape(result.trace_path))
    if result.workspace is not None:  # where the run's files are: its copy of the template
        from govrun.runtime.manifest.workspace import workspace_folder

        grid.add_row("workspace", escape(f"{workspace_folder(result.trace_path)}/"))
    console.print(
        Panel(
            grid,
            title=f"govrun run · {escape(result.run_id)}",
            title_align="left",
            border_style=STATUS.get(result.status, "white").split()[-1],
        )
    )
    console.print(f"head {result.head}", soft_wrap=True, highlight=False)
    unsealed = "" if sealed else " (intact up to here, but never sealed)"
    console.print(
        f"[dim]verify later with: govrun verify {escape(result.trace_path)} --head "
        f"{result.head}{unsealed}[/]",
        soft_wrap=True,
    )
