"""Talking to Temporal: connect, run a worker, submit a run, and reach a running one (its
state, a signed decision, a control request). Asynchronous, as the SDK is; the CLI runs each
call with ``asyncio.run``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from govrun.runtime.errors import GovrunError

INSTALL_HINT = "Temporal needs its SDK: pip install 'govrun[temporal]'"
DEFAULT_QUEUE = "govrun"
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class Target:
    """Where the Temporal service is, from options or GOVRUN_TEMPORAL_* variables."""

    address: str
    namespace: str = DEFAULT_NAMESPACE
    task_queue: str = DEFAULT_QUEUE

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
        return cls(
            found,
            namespace or env.get("GOVRUN_TEMPORAL_NAMESPACE") or DEFAULT_NAMESPACE,
            task_queue or env.get("GOVRUN_TEMPORAL_QUEUE") or DEFAULT_QUEUE,
        )


def sdk() -> Any:
    try:
        import temporalio.client
    except ImportError as exc:
        raise GovrunError(f"{INSTALL_HINT} ({exc})") from None
    return temporalio


async def connect(target: Target) -> Any:
    sdk()
    from temporalio.client import Client

    try:
        return await Client.connect(target.address, namespace=target.namespace)
    except Exception as exc:  # the SDK raises RuntimeError for an unreachable service
        text = str(exc)
        why = "connection refused" if "Connection refused" in text else text.split("\n")[0][:200]
        raise GovrunError(
            f"cannot reach Temporal at {target.address} (namespace {target.namespace}): {why}",
            hint="Is the service running? `temporal server start-dev` starts one locally.",
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
