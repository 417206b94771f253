"""Talking to Temporal: connect, run a worker, submit a run, and reach a running one (its
state, a signed decision, a control request). Asynchronous, as the SDK is; the CLI runs each
call with ``asyncio.run``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from govrun.runtime.errors import GovrunError

INSTALL_HINT = "Temporal needs its SDK: pip install 'govrun[temporal]'"
DEFAULT_QUEUE = "govrun"
DEFAULT_NAMESPACE = "default"


TLS_FILES = {
    "ca": "GOVRUN_TEMPORAL_TLS_CA_PATH",
    "cert": "GOVRUN_TEMPORAL_TLS_CERT_PATH",
    "key": "GOVRUN_TEMPORAL_TLS_KEY_PATH",
}
_YES, _NO = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Tls:
    """TLS to the service: the CA that signed its certificate (else the system's roots), a
    client certificate and key for mutual TLS, and the name its certificate must carry when
    it is not the address's host."""

    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = field(default=None, repr=False)
    server_name: str | None = None


@dataclass(frozen=True)
class Target:
    """Where the Temporal service is and how to reach it, from options or GOVRUN_TEMPORAL_*
    variables: ``_ADDRESS``, ``_NAMESPACE``, ``_QUEUE``; for a service that needs TLS or
    an API key (Temporal Cloud, a self-hosted cluster behind mTLS) ``_API_KEY``, ``_TLS``
    (1 or 0), ``_TLS_CA_PATH``, ``_TLS_CERT_PATH`` with ``_TLS_KEY_PATH``, and
    ``_TLS_SERVER_NAME`` — the names the Temporal CLI gives them, prefixed."""

    address: str
    namespace: str = DEFAULT_NAMESPACE
    task_queue: str = DEFAULT_QUEUE
    tls: Tls | None = None
    """None: plain gRPC, unless an API key asks for TLS with the system's roots."""
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def resolve(
        cls,
        address: str | None,
        namespace: str | None = None,
        task_queue: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Target:
        env = os.environ if env is None else env
        found = address or env.get("GOVRUN_TEMPORAL_ADDRESS")
        if not found:
            raise GovrunError(
                "no Temporal service given",
                hint="Pass --temporal HOST:PORT or set GOVRUN_TEMPORAL_ADDRESS.",
            )
        api_key = env.get("GOVRUN_TEMPORAL_API_KEY") or None
        return cls(
            found,
            namespace or env.get("GOVRUN_TEMPORAL_NAMESPACE") or DEFAULT_NAMESPACE,
            task_queue or env.get("GOVRUN_TEMPORAL_QUEUE") or DEFAULT_QUEUE,
            tls=_tls(env, api_key is not None),
            api_key=api_key,
        )

    @property
    def secure(self) -> bool:
        return self.tls is not None or self.api_key is not None


def _tls(env: Mapping[str, str], for_api_key: bool) -> Tls | None:
    """The TLS settings the variables ask for; None for plain gRPC."""
    from govrun.runtime.manifest.inputs import TLS_FILE, read_text

    switch = (env.get("GOVRUN_TEMPORAL_TLS") or "").strip().lower()
    if switch and switch not in _YES | _NO:
        raise GovrunError(
            f"GOVRUN_TEMPORAL_TLS is {switch!r}: expected 1 or 0",
            hint="1 connects over TLS (the system's root certificates unless "
            "GOVRUN_TEMPORAL_TLS_CA_PATH names a CA); 0 or unset, plain gRPC.",
        )
    paths = {name: env.get(var) for name, var in TLS_FILES.items() if env.get(var)}
    server_name = env.get("GOVRUN_TEMPORAL_TLS_SERVER_NAME") or None
    asked = switch in _YES or bool(paths) or server_name is not None
    if switch in _NO:
        if asked or for_api_key:
            given = [TLS_FILES[n] for n in paths] + (["GOVRUN_TEMPORAL_API_KEY"] * for_api_key)
            raise GovrunError(
                f"GOVRUN_TEMPORAL_TLS is {switch!r} but {', '.join(given) or 'a server name'} "
                "asks for TLS",
                hint="An API key is sent only over TLS; unset GOVRUN_TEMPORAL_TLS or the rest.",
            )
        return None
    if ("cert" in paths) != ("key" in paths):
        raise GovrunError(
            "mutual TLS needs both GOVRUN_TEMPORAL_TLS_CERT_PATH and GOVRUN_TEMPORAL_TLS_KEY_PATH",
            hint="The client certificate and its private key, each a PEM file.",
        )
    if not asked:
        return None  # an API key alone: TLS with the system's roots (the SDK's default)
    pem = {name: read_text(path, TLS_FILE).encode() for name, path in paths.items()}
    return Tls(pem.get("ca"), pem.get("cert"), pem.get("key"), server_name)


def sdk() -> Any:
    try:
        import temporalio.client
    except ImportError as exc:
        raise GovrunError(f"{INSTALL_HINT} ({exc})") from None
    return temporalio


async def connect(target: Target) -> Any:
    sdk()
    from temporalio.client import Client
    from temporalio.service import TLSConfig

    tls: bool | TLSConfig = False
    if target.tls is not None:
        t = target.tls
        tls = TLSConfig(
            server_root_ca_cert=t.ca,
            client_cert=t.cert,
            client_private_key=t.key,
            domain=t.server_name,
        )
    elif target.api_key is not None:
        tls = True
    try:
        return await Client.connect(
            target.address, namespace=target.namespace, api_key=target.api_key, tls=tls
        )
    except Exception as exc:  # the SDK raises RuntimeError for an unreachable service
        text = str(exc)
        if target.api_key:
            text = text.replace(target.api_key, "[API key]")
        why = "connection refused" if "Connection refused" in text else text.split("\n")[0][:300]
        over = " over TLS" if tls else ""
        raise GovrunError(
            f"cannot reach Temporal at {target.address}{over} (namespace {target.namespace}): "
            f"{why}",
            hint="Is the service running? `temporal server start-dev` starts one locally. "
            "A service behind TLS: GOVRUN_TEMPORAL_TLS=1, and GOVRUN_TEMPORAL_TLS_CA_PATH for "
            "a private CA; Temporal Cloud: GOVRUN_TEMPORAL_API_KEY.",
        ) from None


async def run_worker(target: Target, *, concurrent: int = 4) -> None:
    """Execute govrun runs from ``target``'s task queue until SIGINT or SIGTERM, then shut
    down cleanly: segments in progress are left to Temporal's retry on another worker."""
    import asyncio
    import signal

    from temporalio.worker import Worker

    from govrun.runtime.ops.temporal.segment import run_segment
    from govrun.runtime.ops.temporal.workflow import GovrunRun

    client = await connect(target)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    with ThreadPoolExecutor(max_workers=concurrent) as pool:
        worker = Worker(
            client,
            task_queue=target.task_queue,
            workflows=[GovrunRun],
            activities=[run_segment],
            activity_executor=pool,
            max_concurrent_activities=concurrent,
            graceful_shutdown_timeout=timedelta(seconds=5),
        )
        async with worker:
            await stop.wait()


@dataclass(frozen=True)
class Submission:
    run_id: str
    folder: Path
    params: dict[str, Any]


def submission(
    manifest: Any,
    *,
    manifest_path: Path,
    task: str,
    runs: Path,
    run_id: str,
    heartbeat_s: float = 10.0,
    max_attempts: int = 5,
    segment_timeout_s: float = 24 * 3600,
) -> Submission:
    """What a worker needs to run ``manifest``: its snapshot, the folder it was loaded from
    (workers must see it at the same path), the task, and where the run's traces go."""
    folder = (runs / run_id).resolve()
    params = {
        "run_id": run_id,
        "snapshot": manifest.canonical_dict(),
        "base_dir": str(manifest.base_dir.resolve()),
        "manifest_path": str(manifest_path.resolve()),
        "task": task,
        "folder": str(folder),
        "heartbeat_s": heartbeat_s,
        "max_attempts": max_attempts,
        "segment_timeout_s": segment_timeout_s,
    }
    return Submission(run_id, folder, params)


async def submit(target: Target, sub: Submission, *, wait: bool) -> dict[str, Any] | None:
    from govrun.runtime.ops.temporal.workflow import WORKFLOW

    client = await connect(target)
    handle = await client.start_workflow(
        WORKFLOW, sub.params, id=sub.run_id, task_queue=target.task_queue
    )
    return await handle.result() if wait else None


async def state(target: Target, run_id: str) -> dict[str, Any]:
    """The govrun state of a run on Temporal (its workflow's ``state`` query)."""
    client = await connect(target)
    handle = client.get_workflow_handle(run_id)
    try:
        return dict(await handle.query("state"))
    except Exception as exc:
        raise GovrunError(
            f"no govrun run {run_id!r} on Temporal at {target.address}: {exc}"
        ) from None


async def signal(target: Target, run_id: str, name: str, payload: dict[str, Any]) -> None:
    client = await connect(target)
    try:
        await client.get_workflow_handle(run_id).signal(name, payload)
    except Exception as exc:
        raise GovrunError(f"cannot signal run {run_id!r} on Temporal: {exc}") from None


async def runs(target: Target) -> list[dict[str, Any]]:
    """The govrun runs Temporal's visibility lists as running, each with its state."""
    from govrun.runtime.ops.temporal.workflow import WORKFLOW

    client = await connect(target)
    found: list[dict[str, Any]] = []
    query = f"WorkflowType = '{WORKFLOW}' AND ExecutionStatus = 'Running'"
    async for execution in client.list_workflows(query):
        try:
            got = await client.get_workflow_handle(execution.id).query("state")
        except Exception:
            got = {}
        found.append({"run_id": execution.id, **dict(got)})
    return found
