"""The inspector's visual vocabulary: one icon per step status, one mark per replay or diff
verdict. The timeline, the detail pane and the help screen all read these tables, so the
legend can never drift from what is drawn."""

from __future__ import annotations

from typing import NamedTuple

from rich.cells import cell_len


class Icon(NamedTuple):
    glyph: str
    ink: str
    """A :mod:`govrun.cli.inspect.palette` meaning: ok, error, warning, accent, muted."""
    meaning: str


STATUS_ICONS: dict[str, Icon] = {
    "ok": Icon("✓", "ok", "allowed, ran, verified"),
    "final": Icon("★", "ok", "final answer"),
    "denied": Icon("✗", "error", "a call was denied by policy"),
    "rejected": Icon("⊘", "error", "an approval was rejected"),
    "awaiting_approval": Icon("⏳", "warning", "awaiting approval"),
    "running": Icon("⟳", "accent", "tool call in flight"),
    "tool_error": Icon("!", "error", "a tool call failed"),
    "verification_failed": Icon("⚠", "warning", "verification failed"),
    "interrupt": Icon("■", "warning", "interrupted: paused or stopped"),
    "failed": Icon("✖", "error", "the step failed or was cut short"),
    "model_error": Icon("↯", "error", "the model call failed"),
}
START = Icon("▶", "muted", "row 0: the run started (task, manifest)")
UNKNOWN = Icon("?", "warning", "unknown status")

MARKS: dict[str, Icon] = {
    "diverged": Icon("◆", "error", "replay diverged at this step"),
    "reproduced": Icon("▎", "ok", "replay reproduced this step"),
    "changed": Icon("~", "warning", "diff: changed in b"),
    "inserted": Icon("+", "ok", "diff: only in b"),
    "removed": Icon("-", "error", "diff: only in a"),
}


INK_TOKENS = {
    "ok": "$text-success",
    "error": "$text-error",
    "warning": "$text-warning",
    "accent": "$text-accent",
    "muted": "$text-muted",
}
"""Each ink as a design token, for markup (the header, the help screen)."""


def status_icon(status: str, row: int = 1) -> Icon:
    """The icon for a timeline row (row 0 is the run's start, not a step)."""
    return START if row == 0 else STATUS_ICONS.get(status, UNKNOWN)


def two_cells(glyph: str) -> str:
    """A glyph padded to two cells, so wide and narrow icons line up."""
    return glyph + " " * max(0, 2 - cell_len(glyph))
