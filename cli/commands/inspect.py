"""`govrun inspect`: open a trace (or two, side by side) in the Textual inspector."""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from govrun.cli.console import handle_errors, print_crash_text

if TYPE_CHECKING:
    from textual.app import App

    from govrun.cli.inspect.app import InspectApp

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
            help="Show new events as the run writes them. Default: on when a live run is "
            "writing the trace.",
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
    _need_a_terminal(trace, diff)
    if diff is not None:
        from govrun.cli.render.integrity import check_integrity
        from govrun.runtime.views.diff import diff_trajectories

        for path in (trace, diff):
            check_integrity(path, doing="inspect", refuse_altered=False)
        from govrun.runtime.views.trajectory import load_trajectory

        result = diff_trajectories(load_trajectory(trace), load_trajectory(diff))
        from govrun.cli.inspect.diff_app import DiffApp

        run_app(DiffApp(result))
        return
    run_app(inspector(trace, follow=follow))


def run_app(app: App[Any], *, headless: bool = False) -> None:
    """Run a Textual app; if it stops on an error (a bug), say so in one paragraph with a
    crash report instead of the traceback Textual prints on its way out. Textual draws on
    the real stderr and prints that traceback to ``sys.stderr``, so only the latter is
    held while the app runs (and passed on as it was when there was no error)."""
    held = io.StringIO()
    with contextlib.redirect_stderr(held):
        app.run(headless=headless)
    said = held.getvalue()
    if not app.return_code or os.environ.get("GOVRUN_DEBUG"):
        sys.stderr.write(said)
        if app.return_code:
            raise typer.Exit(app.return_code)
        return
    lines = [line.strip() for line in said.strip().splitlines() if line.strip()]
    print_crash_text(lines[-1] if lines else "the screen stopped on an error", said)
    raise typer.Exit(1)


def inspector(trace: Path, *, follow: bool | None = None) -> InspectApp:
    """The inspector for one trace, with verify's finding for its header and whether a
    live run is writing it; bad input fails here, before the screen is taken over."""
    from govrun.cli.inspect.app import InspectApp
    from govrun.cli.render.integrity import damage_note
    from govrun.runtime.ops.registry import writer_of
    from govrun.runtime.trace.verify import verify_trace
    from govrun.runtime.views.timeline import Timeline

    timeline = Timeline(trace)
    damage = damage_note(verify_trace(trace))  # said first, in the header
    return InspectApp(timeline, follow=follow, live=writer_of(trace) is not None, damage=damage)


def _need_a_terminal(trace: Path, diff: Path | None) -> None:
    """Refuse at once without a terminal on both ends: the app would write its escape
    codes into a pipe and wait for keys nobody can press."""
    missing = [name for name, f in (("input", sys.stdin), ("output", sys.stdout)) if not _tty(f)]
    if not missing:
        return
    from govrun.runtime.errors import GovrunError

    which = " and ".join(f"standard {name}" for name in missing)
    instead = shlex.join(
        ["govrun", "diff", str(trace), str(diff)] if diff else ["govrun", "show", str(trace)]
    )
    raise GovrunError(
        f"govrun inspect needs a terminal ({which} {'is' if len(missing) == 1 else 'are'} "
        f"not one): run it in a terminal, or `{instead}` for a pipe or a file."
    )


def _tty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False
