"""`govrun rollback`: undo a run's recorded effects, newest first, into a rollback trace.

The work is :func:`govrun.runtime.ops.rollback.rollback_trace`; this command parses options, shows
the outcome as a table and turns it into an exit code: 0 every effect undone, 1 some refused,
skipped or failed, 2 bad input (a trace that does not verify, an output that exists).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from govrun.cli.console import handle_errors


@handle_errors
def rollback(
    trace: Annotated[Path, typer.Argument(help="The run's trace (JSONL).", metavar="TRACE.jsonl")],
    to_step: Annotated[
        int | None,
        typer.Option(
            "--to-step",
            metavar="N",
            min=0,
            help="Undo only the effects of steps after N (the workspace goes back to how it "
            "was after step N); default: every step.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Undo a file even if it changed since the run (its current content is "
            "lost). A symlink is still never followed.",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            metavar="PATH",
            help="Where the rollback trace goes; default <trace>.rollback.jsonl next to it "
            "(never overwritten).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show what would be undone; touch nothing, write no trace."),
    ] = False,
) -> None:
    """Undo the reversible effects a run recorded — file writes and deletes, shell `undo:`
    commands — newest first. A file that changed since the run is refused unless --force.
    Records a `rollback` event per undo in a new trace naming its parent. Exit 0 when every
    effect was undone, 1 when some were refused, skipped or failed, 2 on bad input."""
    from govrun.cli.render.integrity import check_integrity
    from govrun.cli.render.rollback import render_rollback
    from govrun.runtime.ops.rollback import rollback_trace

    check_integrity(trace, doing="roll back", refuse_altered=True)
    report = rollback_trace(trace, to_step=to_step, force=force, output=output, dry_run=dry_run)
    render_rollback(report)
    raise typer.Exit(0 if report.ok else 1)
