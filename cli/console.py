"""Shared rich consoles and the one place errors become output and exit codes."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.exceptions import TyperException

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
    """Turn govrun's own errors and Ctrl-C into a clear message and an exit code, and
    anything unforeseen into one paragraph and a crash report (exit 1)."""

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
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except Exception as exc:
            if os.environ.get("GOVRUN_DEBUG"):
                raise
            print_crash(exc)
            raise typer.Exit(1) from None

    return wrapper


def print_crash(exc: BaseException, *, after: str = "") -> None:
    """Something govrun did not foresee (a bug): what it was, in one line, and where the
    traceback went — a file for a bug report, never the terminal (GOVRUN_DEBUG=1 shows it).
    ``after`` says what still holds (a run's trace records the failure)."""
    what = f"{type(exc).__name__}: {exc}"
    print_crash_text(what, "".join(traceback.format_exception(exc)), after=after)


def print_crash_text(what: str, details: str, *, after: str = "") -> None:
    """:func:`print_crash` for a failure known only as text (a Textual app's last words)."""
    err.print(f"[bold red]error:[/] govrun failed unexpectedly: {escape(what)}")
    report = crash_report(details)
    where = f"The details are in {report}; please" if report else "Please"
    err.print(f"[dim]{escape(after)}{where} include them in a bug report.[/]")


def crash_report(details: str) -> Path | None:
    """``details`` (a traceback) in a new file of the temp folder (owner-only), or None if
    it could not be written."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    try:
        fd, name = tempfile.mkstemp(prefix=f"govrun-crash-{stamp}-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(details)
    except OSError:
        return None
    return Path(name)


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
