"""`govrun diff`: align two runs step by step and show where and how they differ."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from govrun.cli.console import handle_errors

TraceA = Annotated[
    Path, typer.Argument(help="The first trace (JSONL), shown on the left.", metavar="A.jsonl")
]
TraceB = Annotated[
    Path, typer.Argument(help="The second trace (JSONL), shown on the right.", metavar="B.jsonl")
]


@handle_errors
def diff(
    a: TraceA,
    b: TraceB,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the whole comparison as JSON.")
    ] = False,
    limit: Annotated[
        int,
        typer.Option(
            min=0,
            metavar="N",
            help="Show at most this many differing steps (0: all). --json always lists all.",
        ),
    ] = 100,
) -> None:
    """Compare two runs step by step: the first divergence, then every inserted, removed and
    changed step side by side, then the totals. Exit 0 same, 1 different, 2 bad input."""
    from govrun.cli.render.integrity import check_integrity
    from govrun.runtime.views.diff import diff_trajectories
    from govrun.runtime.views.trajectory import load_trajectory

    for path in (a, b):
        check_integrity(path, doing="diff", refuse_altered=False)
    result = diff_trajectories(load_trajectory(a), load_trajectory(b))
    if json_output:
        sys.stdout.write(result.to_json() + "\n")
    else:
        from govrun.cli.render.diff import render_diff

        render_diff(result, limit=limit)
    raise typer.Exit(0 if result.same else 1)
