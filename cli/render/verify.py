"""How ``govrun verify`` reports."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import Any

import orjson
from rich.markup import escape
from rich.table import Table

from govrun.cli.console import out
from govrun.cli.jobs import WorkerDied
from govrun.runtime.trace.audit import ApprovalAudit
from govrun.runtime.trace.verify import VerifyReport

LABELS = {"not_a_trace": "not a govrun trace", "approval": "approval not proven"}

UNPINNED = (
    "signatures are valid, but the key is not pinned: this proves integrity, not identity "
    "(pass --trusted-keys)"
)


def render_verify(report: VerifyReport, *, as_json: bool) -> None:
    if as_json:
        # plain, even when colour is forced (FORCE_COLOR): this output is for programs
        out.print_json(orjson.dumps(_doc(report)).decode(), highlight=False)
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
        _approvals(report)
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
        _approvals(report)
        return
    label = LABELS.get(problem.kind, problem.kind.replace("_", " "))
    out.print(f"[bold red]✗ {label}[/] {name}: {escape(problem.message)}")
    if problem.kind == "approval":
        out.print(
            f"  The chain of {report.events} events is unbroken, but its signatures do not "
            "prove that every gated call that ran was approved, as it ran, by a trusted key."
        )
    elif report.events:
        out.print(
            f"  The trace is verified up to seq {report.events - 1} and cannot be trusted "
            "after that."
        )
    _approvals(report)


def render_verify_many(results: list[VerifyReport | str | WorkerDied], *, as_json: bool) -> None:
    """Several traces: a table, a line each, and the count of each verdict; or, as JSON, a
    list of what one trace's ``--json`` prints (``{"path", "error"}`` for an unreadable
    trace, with ``"crashed": true`` when its worker died)."""
    if as_json:
        docs = [_many_doc(r) for r in results]
        out.print_json(orjson.dumps(docs).decode(), highlight=False)
        return
    table = Table(title="verify", title_justify="left")
    table.add_column("trace", style="cyan", overflow="fold")
    table.add_column("events", justify="right")
    table.add_column("verdict")
    table.add_column("finding", overflow="fold")
    counts: Counter[str] = Counter()
    for r in results:
        if isinstance(r, str | WorkerDied):
            crashed = isinstance(r, WorkerDied)
            counts["crashed" if crashed else "unreadable"] += 1
            message = r.message if isinstance(r, WorkerDied) else r
            verdict = "crashed" if crashed else "unreadable"
            table.add_row(escape(message), "", f"[bold red]{verdict}[/]", "")
            continue
        verdict, finding = _verdict(r)
        counts[verdict] += 1
        style = "green" if r.ok else "yellow" if r.intact else "bold red"
        table.add_row(escape(str(r.path)), str(r.events), f"[{style}]{verdict}[/]", finding)
    out.print(table)
    order = ("intact", "incomplete", "altered", "approval not proven", "not a govrun trace")
    tally = [f"{counts.pop(k)} {k}" for k in order if counts.get(k)]
    tally += [f"{n} {k}" for k, n in counts.items()]
    out.print(f"{len(results)} traces: " + ", ".join(tally))


def _verdict(report: VerifyReport) -> tuple[str, str]:
    """(the verdict word, the finding in one line) of one trace's report."""
    problem = report.problem
    if problem is None:
        audit = report.approvals
        signed = ""
        if audit is not None and audit.approvals:
            signed = f", {len(audit.approvals)} approvals signed"
        return "intact", f"run finished, head {report.head[:16]}…{signed}"
    if problem.is_crash:
        return "incomplete", escape(problem.message)
    if problem.kind in LABELS:
        return LABELS[problem.kind], escape(problem.message)
    return "altered", escape(problem.message)


def _many_doc(result: VerifyReport | str | WorkerDied) -> dict[str, Any]:
    if isinstance(result, WorkerDied):
        return {"error": result.message, "crashed": True}
    if isinstance(result, str):
        return {"error": result}
    return _doc(result)


