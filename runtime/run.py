"""Wire a manifest to live adapters and run it: the library entry point behind `govrun run`.

Embedders call :func:`run_agent` and get the same governance as the CLI; every port can
be swapped (a scripted model, a replay adapter, another approver).
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import secrets
import socket
import time
from collections.abc import Callable, Container, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from govrun.runtime import __version__
from govrun.runtime.errors import GovrunError, TraceError
from govrun.runtime.govern.approvers import DenyApprover, StopOperator
from govrun.runtime.govern.policy import PolicyEngine
from govrun.runtime.govern.preflight import check_runnable
from govrun.runtime.govern.toolbox import LiveTools, Toolbox
from govrun.runtime.loop import GovernedLoop, RunResult
from govrun.runtime.manifest.schema import MIN_SECRET_CHARS, Manifest
from govrun.runtime.manifest.telemetry import Telemetry
from govrun.runtime.manifest.workspace import (
    WorkspaceCopy,
    make_workspace,
    remove_workspace,
    workspace_folder,
)
from govrun.runtime.ops.approvals import FileApprovalChannel, approvals_folder, connect_approver
from govrun.runtime.ops.control import ControlledOperator, FileControl, control_folder
from govrun.runtime.ops.registry import Registry
from govrun.runtime.ports import Approver, Clock, Control, Model, Operator, SystemClock, Tools
from govrun.runtime.tools.mcp.pins import lock_path
from govrun.runtime.tools.mcp.sources import open_sources
from govrun.runtime.trace.canonical import blob_dir, canonical, sha256_hex
from govrun.runtime.trace.events import SCHEMA_MINOR
from govrun.runtime.trace.signing import Signer, load_default_signer
from govrun.runtime.trace.writer import Durability, Observer, TraceWriter

if TYPE_CHECKING:
    from govrun.runtime.views.telemetry.live import LiveExport


def new_run_id(agent: str) -> str:
    """``<agent>-<UTC time>-<6 hex>``: sortable, readable, unique enough for one host."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{agent}-{stamp}-{secrets.token_hex(3)}"


