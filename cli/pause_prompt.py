"""The resume-or-stop prompt for a pause `govrun ctl` asked for: the person at the terminal
and `govrun ctl` may both answer, so the prompt waits on the terminal a tenth of a second
at a time and asks between waits whether `ctl` answered (no thread left reading stdin)."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable
from typing import Literal

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

POLL_S = 0.1
QUESTION = "[bold]r[/]esume or [bold]s[/]top? [magenta]\\[r/s][/] [cyan](s)[/]: "


def ask_until(
    console: Console, reason: str, answered: Callable[[], bool], *, fd: int | None = None
) -> Literal["resume", "stop"] | None:
    """The terminal's answer, or None once ``answered()`` says `ctl` answered first. An
    empty line means stop (the default), as at the ordinary pause prompt; end of input too."""
    fd = sys.stdin.fileno() if fd is None else fd
    console.print(
        Panel(
            f"[bold yellow]Paused:[/] {escape(reason)}\n"
            "[dim]answer here, or from another terminal with govrun ctl resume|stop[/]",
            border_style="yellow",
        )
    )
    console.print(QUESTION, end="")
    while True:
        if answered():
            console.print("\n[yellow]answered from govrun ctl[/]")
            return None
        ready, _, _ = select.select([fd], [], [], POLL_S)
        if not ready:
            continue
        line = os.read(fd, 1024).decode(errors="replace")
        if not line:
            return "stop"
        choice = line.strip().lower() or "s"
        if choice in ("r", "resume"):
            return "resume"
        if choice in ("s", "stop"):
            return "stop"
        console.print("[red]Please answer r or s[/]")
        console.print(QUESTION, end="")
