"""Damage is always said (issue 17): every command that reads a trace runs the verifier
first and says plainly, before anything else, when the trace is torn, unfinished or
altered — with verify's own finding (the seq, the line and why). A command that would act
on the record (replay, resume, rollback) refuses an altered trace; one that only shows it
(show, diff, inspect) shows what is there, under the warning."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from govrun.cli.console import err
from govrun.runtime.errors import GovrunError
from govrun.runtime.trace.verify import VerifyReport, verify_trace


def damage_note(report: VerifyReport) -> str | None:
    """verify's finding in one line, for a header (None for an intact, finished trace)."""
    problem = report.problem
    if problem is None:
        return None
    if problem.is_crash:
        return f"⚠ {problem.kind}: {problem.message}"
    return f"✗ altered: {problem.message}"


def check_integrity(path: Path, *, doing: str, refuse_altered: bool) -> VerifyReport:
    """Verify ``path``; print its damage, if any, to stderr; raise when it is altered and
    ``doing`` must not proceed on an altered record (``doing``: "replay", "show", ...)."""
    report, note = integrity_note(path, doing=doing, refuse_altered=refuse_altered)
    if note is not None:
        err.print(note, soft_wrap=True)
    return report


def integrity_note(
    path: Path, *, doing: str, refuse_altered: bool
) -> tuple[VerifyReport, str | None]:
    """:func:`check_integrity`'s verdict and what it would print (rich markup), for a
    worker process that sends it to the one terminal rather than printing it."""
    report = verify_trace(path)
    if report.ok:
        return report, None
    problem = report.problem
    assert problem is not None
    if problem.kind == "not_a_trace":
        return report, None  # the command's reader says what it is, as every reader says it
    name = escape(str(path))
    if problem.is_crash:
        still = " (or is still being written)" if problem.kind == "unfinished" else ""
        return report, (
            f"[yellow]⚠ {name} is {problem.kind}{still}:[/] {escape(problem.message)} "
            f"The {report.events} events before that are intact; {doing} uses them."
        )
    if refuse_altered:
        what = "roll it back" if doing == "roll back" else f"{doing} it"
        raise GovrunError(
            f"{path} does not verify — it was altered — so govrun will not {what}: "
            f"{problem.message}",
            hint=f"`govrun verify {path}` says where and how.",
        )
    return report, (
        f"[bold red]✗ {name} was altered:[/] {escape(problem.message)} What follows "
        "shows the file as it is now, not as the run recorded it."
    )
