"""``r``: re-run the trace deterministically up to the selected step (in a worker thread)
and say whether the trajectory reproduces, or where it first diverges."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from rich.text import Text

from govrun.cli.inspect.sections import Section

if TYPE_CHECKING:
    from govrun.runtime.replayer.session import Divergence


class ReplayVerdict(NamedTuple):
    """What a replay up to ``step`` found, handed from the worker thread to the app."""

    step: int
    reproduced: bool
    divergence: Divergence | None
    ended: str
    """How the replayed run ended, for a replay that neither reproduced nor diverged."""


def replay_to(trace: Path, step: int) -> ReplayVerdict:
    """Strict replay of ``trace`` up to ``step``, into a temporary trace that is removed.
    Blocks: run it in a thread."""
    from govrun.runtime.replayer.session import replay
    from govrun.runtime.trace.record import Record

    with tempfile.TemporaryDirectory(prefix="govrun-inspect-") as tmp:
        outcome = replay(Record.load(trace), Path(tmp) / "replay.jsonl", until_step=step)
        return ReplayVerdict(
            step,
            outcome.reproduced,
            outcome.divergence,
            f"{outcome.result.status}: {outcome.result.reason}",
        )


def divergence_banner(d: Divergence) -> Section:
    """Shown above the tabs' sections on the step where the replay diverged."""
    head = Text(f"◆ replay diverged here: {d.headline or d.event}", "bold")
    return Section(None, head, Text(d.message))
