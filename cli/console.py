"""Shared rich consoles and the one place errors become output and exit codes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from runtime.errors import GovrunError, ManifestError

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
