"""Shared rich consoles and the one place errors become output and exit codes."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from govrun.runtime.errors import GovrunError, ManifestError

if TYPE_CHECKING:
    from rich.live import Live

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

P = ParamSpec("P")
R = TypeVar("R")


def print_error(exc: GovrunError) -> None:
    """A red headline, one bullet per problem, and the hint — never a traceback."""
    err.print(f"[bold red]error:[/] {escape(exc.message)}")
    if isinstance(exc, ManifestError):
        for problem in exc.problems:
            err.print(f"  [red]•[/] {escape(problem)}")
    if exc.hint:
        err.print(f"[dim]{escape(exc.hint)}[/]")


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn govrun's own errors and Ctrl-C into a clear message and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except GovrunError as exc:
            print_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


@contextlib.contextmanager
def live_paused(live: Live | None) -> Iterator[None]:
    """Stop redrawing the live view while a prompt has the terminal, then resume it."""
    if live is None:
        yield
        return
    live.stop()
    try:
        yield
    finally:
        live.start()
