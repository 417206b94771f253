"""`govrun verify`: prove traces were not altered and their approvals were signed.

One trace gets the full verdict; several get a line each in a table and a count, checked
one after the other or in worker processes (``--jobs``), reported in the order given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from govrun.cli.console import handle_errors
from govrun.cli.jobs import Job, WorkerDied, default_jobs, run_jobs

if TYPE_CHECKING:
    from collections.abc import Mapping

    from govrun.runtime.trace.verify import VerifyReport


@handle_errors
def verify(
    traces: Annotated[
        list[Path], typer.Argument(help="govrun traces (JSONL).", metavar="TRACE.jsonl...")
    ],
    head: Annotated[
        str | None,
        typer.Option(
            metavar="HASH",
            help="Head hash kept elsewhere (printed by `govrun run`); detects a trace "
            "cut short or re-chained. With one trace only.",
        ),
    ] = None,
    trusted_keys: Annotated[
        Path | None,
        typer.Option(
            "--trusted-keys",
            metavar="FILE",
            help="Public keys allowed to sign approvals and the seal, one per line (base64 "
            "key or sha256: fingerprint, then the owner's name), for every trace. Without "
            "it, valid signatures prove integrity, not identity.",
        ),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Print the verdict as JSON (a list for several traces)."),
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            metavar="N",
            min=1,
            help="Verify this many traces at once, each in a worker process (default: one "
            "per core; 1: one after the other, in this process).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Prove traces were not altered and their approvals were signed. Exit 0 only when
    every trace is intact and complete and its approvals hold; 1 when one is not; 2 when
    one is not a trace or cannot be read."""
    from govrun.cli.render.verify import render_verify, render_verify_many
    from govrun.runtime.errors import GovrunError
    from govrun.runtime.trace.signing import load_trusted_keys
    from govrun.runtime.trace.verify import verify_trace

    if head is not None and len(traces) > 1:
        raise GovrunError(
            f"--head is the head kept for one trace, and {len(traces)} traces were given.",
            hint="Verify that trace alone with --head, and the others without it.",
        )
    trusted = load_trusted_keys(trusted_keys) if trusted_keys is not None else None
    if len(traces) == 1:
        report = verify_trace(traces[0], head=head, trusted_keys=trusted)
        render_verify(report, as_json=json_output)
        if report.problem is not None and report.problem.kind == "not_a_trace":
            raise typer.Exit(2)  # bad input, not a failed check
        raise typer.Exit(0 if report.ok else 1)
    checks = _Checks(trusted)
    if (jobs or default_jobs()) == 1:
        results: list[VerifyReport | str | WorkerDied] = [checks.one(t) for t in traces]
    else:
        done = run_jobs(
            Job(checks.one, _failed, "verify", warm=_warm), traces, jobs=jobs or default_jobs()
        )
        results = [
            WorkerDied(f"{trace}: {r.message}") if isinstance(r, WorkerDied) else r
            for trace, r in zip(traces, done, strict=True)
        ]
    render_verify_many(results, as_json=json_output)
    if any(
        isinstance(r, str) or (not isinstance(r, WorkerDied) and _not_a_trace(r)) for r in results
    ):
        raise typer.Exit(2)  # bad input, not a failed check
    ok = all(not isinstance(r, str | WorkerDied) and r.ok for r in results)
    raise typer.Exit(0 if ok else 1)


def _warm() -> None:
    import govrun.runtime.trace.verify  # noqa: F401  (a spawned worker's start)


@dataclass(frozen=True)
class _Checks:
    """What verifying each of several traces shares; sent to each worker with its trace."""

    trusted: Mapping[str, str] | None

    def one(self, trace: Path) -> VerifyReport | str:
        """The trace's report, or why it cannot be read at all (missing, a folder, written
        by a newer govrun): that message, so the other traces still report."""
        from govrun.runtime.errors import GovrunError
        from govrun.runtime.trace.verify import verify_trace

        try:
            return verify_trace(trace, trusted_keys=self.trusted)
        except GovrunError as exc:
            return exc.message if exc.message.startswith(str(trace)) else f"{trace}: {exc.message}"


def _failed(result: VerifyReport | str) -> bool:
    return isinstance(result, str) or not result.ok


def _not_a_trace(report: VerifyReport) -> bool:
    return report.problem is not None and report.problem.kind == "not_a_trace"
