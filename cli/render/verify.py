"""How ``govrun verify`` reports."""

from __future__ import annotations

import orjson
from rich.markup import escape

from cli.console import out
from runtime.verify import VerifyReport

LABELS = {"not_a_trace": "not a govrun trace"}


def render_verify(report: VerifyReport, *, as_json: bool) -> None:
    if as_json:
        p = report.problem
        doc = {
            "path": str(report.path),
            "ok": report.ok,
            "intact": report.intact,
            "events": report.events,
            "run_id": report.run_id,
            "head": report.head,
            "blobs": report.blobs,
            "finished": report.finished,
            "head_checked": report.head_checked,
            "problem": None
            if p is None
            else {
                "kind": p.kind,
                "line": p.line,
                "seq": p.seq,
                "message": p.message,
                "crash": p.is_crash,
            },
        }
        # plain, even when colour is forced (FORCE_COLOR): this output is for programs
        out.print_json(orjson.dumps(doc).decode(), highlight=False)
        return
    name = escape(str(report.path))
    if report.ok:
        blobs = f", {report.blobs} blob{'s' if report.blobs != 1 else ''}" if report.blobs else ""
        head = " matches the head given," if report.head_checked else ""
        out.print(
            f"[green]✓ intact[/] {name}: {report.events} events of run "
            f"{escape(str(report.run_id))}{blobs}, chain unbroken,{head} run finished."
        )
        out.print(f"  head {report.head}", soft_wrap=True)
        return
    problem = report.problem
    assert problem is not None
    if problem.is_crash:
        out.print(f"[yellow]✗ incomplete[/] {name}: {escape(problem.message)}")
        out.print(
            "  Nothing was altered: this is what a crash or a run still in progress "
            "leaves. The events up to there are verified."
        )
        if report.events:
            out.print(f"  head of the intact part {report.head}", soft_wrap=True)
        return
    label = LABELS.get(problem.kind, problem.kind.replace("_", " "))
    out.print(f"[bold red]✗ {label}[/] {name}: {escape(problem.message)}")
    if report.events:
        out.print(
            f"  The trace is verified up to seq {report.events - 1} and cannot be trusted "
            "after that."
        )