def default_trace_path(
    agent: str, runs_dir: str | Path = "runs", *, taken: Container[Path] = ()
) -> Path:
    """A new trace's path in ``runs_dir``, named after the agent and the time: one that no
    file holds yet and that is not in ``taken`` (paths promised to runs not started yet)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path = Path(runs_dir) / f"{agent}-{stamp}.jsonl"
    n = 1
    while path in taken or any(p.exists() for p in (path, blob_dir(path), workspace_folder(path))):
        n += 1
        path = Path(runs_dir) / f"{agent}-{stamp}-{n}.jsonl"
    return path


def run_agent(
    manifest: Manifest,
    *,
    task: str | None = None,
    trace_path: str | Path | None = None,
    model: Model | None = None,
    models: Mapping[str, Model] | None = None,
    tools: Tools | None = None,
    approver: Approver | None = None,
    operator: Operator | None = None,
    clock: Clock | None = None,
    control: Control | None = None,
    observers: Iterable[Observer] = (),
    durability: Durability | None = None,
    env: Mapping[str, str] | None = None,
    run_id: str | None = None,
    manifest_path: str | Path | None = None,
    signer: Signer | None = None,
    registry: Registry | None = None,
    fence: Callable[[], None] | None = None,
    telemetry: Telemetry | None = None,
    on_telemetry_problem: Callable[[str], None] | None = None,
) -> RunResult:
    """Run ``manifest`` on ``task`` under the governed loop, writing a new trace.

    Approvals and the trace seal are signed by ``signer``; without one, by the user's key
    (``govrun keys init``, found through the process environment, not ``env``), else by a
    key made for this run only. A key file others can read is refused before the trace is
    created.

    With a ``registry`` the run is listed there while it goes (`govrun status`) and can be
    steered from outside (`govrun ctl`): ``control`` is wrapped in a
    :class:`~govrun.runtime.ops.control.FileControl` and ``operator`` in a
    :class:`~govrun.runtime.ops.control.ControlledOperator`. Without one (the default for embedders;
    `govrun run` passes one) nothing is written besides the trace — and, for a manifest with
    `workspace:`, the run's copy of its template in ``TRACE.workspace/`` (the result's
    ``workspace``), where its tools work. ``fence`` is checked before every append to the
    trace (see :class:`~govrun.runtime.trace.writer.TraceWriter`).

    ``telemetry`` (default: the manifest's `telemetry:`) exports the run live as
    OpenTelemetry spans; a problem reaching the collector goes to ``on_telemetry_problem``
    (default: a logging warning), once, and never to the run.
    """
    env = os.environ if env is None else env
    check_secrets(manifest, env)
    task = task if task is not None else manifest.input
    if not task:
        raise GovrunError(
            "no task for the agent: pass one with -i/--input or set `input:` in the manifest."
        )
    if manifest.models and models is None:
        from govrun.runtime.models import build_model

        models = {
            name: build_model(cfg, base_dir=manifest.base_dir, env=env)
            for name, cfg in manifest.models.items()
        }
    if model is None and models and manifest.routing is not None:
        model = models[manifest.routing.default]
    if model is None:
        from govrun.runtime.models import build_model

        model = build_model(manifest.model, base_dir=manifest.base_dir, env=env)
    path = Path(trace_path) if trace_path else default_trace_path(manifest.name)
    manifest = manifest.with_workspace(workspace_folder(path))
    workspace = manifest.workspace_copy
    # MCP servers start first: their tools are part of what the preflight checks. One that
    # cannot be used ends the run, recorded (mcp_server with its error), after run_started.
    declared = manifest
    mcp = open_sources(manifest, lock_file=_lock_file(manifest, manifest_path), env=env)
    try:
        manifest = mcp.manifest
        if mcp.error is None:  # before the trace exists: a refused run leaves none
            toolbox = check_runnable(manifest, scripts=False, mcp_tools=mcp.tools)
        else:  # the run ends at the server's event (see GovernedLoop._start)
            toolbox = Toolbox(manifest)
    except BaseException:
        mcp.close()
        raise
    toolbox.closing(mcp)  # the servers stop with the tools, whatever happens from here
    live: LiveExport | None = None
    try:
        watched = telemetry or manifest.telemetry
        live = _live_export(watched, path, env, on_telemetry_problem) if watched else None
        observers = [*observers, live] if live is not None else observers
        policy = PolicyEngine(manifest)
        signer = signer or load_default_signer()
        clock = clock or SystemClock()
        run_id = run_id or new_run_id(manifest.name)
        snapshot = declared.canonical_dict()  # as written: replay expands it as this run did
        registration = (
            registry.register(
                run_id=run_id,
                agent=manifest.name,
                trace=path,
                control=control_folder(path),
                approvals=approvals_folder(path),
            )
            if registry is not None
            else None
        )
        made: WorkspaceCopy | None = None
        try:
            if workspace is not None:
                if path.exists():  # said as the writer would, before a copy is made for nothing
                    raise TraceError(
                        f"{path} already exists; govrun never overwrites a trace.",
                        hint="Choose another path with -o, or move the old trace away.",
                    )
                make_workspace(workspace, path)
                made = workspace
            writer = TraceWriter(
                path,
                run_id=run_id,
                clock=clock,
                durability=durability or manifest.durability,
                secrets=manifest.secret_values(env),
                observers=observers,
                taps=registration.taps if registration is not None else None,
                fence=fence,
            )
        except BaseException:
            if registration is not None:
                registration.discard()
            if made is not None:
                remove_workspace(made)  # the copy this call made, never another run's
            raise
        operator = operator or StopOperator()
        approver = approver or _manifest_approver(manifest)
        channel = connect_approver(  # a run that waits for decisions from elsewhere
            approver,
            lambda: FileApprovalChannel(approvals_folder(path), registration=registration),
            trace=str(path.resolve()),
            policy_hash=policy.policy_hash,
        )
        steering: FileControl | None = None
        if registration is not None:
            steering = FileControl(control_folder(path), inner=control, registration=registration)
            control, operator = steering, ControlledOperator(operator, steering)
        try:
            loop = GovernedLoop(
                manifest=manifest,
                task=task,
                trace=writer,
                model=model,
                toolbox=toolbox,
                tools=tools or LiveTools(),
                approver=approver,
                operator=operator,
                clock=clock,
                control=control,
                signer=signer,
                models=models,
                policy=policy,
                mcp_servers=mcp.events,
                run_started={
                    "agent": manifest.name,
                    "manifest": snapshot,
                    "manifest_hash": sha256_hex(canonical(snapshot)),
                    "manifest_path": str(manifest_path) if manifest_path else None,
                    "input": task,
                    "govrun_version": __version__,
                    "schema_minor": SCHEMA_MINOR,
                    "tools": toolbox.definitions,
                    "policy_hash": policy.policy_hash,
                    "user": _user(),
                    "host": socket.gethostname(),
                    # a field only runs with `workspace:` have: others are written as before
                    **({"workspace": str(workspace.folder)} if workspace is not None else {}),
                },
            )
            result = loop.run()
            if workspace is None:
                return result
            return dataclasses.replace(result, workspace=str(workspace.folder))
        finally:
            try:
                writer.close()
            finally:
                if channel is not None:
                    channel.close()
                if steering is not None:
                    steering.close()
                if registration is not None:
                    registration.close()
    finally:
        try:
            if live is not None:
                live.close()  # its last spans, within its own timeout
        finally:
            toolbox.close()


def _manifest_approver(manifest: Manifest) -> Approver:
    """Without an approver given, the manifest's `approvals.mode` decides: wait for a
    decision from elsewhere, auto-approve, or deny (also `prompt`: nobody can be prompted
    from inside a library call)."""
    from govrun.runtime.govern.approvers import AutoApprover, local_identity
    from govrun.runtime.ops.approvals import waiting_approver

    mode = manifest.approvals.mode
    who = manifest.approvals.identity or local_identity()
    if mode == "wait":
        return waiting_approver(manifest, identity=who)
    return AutoApprover(f"auto ({who})") if mode == "auto" else DenyApprover()


def _live_export(
    telemetry: Telemetry,
    path: Path,
    env: Mapping[str, str],
    say: Callable[[str], None] | None,
) -> LiveExport:
    """The live exporter, before the trace exists: a missing extra or a bad endpoint
    refuses the run rather than running it unwatched."""
    from govrun.runtime.views.telemetry.live import LiveExport, destination_of
    from govrun.runtime.views.telemetry.sdk import require_otel

    require_otel(destination_of(telemetry, env).protocol)
    return LiveExport(telemetry, trace_path=path, env=env, say=say)


def _lock_file(manifest: Manifest, manifest_path: str | Path | None) -> Path | None:
    """Where the MCP pins of this manifest live: beside the file it was read from."""
    source = Path(manifest_path) if manifest_path else manifest.source_file
    return lock_path(source) if source is not None else None


def check_secrets(manifest: Manifest, env: Mapping[str, str]) -> None:
    """Refuse a secret too short to redact (``govrun run`` and ``validate``) before anything
    starts: redacting it would rewrite ordinary text in the record, and not redacting it
    would leak it."""
    short = manifest.short_secrets(env)
    if not short:
        return
    names = ", ".join(short)
    keyed = {cfg.api_key_env for cfg in (manifest.model, *manifest.models.values()) if cfg}
    local = (
        " A local server that needs no key: leave model.api_key_env out (it then gets a "
        "placeholder key, which is not a secret)."
        if keyed.intersection(short)
        else ""
    )
    raise GovrunError(
        f"the secret in {names} is shorter than {MIN_SECRET_CHARS} characters, too short to "
        "redact from the trace safely",
        hint=f"Set {short[0]} to the real secret.{local}",
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
