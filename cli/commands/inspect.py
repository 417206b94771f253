"""`govrun inspect`: open a trace (or two, side by side) in the Textual inspector."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from govrun.cli.console import handle_errors

TracePath = Annotated[
    Path, typer.Argument(help="The trace to inspect (JSONL).", metavar="TRACE.jsonl")
]


@handle_errors
def inspect(
    trace: TracePath,
    follow: Annotated[
        bool | None,
        typer.Option(
            "--follow/--no-follow",
            help="Show new events as the run writes them. Default: on when the trace has no "
            "run_finished yet.",
        ),
    ] = None,
    diff: Annotated[
        Path | None,
        typer.Option(
            "--diff",
            metavar="B.jsonl",
            help="Compare with another trace: both trajectories side by side, the first "
            "divergence selected.",
        ),
    ] = None,
) -> None:
    """Step through a run in a terminal UI: timeline, prompt, reply, tool calls, policy,
    approvals, verification, raw events; search, filter, follow, replay, diff."""
    if diff is not None:
        from govrun.runtime.views.diff import diff_trajectories
        from govrun.runtime.views.trajectory import load_trajectory

        result = diff_trajectories(load_trajectory(trace), load_trajectory(diff))
        from govrun.cli.inspect.diff_app import DiffApp

        DiffApp(result).run()
        return
    from govrun.cli.render.integrity import damage_note
    from govrun.runtime.ops.registry import writer_of
    from govrun.runtime.trace.verify import verify_trace
    from govrun.runtime.views.timeline import Timeline

    timeline = Timeline(trace)  # bad input fails here, before the screen is taken over
    damage = damage_note(verify_trace(trace))  # said first, in the header
    live = writer_of(trace) is not None
    from govrun.cli.inspect.app import InspectApp

    InspectApp(timeline, follow=follow, live=live, damage=damage).run()
