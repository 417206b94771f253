"""The live run view: what is it doing now, what did it do lately, what is in flight.

An observer folds events into :class:`RunView`; rich's ``Live`` re-renders it several
times a second from its own thread, so spinners turn and elapsed times tick even while a
tool or the model is busy. Without a terminal the same events become plain log lines.
"""

from __future__ import annotations

import shlex
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from govrun.runtime.manifest.schema import Manifest
from govrun.runtime.trace import events as ev

EFFECT_STYLE = {"allow": "green", "deny": "red", "ask": "yellow"}


@dataclass
class StepRow:
    step: int
    action: str = ""
    effect: str = ""
    outcome: str = ""
    style: str = ""


@dataclass
class RunView:
    """State of a run as the operator sees it, built only from events."""

    manifest: Manifest
    history: int = 8
    agent: str = ""
    run_id: str = ""
    step: int = 0
    activity: str = "starting"
    activity_since: float = field(default_factory=time.monotonic)
    in_flight: str | None = None
    notice: str | None = None
    steps: deque[StepRow] = field(default_factory=deque)
    model_calls: int = 0
    tool_calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    started: float = field(default_factory=time.monotonic)
    finished: bool = False
    _calls: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    """call id -> (tool, the call as it runs): tool_started names only the call."""

    def observe(self, e: ev.Event) -> None:
        match e:
            case ev.RunStarted():
                self.agent, self.run_id = e.agent, e.run_id
            case ev.ModelRequest():
                if e.step != self.step:  # a step begins with its first request
                    self.step = e.step
                    self._row(e.step)
                self._doing(
                    f"asking {e.model}" + (f" (attempt {e.attempt})" if e.attempt > 1 else "")
                )
            case ev.ModelResponse():
                self.model_calls += 1
                self.tokens += e.usage.get("total_tokens", 0) or (
                    e.usage.get("prompt_tokens", 0) + e.usage.get("completion_tokens", 0)
                )
                self.cost_usd += e.cost_usd
                if e.error:
                    self._doing(f"model error: {e.error}")
                elif not e.tool_calls:
                    self._row(e.step).action = "final answer"
            case ev.ToolCall(decision=d):
                self._calls[e.call_id] = (e.tool, e.canonical or e.arguments or {})
                row = self._row(e.step)
                row.action = _join(row.action, e.tool)
                row.effect = _join(row.effect, d.effect)
                if d.effect == "deny":
                    row.outcome = _join(row.outcome, f"denied: {d.reason}")
                    row.style = "red"
            case ev.ApprovalRequested():
                self._doing(f"awaiting approval for {e.tool}")
            case ev.ApprovalDecided():
                self._row(e.step).outcome = _join(
                    self._row(e.step).outcome, f"{e.decision} by {e.approver}"
                )
            case ev.ToolStarted():
                tool, arguments = self._calls.get(e.call_id, (e.tool or e.call_id, {}))
                self.in_flight = f"{tool} {_args(arguments)}"
                self._doing(f"running {tool}")
            case ev.ToolFinished():
                self.in_flight = None
                self.tool_calls += 1
                row = self._row(e.step)
                row.outcome = _join(row.outcome, "ok" if e.ok else f"{e.failure_class}")
                if not e.ok:
                    row.style = "red"
            case ev.Verification(passed=False):
                row = self._row(e.step)
                row.outcome = _join(row.outcome, f"{e.check} failed")
                row.style = "red"
            case ev.Interrupt():
                self.notice = f"{e.action}: {e.rule} — {e.reason}"
            case ev.RunFinished():
                self.finished = True
                self._doing(f"finished: {e.status}")

    def _row(self, step: int) -> StepRow:
        if not self.steps or self.steps[-1].step != step:
            self.steps.append(StepRow(step))
            while len(self.steps) > self.history:
                self.steps.popleft()
        return self.steps[-1]

    def _doing(self, what: str) -> None:
        self.activity, self.activity_since = what, time.monotonic()

    def __rich__(self) -> RenderableType:
        now = time.monotonic()
        head = Table.grid(expand=True)
        head.add_column()
        head.add_column(justify="right")
        head.add_row(
            Text.from_markup(f"[bold]{escape(self.agent)}[/] · step {self.step}"),
            Text(f"{now - self.started:6.1f}s", style="dim"),
        )
        doing = Table.grid(padding=(0, 1))
        doing.add_row(
            Spinner("dots", style="cyan"),
            Text(f"{self.activity}  ({now - self.activity_since:.1f}s)"),
        )
        if self.in_flight:
            doing.add_row(Text("⇢", style="yellow"), Text(f"in flight: {self.in_flight}"))
        if self.notice:
            doing.add_row(Text("!", style="bold yellow"), Text(self.notice, style="yellow"))
        return Panel(
            Group(head, doing, self._history(), self._gauges()),
            title=f"govrun run · {escape(self.run_id)}",
            title_align="left",
            border_style="cyan",
        )

    def _history(self) -> Table:
        table = Table(expand=True, box=None, show_edge=False, pad_edge=False)
        table.add_column("step", justify="right", width=4)
        table.add_column("action", ratio=2, no_wrap=True, overflow="ellipsis")
        table.add_column("policy", width=12, no_wrap=True)
        table.add_column("outcome", ratio=3, no_wrap=True, overflow="ellipsis")
        for row in self.steps:
            effect = Text(row.effect, style=EFFECT_STYLE.get(row.effect.split(",")[0], ""))
            table.add_row(
                str(row.step), escape(row.action), effect, Text(row.outcome, style=row.style)
            )
        return table

    def _gauges(self) -> Table:
        b = self.manifest.budgets
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(width=24)
        grid.add_column(no_wrap=True)
        for label, used, limit, fmt in (
            ("steps", self.step, b.max_steps, "{:g}"),
            ("model calls", self.model_calls, b.max_model_calls, "{:g}"),
            ("tool calls", self.tool_calls, b.max_tool_calls, "{:g}"),
            ("tokens", self.tokens, b.max_tokens, "{:,}"),
            ("cost", self.cost_usd, b.max_cost_usd, "${:.4f}"),
            ("wall s", time.monotonic() - self.started, b.max_wall_time_s, "{:.0f}"),
        ):
            if limit is None:
                grid.add_row(label, Text(""), fmt.format(used))
                continue
            style = "red" if used >= limit else "yellow" if used >= 0.8 * limit else "green"
            grid.add_row(
                label,
                ProgressBar(
                    total=float(limit), completed=float(used), complete_style=style, width=24
                ),
                f"{fmt.format(used)} / {fmt.format(limit)}",
            )
        return grid


