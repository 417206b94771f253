"""`govrun worker` and `govrun submit`: governed runs on Temporal, and reaching them from
`approve`, `reject`, `ctl` and `status` with ``--temporal HOST:PORT``. The workflow and the
segment activity live in :mod:`govrun.runtime.ops.temporal`; this is only the terminal side."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.markup import escape

from govrun.cli.console import err, handle_errors, out

TemporalOpt = Annotated[
    str | None,
    typer.Option(
        "--temporal",
        metavar="HOST:PORT",
        help="The Temporal service (default: $GOVRUN_TEMPORAL_ADDRESS).",
        show_default=False,
    ),
]
NamespaceOpt = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        metavar="NS",
        help="Temporal namespace (default: default).",
        show_default=False,
    ),
]
QueueOpt = Annotated[
    str | None,
    typer.Option(
        "--task-queue", metavar="Q", help="Task queue (default: govrun).", show_default=False
    ),
]

T = TypeVar("T")


def _target(address: str | None, namespace: str | None = None, queue: str | None = None) -> Any:
    from govrun.runtime.ops.temporal.service import Target, sdk

    sdk()
    return Target.resolve(address, namespace, queue)


@handle_errors
def worker(
    temporal: TemporalOpt = None,
    namespace: NamespaceOpt = None,
    task_queue: QueueOpt = None,
    concurrent: Annotated[
        int, typer.Option("--concurrent", min=1, help="Segments this worker runs at once.")
    ] = 4,
) -> None:
    """Run a Temporal worker that executes governed runs from the task queue, until
    Ctrl-C. Start several, on several machines: each must see the agents' folders and the
    runs folder at the same paths."""
    from govrun.runtime.ops.temporal.service import run_worker

    target = _target(temporal, namespace, task_queue)
    secure = " · TLS" + (" · API key" if target.api_key else "") if target.secure else ""
    err.print(
        f"govrun worker on {escape(target.address)} · namespace {escape(target.namespace)} · "
        f"task queue {escape(target.task_queue)}{secure}"
    )
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C during the shutdown
        _sync(run_worker(target, concurrent=concurrent))
    err.print("worker stopped")
    # The SDK's gRPC threads do not survive interpreter finalization (a fatal error on exit
    # after a clean shutdown): leave without it, everything said and flushed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@handle_errors
def submit(
    manifest: Annotated[
        Path, typer.Argument(help="The agent manifest (YAML).", metavar="AGENT.yaml")
    ],
    input_: Annotated[
        str | None, typer.Option("--input", "-i", metavar="TASK", help="The task.")
    ] = None,
    temporal: TemporalOpt = None,
    namespace: NamespaceOpt = None,
    task_queue: QueueOpt = None,
    runs: Annotated[
        Path | None,
        typer.Option(
            "--runs",
            metavar="DIR",
            help="Where the run's traces go; every worker must see it at the same path "
            "(default: $GOVRUN_RUNS, else ./runs).",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the run to end.")] = False,
    heartbeat: Annotated[
        float,
        typer.Option(
            "--heartbeat",
            metavar="SECONDS",
            min=0.5,
            help="A worker silent this long is taken as lost; another resumes the run.",
        ),
    ] = 10.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Start a governed run on Temporal (workflow id = run id) and print how to follow it.
    The manifest is checked here as `govrun validate` does; workers rebuild it from its
    snapshot in the folder it was loaded from. With --wait, exit 0 when the run completed
    and 1 otherwise."""
    from govrun.runtime.govern.preflight import check_runnable, servers_started
    from govrun.runtime.manifest.schema import load_manifest
    from govrun.runtime.ops.registry import runs_dir
    from govrun.runtime.ops.temporal.service import submission
    from govrun.runtime.ops.temporal.service import submit as start
    from govrun.runtime.run import new_run_id
    from govrun.runtime.tools.mcp.pins import lock_path

    target = _target(temporal, namespace, task_queue)
    m = load_manifest(manifest)
    with servers_started(m, lock_path(manifest)) as mcp:
        check_runnable(mcp.manifest, mcp_tools=mcp.tools)
    task = input_ if input_ is not None else m.input
    if not task:
        from govrun.runtime.errors import GovrunError

        raise GovrunError("no task for the agent: pass one with -i/--input or set `input:`.")
    sub = submission(
        m,
        manifest_path=manifest,
        task=task,
        runs=runs_dir(runs),
        run_id=new_run_id(m.name),
        heartbeat_s=heartbeat,
    )
    result = _sync(start(target, sub, wait=wait))
    if json_output:
        doc = {"run_id": sub.run_id, "folder": str(sub.folder), "outcome": result}
        sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    else:
        out.print(f"submitted [bold]{escape(sub.run_id)}[/] to {escape(target.address)}")
        out.print(f"[dim]traces in {escape(str(sub.folder))}[/]")
        out.print(
            f"[dim]follow: govrun status --temporal {escape(target.address)} · decide: govrun "
            f"approve {escape(sub.run_id)} --temporal {escape(target.address)}[/]"
        )
    if result is not None:
        r = result["result"]
        if not json_output:
            why = f" ({r['failure_class']})" if r.get("failure_class") else ""
            out.print(f"run {escape(sub.run_id)} {r['status']}{why}: {escape(r['reason'])}")
            out.print(f"trace {escape(r['trace'])}")
        raise typer.Exit(0 if r["status"] == "completed" else 1)


