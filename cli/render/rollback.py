"""How `govrun rollback` reports: one row per effect undone (or not), then the verdict."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from govrun.cli.console import out
from govrun.runtime.ops.rollback import RollbackReport
from govrun.runtime.ops.undo import UndoOutcome

_LABELS: dict[str, tuple[str, str]] = {
    "restored": ("restored", "green"),
    "removed": ("removed", "green"),
    "undone": ("undone", "green"),
    "failed": ("failed", "red"),
}


def render_rollback(report: RollbackReport) -> None:
    source = escape(str(report.trace))
    after = f" after step {report.to_step}" if report.to_step is not None else ""
    if not report.outcomes:
        note = (
            f" ({report.already_undone} already undone by the run itself)"
            if report.already_undone
            else ""
        )
        out.print(f"[green]✓[/] nothing to roll back in {source}{after}{note}.")
        return
    title = "would be undone (dry run)" if report.dry_run else "rollback"
    table = Table(
        title=f"{title} · run {escape(report.parent_run_id)}{after}", title_justify="left"
    )
    for column in ("step", "tool", "target", "action", "detail"):
        table.add_column(column, justify="right" if column == "step" else "left")
    for o in report.outcomes:
        table.add_row(
            str(o.call_step if o.call_step is not None else "-"),
            escape(o.tool or "-"),
            escape(o.target),
            _action(o, dry_run=report.dry_run),
            escape(o.reason),
        )
    out.print(table)
    mark = "[bold green]✓[/]" if report.ok else "[bold red]✗[/]"
    verb = "would be undone" if report.dry_run else "undone"
    summary = report.summary.replace(" undone", f" {verb}", 1)
    out.print(f"{mark} {escape(summary)} — {source}", soft_wrap=True)
    if report.already_undone:
        out.print(f"[dim]{report.already_undone} already undone by the run itself (on_failure)[/]")
    if report.output is not None:
        out.print(f"[dim]rollback trace: {escape(str(report.output))}[/]", soft_wrap=True)
        out.print(f"[dim]head {report.head}[/]")


def _action(o: UndoOutcome, *, dry_run: bool) -> str:
    if o.action == "refused":
        why = "changed since the run" if o.failure_class == "verification_failed" else "unsafe"
        return f"[bold red]refused[/]: {why}"
    if o.action == "skipped":
        if o.ok:
            return "[dim]skipped: already undone[/]"
        return "[yellow]skipped: irreversible[/]"
    label, colour = _LABELS.get(o.action, (o.action, "white"))
    if dry_run and o.ok:
        label = f"would be {label}" if label != "undone" else "would be undone"
    return f"[{colour}]{label}[/]" + (" (forced)" if o.forced else "")