class PlainLog:
    """One line per notable event, for pipes and CI logs (no terminal)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def observe(self, e: ev.Event) -> None:
        line = _plain(e)
        if line:
            self.console.print(line, highlight=False, soft_wrap=True)


def _plain(e: ev.Event) -> str | None:
    match e:
        case ev.RunStarted():
            return f"run {e.run_id}: agent {e.agent}"
        case ev.ModelResponse(error=str() as error):
            return f"step {e.step}: model attempt {e.attempt} failed: {error}"
        case ev.ToolCall(decision=d):
            return f"step {e.step}: {e.tool} → {d.effect} ({d.rule or 'default'}: {d.reason})"
        case ev.ApprovalDecided():
            return f"step {e.step}: {e.tool} {e.decision} by {e.approver} ({e.via})"
        case ev.ToolFinished():
            status = "ok" if e.ok else f"{e.failure_class}: {e.error}"
            return f"step {e.step}: {e.tool} finished: {status}"
        case ev.Verification(passed=False):
            return f"step {e.step}: check {e.check} failed: {e.detail}"
        case ev.Interrupt():
            return f"step {e.step}: interrupt {e.rule} → {e.action}: {e.reason}"
    return None


def _join(a: str, b: str) -> str:
    return f"{a}, {b}" if a else b


def _args(arguments: dict) -> str:
    """A call in one line; a command's argv reads as the command line it is."""
    shown = dict(arguments)
    command = shown.get("command")
    if isinstance(command, list) and all(isinstance(w, str) for w in command):
        shown["command"] = shlex.join(command)
        shown.pop("paths", None)
    text = ", ".join(f"{k}={v!r}" for k, v in shown.items())
    return text if len(text) <= 60 else text[:59] + "…"
