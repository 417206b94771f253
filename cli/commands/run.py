"""`govrun run`: the governed loop with a live view, Ctrl-C pause, and a final summary.

Who decides `ask` calls: the person at the terminal (`--approve prompt`, the default on a
terminal), nobody (`deny`, the default without one: no run ever waits for input) or
`auto`; `--approvals RULES.yaml` puts standing decisions in front of whichever it is.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.prompt import Prompt
from rich.table import Table

from govrun.cli.console import err, handle_errors, live_paused, out

if TYPE_CHECKING:
    from govrun.runtime.govern.approval_rules import ApprovalRules
    from govrun.runtime.govern.guards import Counters
    from govrun.runtime.loop import RunResult
    from govrun.runtime.manifest.schema import Budgets, Manifest
    from govrun.runtime.ports import Approver, Control, Operator
    from govrun.runtime.trace.writer import Observer


class ApproveMode(StrEnum):
    prompt = "prompt"
    auto = "auto"
    deny = "deny"


class DurabilityMode(StrEnum):
    flush = "flush"
    fsync = "fsync"


class TerminalOperator:
    """Asks the person at the terminal whether to resume a paused run."""

    def __init__(self, console: Console, live: Live | None, identity: str) -> None:
        self.console, self.live, self.identity = console, live, identity

    def on_pause(self, reason: str) -> Literal["resume", "stop"]:
        with live_paused(self.live):
            self.console.print(
                Panel(f"[bold yellow]Paused:[/] {escape(reason)}", border_style="yellow")
            )
            choice = Prompt.ask(
                "[bold]r[/]esume or [bold]s[/]top?",
                choices=["r", "s"],
                default="s",
                console=self.console,
            )
        return "resume" if choice == "r" else "stop"

    def on_pause_or(
        self, reason: str, answered: Callable[[], bool]
    ) -> Literal["resume", "stop"] | None:
        """A pause `govrun ctl` asked for: the prompt, until it is answered here or there
        (``answered()`` true: None)."""
        from govrun.cli.pause_prompt import ask_until

        with live_paused(self.live):
            return ask_until(self.console, reason, answered)


@contextlib.contextmanager
def _ctrl_c_pauses(control, interactive: bool, who: str) -> Iterator[None]:
    """First Ctrl-C asks the loop to pause at its next stage boundary (recorded); a second
    one before that interrupts at once. Without a terminal Ctrl-C requests a stop."""

    def handler(signum: int, frame: object) -> None:
        if control.requested is not None:
            raise KeyboardInterrupt
        control.request("pause" if interactive else "stop", by=who)
        err.print(
            "[yellow]Ctrl-C: pausing after the current stage (Ctrl-C again to stop now)[/]"
            if interactive
            else "[yellow]Ctrl-C: stopping[/]"
        )

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@handle_errors
def run(
    manifest: Annotated[Path, typer.Argument(help="The agent manifest.", metavar="AGENT.yaml")],
    input: Annotated[
        str | None,
        typer.Option(
            "-i",
            "--input",
            help="The task; defaults to the manifest's `input:`. Use @FILE to read it from a file.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Trace path; default runs/<agent>-<timestamp>.jsonl."),
    ] = None,
    approve: Annotated[
        ApproveMode | None,
        typer.Option(
            help="Who decides `ask` calls: prompt asks at the terminal (default on one), deny "
            "rejects (default without one), auto approves (recorded as automatic).",
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
            help="Approver identity recorded with each decision (default: the manifest's "
            "approvals.identity, else user@host)."
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
    with ui.running():
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
        )
    _summary(result, m, err if json_events else out)
    raise typer.Exit(0 if result.status == "completed" else 1)


@dataclass
class Frontend:
    """Everything a live run needs from the terminal: who approves, who answers a pause,
    Ctrl-C, and the live view. Shared by `run` and the live part of `replay`/`resume`."""

    approver: Approver
    operator: Operator
    control: Control
    observers: list[Observer]
    live: Live | None
    interactive: bool
    who: str

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        with (
            _ctrl_c_pauses(self.control, self.interactive, self.who),
            self.live or contextlib.nullcontext(),
        ):
            yield


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
    mode = approve or (ApproveMode.prompt if interactive else ApproveMode.deny)
    if mode is ApproveMode.prompt and not interactive:
        _refuse_prompt(json_events)
    rules = load_approval_rules(approvals, manifest=m) if approvals else None
    observers: list[Observer] = []
    live: Live | None = None
    if json_events:
        observers.append(_json_streamer())
    elif interactive and view:
        from govrun.cli.live import RunView

        run_view = RunView(manifest=m)
        live = Live(run_view, console=out, refresh_per_second=8, transient=False)
        observers.append(run_view.observe)
    else:
        from govrun.cli.live import PlainLog

        observers.append(PlainLog(err).observe)
    operator = TerminalOperator(out, live, who) if interactive else StopOperator()
    decider = _approver(mode, m, identity=identity, who=who, live=live, rules=rules)
    return Frontend(decider, operator, Control(), observers, live, interactive, who)


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
) -> Approver:
    """The approver for ``mode``, behind the standing rules if any. (The loop puts the
    manifest's ``approvals.timeout_s`` on every request.)"""
    from govrun.runtime.govern.approvers import approver_for

    if mode is ApproveMode.prompt:
        from govrun.cli.approval_prompt import TerminalApprover

        on_timeout = m.approvals.on_timeout.model_dump()
        decider: Approver = TerminalApprover(out, identity=who, live=live, on_timeout=on_timeout)
    else:
        decider = approver_for(mode.value, identity)
    if rules is not None:
        from govrun.runtime.govern.approval_rules import RulesApprover

        decider = RulesApprover(rules, manifest=m, fallback=decider)
    return decider


def _read_task(value: str | None) -> str | None:
    if value is None or not value.startswith("@"):
        return value
    from govrun.runtime.manifest.inputs import TASK, read_text

    return read_text(value[1:], TASK)


def _json_streamer():
    def emit(e) -> None:
        sys.stdout.write(e.model_dump_json() + "\n")
        sys.stdout.flush()

    return emit


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


def _summary(result: RunResult, manifest: Manifest, console: Console) -> None:
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
    console.print(
        Panel(
            grid,
            title=f"govrun run · {escape(result.run_id)}",
            title_align="left",
            border_style=STATUS.get(result.status, "white").split()[-1],
        )
    )
    console.print(f"head {result.head}", soft_wrap=True, highlight=False)
    console.print(
        f"[dim]verify later with: govrun verify {escape(result.trace_path)} --head "
        f"{result.head}[/]",
        soft_wrap=True,
    )