# --- reaching a run on Temporal ------------------------------------------------------------


def temporal_state(address: str | None, run_id: str) -> dict[str, Any]:
    from govrun.runtime.ops.temporal.service import state

    return _sync(state(_target(address), run_id))


def temporal_decide(
    address: str | None,
    run_id: str,
    call: str | None,
    decision: str,
    *,
    reason: str,
    by: str,
    for_run: bool,
    wait: float,
) -> None:
    """`govrun approve|reject --temporal`: sign the decision as locally, send it as a
    signal, and report what the run did with it."""
    from govrun.runtime.errors import GovrunError
    from govrun.runtime.ops.approvals import Pending, signed_decision
    from govrun.runtime.ops.temporal.service import signal
    from govrun.runtime.trace.signing import load_default_signer

    signer = load_default_signer()
    if signer is None:
        raise GovrunError(
            "a decision is signed with your own key, and you have none yet",
            hint="Create one with `govrun keys init`.",
        )
    got = temporal_state(address, run_id)
    waiting = got.get("pending")
    if got.get("status") != "waiting" or not waiting:
        err.print(f"run {escape(run_id)} is not waiting for a decision ({got.get('status')}).")
        raise typer.Exit(1)
    if call is not None and call != waiting["call_id"]:
        err.print(f"run {escape(run_id)} is not waiting on {escape(call)}.")
        raise typer.Exit(1)
    pending = Pending(
        run_id=waiting["run_id"],
        step=waiting["step"],
        call_id=waiting["call_id"],
        tool=waiting["tool"],
        call_hash=waiting["call_hash"],
        policy_hash=waiting.get("policy_hash"),
        risk=waiting["risk"],
        rule=waiting.get("rule"),
        since="",
        deadline=None,
        trace=str(got.get("trace", "")),
        request=waiting.get("request") or {},
    )
    data = signed_decision(
        pending,
        decision,
        signer=signer,
        by=by,
        reason=reason,
        for_run=for_run,  # type: ignore[arg-type]
    )
    _sync(signal(_target(address), run_id, "decide", data))
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        handled = {h["nonce"]: h["outcome"] for h in temporal_state(address, run_id)["handled"]}
        outcome = handled.get(data["nonce"])
        if outcome is not None:
            if outcome.startswith("refused"):
                err.print(f"[red]run {escape(run_id)} refused the decision[/]: {escape(outcome)}")
                raise typer.Exit(1)
            out.print(
                f"[bold]{'approved' if decision == 'approve' else 'rejected'}[/] "
                f"{escape(pending.tool)} ({escape(pending.call_id)}) at step {pending.step} of "
                f"{escape(run_id)}, signed by {escape(signer.fingerprint)}"
            )
            return
        time.sleep(0.2)
    err.print(f"[yellow]run {escape(run_id)} did not take the decision within {wait:g}s[/]")
    raise typer.Exit(1)


def temporal_control(address: str | None, run_id: str, action: str, by: str, reason: str) -> None:
    """`govrun ctl --temporal`: a request in the run's control folder for a segment that is
    running, and a signal for a run that is waiting."""
    from govrun.runtime.ops.control import send_request
    from govrun.runtime.ops.temporal.service import signal

    got = temporal_state(address, run_id)
    if got.get("status") == "finished":
        err.print(f"run {escape(run_id)} has finished.")
        raise typer.Exit(2)
    folder = Path(str(got.get("folder", ""))) / "control.d"
    if got.get("status") == "running" and folder.is_dir():
        send_request(folder, action, by=by, reason=reason)  # type: ignore[arg-type]
    payload = {"action": action, "by": by, "reason": reason}
    _sync(signal(_target(address), run_id, "control", payload))
    out.print(f"{action} sent to {escape(run_id)} through Temporal (by {escape(by)})")


def temporal_status(address: str | None, json_output: bool) -> None:
    from rich.table import Table

    from govrun.runtime.ops.temporal.service import runs

    target = _target(address)
    found = _sync(runs(target))
    if json_output:
        sys.stdout.write(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not found:
        out.print(f"No govrun runs going on at {escape(target.address)}.")
        return
    table = Table(title=f"govrun runs on Temporal · {escape(target.address)}", title_justify="left")
    for column in ("run", "state", "step", "trace"):
        table.add_column(column, overflow="fold")
    for r in found:
        shown = str(r.get("status", "?"))
        pending = r.get("pending") or {}
        if shown == "waiting" and pending:
            shown = f"waiting: {pending.get('tool')} ({pending.get('call_id')})"
        table.add_row(
            escape(r["run_id"]),
            escape(shown),
            str(r.get("step", "")),
            escape(str(r.get("trace", ""))),
        )
    out.print(table)


def _sync(awaitable: Coroutine[Any, Any, T]) -> T:
    """Run one call to the Temporal client to its end (asyncio is imported here: the
    other commands never need it)."""
    import asyncio

    return asyncio.run(awaitable)
