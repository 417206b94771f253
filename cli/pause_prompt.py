"""Pausing a run from the terminal: Ctrl-C asks for a pause, the prompt answers it.

The first Ctrl-C asks the loop to pause at its next stage boundary; the loop records the
request and asks the operator (:class:`TerminalOperator`): resume or stop? Any further
Ctrl-C before that pause is answered stops the run at once, and at the prompt Ctrl-C and
the end of input mean stop. None of them arms another pause or leaves the run waiting.

A pause `govrun ctl` asked for may be answered here or there, so the prompt waits on the
terminal a tenth of a second at a time and asks between waits whether `ctl` answered (no
thread left reading stdin).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from govrun.cli.console import live_paused
from govrun.cli.terminal import prompt_mode

if TYPE_CHECKING:
    from rich.live import Live

    from govrun.runtime.ports import Control

Choice = Literal["resume", "stop"]

POLL_S = 0.1
QUESTION = "[bold]r[/]esume or [bold]s[/]top? [magenta]\\[r/s][/] [cyan](s)[/]: "


class CtrlC:
    """The run's SIGINT handler (main thread). The first Ctrl-C asks for a pause, recorded
    at the next stage boundary (without a terminal: a stop); another one before the pause is
    answered interrupts at once, and the loop records the stop before sealing the trace.
    Because a tool may swallow that ``KeyboardInterrupt``, a stop is also requested."""

    def __init__(self, control: Control, *, interactive: bool, who: str, console: Console) -> None:
        self.control, self.interactive, self.who, self.console = control, interactive, who, console
        self.pending = False

    def __call__(self, signum: int, frame: object) -> None:
        if self.pending or self.control.requested is not None:
            self.control.request("stop", by=self.who)
            raise KeyboardInterrupt
        self.pending = True
        self.control.request("pause" if self.interactive else "stop", by=self.who)
        self.console.print(
            "[yellow]Ctrl-C: pausing after the current stage (Ctrl-C again to stop now)[/]"
            if self.interactive
            else "[yellow]Ctrl-C: stopping[/]"
        )

    def answered(self) -> None:
        """The prompt has the pause now: after it is answered, Ctrl-C pauses again."""
        self.pending = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = signal.signal(signal.SIGINT, self)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


class TerminalOperator:
    """Asks the person at the terminal whether to resume a paused run (the ``Operator``
    port). ``reason`` says why it stopped when that was no typed answer (Ctrl-C, the end of
    input), for the interrupt the loop records."""

    def __init__(
        self,
        console: Console,
        live: Live | None,
        identity: str,
        *,
        ctrl_c: CtrlC | None = None,
        fd: int | None = None,
    ) -> None:
        self.console, self.live, self.identity = console, live, identity
        self.ctrl_c, self.fd = ctrl_c, fd
        self.reason: str | None = None

    def on_pause(self, reason: str) -> Choice:
        return self._ask(reason, None) or "stop"  # nobody else can answer: never None

    def on_pause_or(self, reason: str, answered: Callable[[], bool]) -> Choice | None:
        """A pause `govrun ctl` asked for: the prompt, until it is answered here or there
        (``answered()`` true: None)."""
        return self._ask(reason, answered)

    def _ask(self, reason: str, answered: Callable[[], bool] | None) -> Choice | None:
        self.reason = None
        fd = sys.stdin.fileno() if self.fd is None else self.fd
        with live_paused(self.live), prompt_mode(fd):
            if self.ctrl_c is not None:
                self.ctrl_c.answered()
            try:
                return ask_until(self.console, reason, answered, fd=fd)
            except KeyboardInterrupt:
                self._stopped("Ctrl-C at the prompt", "stopped with Ctrl-C at the pause prompt")
            except EOFError:
                self._stopped("end of input", "end of input at the pause prompt: stopped")
        return "stop"

    def _stopped(self, shown: str, reason: str) -> None:
        self.console.print(f"\n[bold red]■ {shown}: stopping the run[/]")
        self.reason = reason


def ask_until(
    console: Console,
    reason: str,
    answered: Callable[[], bool] | None,
    *,
    fd: int | None = None,
) -> Choice | None:
    """The terminal's answer, or None once ``answered()`` says `ctl` answered first (without
    it, only the terminal answers). An empty line means stop, the default; the end of input
    raises ``EOFError``."""
    fd = sys.stdin.fileno() if fd is None else fd
    hint = (
        "\n[dim]answer here, or from another terminal with govrun ctl resume|stop[/]"
        if answered is not None
        else ""
    )
    console.print(Panel(f"[bold yellow]Paused:[/] {escape(reason)}{hint}", border_style="yellow"))
    console.print(QUESTION, end="")
    while True:
        if answered is not None and answered():
            console.print("\n[yellow]answered from govrun ctl[/]")
            return None
        ready, _, _ = select.select([fd], [], [], POLL_S)
        if not ready:
            continue
        try:
            line = os.read(fd, 1024).decode(errors="replace")
        except OSError:  # the terminal went away (EIO after a hangup)
            line = ""
        if not line:
            raise EOFError
        choice = line.strip().lower() or "s"
        if choice in ("r", "resume"):
            return "resume"
        if choice in ("s", "stop"):
            return "stop"
        console.print("[red]Please answer r or s[/]")
        console.print(QUESTION, end="")