def _approvals(report: VerifyReport) -> None:
    """The approvals section: how many, signed by whom, the seal, and every violation."""
    audit = report.approvals
    if audit is None:
        return
    if audit.approvals:
        decisions = Counter(a.decision for a in audit.approvals)
        tally = ", ".join(f"{n} {_DECIDED.get(d, d)}" for d, n in decisions.items())
        bad = Counter(a.status for a in audit.approvals if not a.valid)
        state = (
            ", ".join(f"{n} {status}" for status, n in bad.items())
            if bad
            else "every signature valid"
        )
        out.print(f"  approvals {len(audit.approvals)} ({tally}), {_red(state, bool(bad))}")
    seal = _SEAL.get(audit.seal)
    if audit.seal == "missing" and not report.finished:
        seal = "none yet: the run did not finish"
    if seal:
        out.print(f"  seal {seal}")
    signers = _signers(audit)
    if len(signers) == 1:
        out.print(f"  signed by {signers[0]}", soft_wrap=True)
    elif signers:
        out.print("  signed by these keys:")
        for line in signers:
            out.print(f"    {line}", soft_wrap=True)
    if audit.unpinned:
        out.print(f"  [yellow]{UNPINNED}[/]")
    for v in audit.violations:
        out.print(f"  [red]✗ seq {v.seq}: {escape(v.message)}[/]")


_DECIDED = {"approve": "approved", "reject": "rejected", "stop": "stopped"}

_SEAL = {
    "pinned": "valid, by a trusted key: cutting or re-chaining the trace would show",
    "unpinned": "valid: cutting or re-chaining the trace would show",
    "untrusted": "[red]signed by a key that is not trusted[/]",
    "invalid": "[red]does not verify[/]",
    "missing": "[red]missing[/]",
}


def _signers(audit: ApprovalAudit) -> list[str]:
    """One line per key with a valid signature: fingerprint, owner or "not pinned", and
    where the key came from as the trace states it (ephemeral, file:...)."""
    sources: dict[str, str] = {}
    for a in audit.approvals:
        if a.valid and a.fingerprint and a.key_source:
            sources.setdefault(a.fingerprint, a.key_source)
    if audit.seal_fingerprint and audit.seal_key_source:
        sources.setdefault(audit.seal_fingerprint, audit.seal_key_source)
    lines = []
    for fp, owner in audit.signers.items():
        if owner is None:
            who = "[yellow]not pinned[/]"
        else:  # a trusted-keys line without a name gives the fingerprint as owner
            who = "pinned" if owner == fp else f"{escape(owner)} (pinned)"
        source = f" ({escape(_source(sources[fp]))})" if fp in sources else ""
        lines.append(f"{fp} {who}{source}")
    return lines


def _red(text: str, red: bool) -> str:
    return f"[red]{text}[/]" if red else text


def _source(key_source: str) -> str:
    if key_source == "ephemeral":
        return "ephemeral key: made for this run only"
    kind, _, where = key_source.partition(":")
    return f"key file {where}" if kind == "file" and where else key_source


def _doc(report: VerifyReport) -> dict[str, Any]:
    p = report.problem
    return {
        "path": str(report.path),
        "ok": report.ok,
        "intact": report.intact,
        "events": report.events,
        "run_id": report.run_id,
        "head": report.head,
        "blobs": report.blobs,
        "finished": report.finished,
        "head_checked": report.head_checked,
        "trusted_checked": report.trusted_checked,
        "problem": None
        if p is None
        else {
            "kind": p.kind,
            "line": p.line,
            "seq": p.seq,
            "message": p.message,
            "crash": p.is_crash,
        },
        "approvals": None if report.approvals is None else _audit_doc(report.approvals),
    }


def _audit_doc(audit: ApprovalAudit) -> dict[str, Any]:
    return {
        "ok": audit.ok,
        **asdict(audit),
        "signers": [{"fingerprint": fp, "owner": owner} for fp, owner in audit.signers.items()],
        "unpinned": audit.unpinned,
    }
