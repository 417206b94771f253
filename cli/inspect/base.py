"""What both inspector apps share: stylesheet, breakpoints, help, and errors as notices.

No Python traceback may reach the user: every action that reads the trace or runs a replay
goes through :func:`guarded`, which turns govrun's errors (and I/O or decoding errors of a
damaged trace) into a notification, and the app carries on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ClassVar, ParamSpec, TypeVar

from textual.app import App
from textual.binding import Binding
from textual.screen import ModalScreen

from govrun.cli.inspect.help import HelpScreen, describe_keys
from govrun.cli.inspect.icons import Icon
from govrun.runtime.errors import GovrunError

P = ParamSpec("P")
R = TypeVar("R")

RECOVERABLE = (GovrunError, OSError, ValueError)
"""What a damaged or vanished trace raises (pydantic and orjson errors are ValueErrors)."""


def message_of(exc: BaseException) -> str:
    """One line for people."""
    if isinstance(exc, GovrunError):
        return exc.message
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def guarded(what: str) -> Callable[[Callable[P, R]], Callable[P, R | None]]:
    """Run an app method; a recoverable error becomes an error notification."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R | None]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R | None:
            try:
                return fn(*args, **kwargs)
            except RECOVERABLE as exc:
                app = args[0]
                assert isinstance(app, InspectorApp)
                app.fail(what, exc)
                return None

        return run

    return wrap


EDGES_AND_PAGES = [
    Binding("g,home", "edge(0)", "first step", show=False),
    Binding("G,end", "edge(1)", "last step", show=False),
    Binding("pagedown", "page(1)", "page down", show=False),
    Binding("pageup", "page(-1)", "page up", show=False),
]
"""Moves both inspectors share (each app implements ``edge`` and ``page``)."""


class InspectorApp(App[None]):
    """Base of :class:`~govrun.cli.inspect.app.InspectApp` and
    :class:`~govrun.cli.inspect.diff_app.DiffApp`."""

    CSS_PATH = "inspect.tcss"
    TITLE = "govrun inspect"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (100, "-wide")]
    LEGENDS: ClassVar[list[tuple[str, list[Icon]]]] = []
    HELP_EXTRA: ClassVar[list[tuple[str, str]]] = []
    """Help rows for what is not a single binding (tabs by number, the mouse)."""
    ALWAYS: ClassVar[frozenset[str]] = frozenset({"help", "quit"})
    """Actions allowed while a modal screen (help, filter) is open."""

    def fail(self, what: str, exc: BaseException) -> None:
        self.notify(f"{what}: {message_of(exc)}", severity="error", timeout=8)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
            return
        bindings = [b for b in self.BINDINGS if isinstance(b, Binding)]
        display = {
            key.strip(): self.get_key_display(Binding(key.strip(), ""))
            for b in bindings
            for key in b.key.split(",")
        }
        keys = describe_keys(bindings, display) + self.HELP_EXTRA
        self.push_screen(HelpScreen(keys, self.LEGENDS))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys meant for the panes do nothing while help or the filter menu is open."""
        if isinstance(self.screen, ModalScreen) and action not in self.ALWAYS:
            own = {b.action.split("(")[0] for b in self.BINDINGS if isinstance(b, Binding)}
            if action in own:
                return False
        return True
