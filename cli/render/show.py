"""How ``govrun show`` reports: one screen, the outcome first."""

from __future__ import annotations

from pathlib import Path

from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from govrun.cli.console import out
from govrun.runtime.trace.verify import VerifyReport
from govrun.runtime.views.summary import RunSummary

STATUS_STYLE = {
    "completed": "bold green",
    "failed": "bold red",
    "stopped": "bold yellow",
    "unfinished": "bold magenta",
}


def render_summary(s: RunSummary, path: Path, report: VerifyReport) -> None:
    status = Text(s.status.upper(), style=STATUS_STYLE.get(s.status, "bold"))
    if s.failure_class:
        status.append(f"  {s.failure_class}", style="red")
    if s.reason:
        status.append(f"  {s.reason}", style="dim")

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold cyan", no_wrap=True)
    facts.add_column()
    facts.add_row("agent", escape(s.agent))
    facts.add_row("run", escape(s.run_id))
    facts.add_row("status", status)
    if s.input:
        facts.add_row("input", escape(_clip(s.input, 160)))
    facts.add_row("steps", f"{s.steps}  ({s.events} events)")
    facts.add_row(
        "model calls",
        f"{s.model_calls}"
        + (f"  ({s.model_errors} failed attempts)" if s.model_errors else "")
        + (
            "  [red]refused: "
            + ", ".join(f"{kind}×{n}" for kind, n in s.refused.most_common())
            + "[/]"
            if s.refused
            else ""
        ),
    )
    tools = ", ".join(f"{escape(k)}×{v}" for k, v in s.tools_used.most_common())
    facts.add_row(
        "tool calls",
        f"{s.tool_calls}"
        + (f"  ({tools})" if tools else "")
        + (f"  [red]{s.tool_errors} failed[/]" if s.tool_errors else ""),
    )
    facts.add_row(
        "tokens",
        f"{s.tokens:,}  ({s.prompt_tokens:,} in / {s.completion_tokens:,} out)"
        + ("  [dim]partly estimated: a reply reported no usage[/]" if s.estimated else ""),
    )
    if s.models:
        facts.add_row(
            "models",
            "  ".join(
                f"{escape(name)}: {u.get('model_calls', 0)} calls, {u.get('tokens', 0):,} "
                f"tokens, ${u.get('cost_usd', 0.0):.4f}"
                for name, u in s.models.items()
            ),
        )
    if s.routes:
        facts.add_row("routing", escape("; ".join(s.routes[:6])))
    if s.compactions:
        facts.add_row("compaction", escape("; ".join(s.compactions[:4])))
    facts.add_row("cost", f"${s.cost_usd:.4f}")
    facts.add_row(
        "verification",
        f"{s.verifications_passed} passed"
        + (f", [red]{s.verifications_failed} failed[/]" if s.verifications_failed else ""),
    )
    approvals = ", ".join(f"{k}×{v}" for k, v in sorted(s.approvals.items())) or "none"
    facts.add_row("approvals", approvals)
    facts.add_row("denials", str(len(s.denials)) if s.denials else "none")
    duration = s.duration_s
    facts.add_row("duration", f"{duration:.2f}s" if duration is not None else "?")
    facts.add_row("started", s.started or "?")
    if s.workspace is not None:
        facts.add_row("workspace", escape(s.workspace))
    facts.add_row("integrity", _integrity(report))
    if s.final_answer:
        facts.add_row("answer", escape(_clip(s.final_answer, 240)))

    parts: list = [facts]
    if s.denials:
        table = Table(title="denied calls", title_justify="left", expand=False)
        for col in ("step", "tool", "rule", "reason"):
            table.add_column(col)
        for d in s.denials[:8]:
            table.add_row(
                str(d.step),
                escape(d.tool),
                escape(d.rule or "default"),
                escape(_clip(d.reason, 80)),
            )
        if len(s.denials) > 8:
            table.caption = f"… and {len(s.denials) - 8} more"
        parts.append(table)
    if s.interrupts:
        parts.append(Text("interrupts: " + "; ".join(s.interrupts[:4]), style="yellow"))
    if s.torn is not None:
        parts.append(
            Text(
                f"The trace ends in a torn line (line {s.torn.line}, {s.torn.size} "
                "bytes): the run crashed mid-write. Everything before it is shown.",
                style="magenta",
            )
        )
    elif s.status == "unfinished":
        parts.append(
            Text(
                "No run_finished: the run crashed, was killed, or is still running.",
                style="magenta",
            )
        )
    out.print(
        Panel(
            Group(*parts),
            title=f"govrun show · {escape(str(path))}",
            title_align="left",
            border_style=STATUS_STYLE.get(s.status, "white"),
        )
    )


def _integrity(report: VerifyReport) -> Text:
    """The trace's verdict in one line: a summary of an altered trace must say so."""
    p = report.problem
    if p is None:
        return Text(f"✓ intact and complete, head {report.head[:16]}…", style="green")
    if p.is_crash:
        return Text(
            f"✓ intact up to seq {report.last_seq}, then ends early ({p.kind})", style="magenta"
        )
    return Text(
        f"✗ {p.kind.replace('_', ' ')}: {p.message} — run `govrun verify`", style="bold red"
    )


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
