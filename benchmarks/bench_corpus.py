"""Corpus replay throughput benchmark (not a test): a folder of last month's runs, checked
with one `govrun replay` command, with --jobs 1 and --jobs 2.

    python -m benchmarks.bench_corpus [--traces 200] [--steps 100] [--reps 3]

Records TRACES runs of the shared workload (benchmarks/workload.py) once, of about STEPS
steps each (from half to one and a half times as many, so traces differ in size as real
ones do), then times the whole path a user runs: `govrun replay TRACES... -o DIR --jobs N`
in a fresh process (start, verify and load each trace, replay it, compare every event,
write its new trace, print the report). Each repetition runs --jobs 1 and --jobs 2 one
after the other, alternating which goes first, so the machine's drift hits both alike.
Checks that both print the same report, then prints the medians and their ratio against
the target (≥ 1.7x on 2 cores) and writes benchmarks/results/corpus.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from benchmarks.args import positive_int
from benchmarks.workload import turns, write_agent
from govrun.runtime.manifest.schema import load_manifest
from govrun.runtime.models.scripted import ScriptedModel
from govrun.runtime.run import run_agent

RESULTS = Path(__file__).resolve().parent / "results" / "corpus.json"
TARGET_RATIO = 1.7
GOVRUN = [sys.executable, "-c", "from govrun.cli.main import main; main()"]


def record_corpus(folder: Path, count: int, steps: int) -> list[Path]:
    """``count`` completed runs of the workload, of ``steps / 2`` to ``1.5 * steps`` steps."""
    traces = []
    for i in range(count):
        n = max(1, steps // 2 + (i * 37) % (steps + 1))
        agent = write_agent(folder / "agents" / f"{i:03d}", n)
        path = folder / "traces" / f"run-{i:03d}.jsonl"
        result = run_agent(
            load_manifest(agent),
            task="add numbers",
            trace_path=path,
            model=ScriptedModel(turns(n), name="bench"),
            manifest_path=agent,
            run_id=f"corpus-{i:03d}",
        )
        if result.status != "completed":
            sys.exit(f"recording did not complete: {result.status} {result.reason}")
        traces.append(path)
    return traces


def replay_cli(traces: list[Path], out: Path, jobs: int) -> tuple[float, str]:
    """Seconds for one `govrun replay` command over ``traces``, and what it printed."""
    start = time.perf_counter()
    ran = subprocess.run(
        [*GOVRUN, "replay", *map(str, traces), "-o", str(out), "--jobs", str(jobs)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - start
    if ran.returncode != 0:
        sys.exit(f"replay --jobs {jobs} exited {ran.returncode}:\n{ran.stdout}\n{ran.stderr}")
    return elapsed, ran.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=positive_int, default=200)
    parser.add_argument("--steps", type=positive_int, default=100, help="average per trace")
    parser.add_argument("--reps", type=positive_int, default=3)
    args = parser.parse_args()
    times: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="govrun-bench-corpus-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        traces = record_corpus(folder, args.traces, args.steps)
        size = sum(t.stat().st_size for t in traces)
        events = sum(t.read_bytes().count(b"\n") for t in traces)
        print(
            f"recorded {len(traces)} traces, {events:,} events, {size / 1e6:.1f} MB in "
            f"{time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )
        reports: dict[int, str] = {}
        replay_cli(traces[:4], folder / "warmup", 2)  # file cache, .pyc files
        for rep in range(args.reps):
            for jobs in (1, 2) if rep % 2 == 0 else (2, 1):
                out = folder / f"out-{rep}-{jobs}"
                elapsed, reports[jobs] = replay_cli(traces, out, jobs)
                times[jobs].append(elapsed)
                shutil.rmtree(out)
                print(f"  rep {rep + 1} --jobs {jobs}: {elapsed:.2f} s", file=sys.stderr)
        same = reports[1] == reports[2]
    one, two = statistics.median(times[1]), statistics.median(times[2])
    ratio = one / two
    met = ratio >= TARGET_RATIO and same
    print(
        f"govrun replay over {len(traces)} traces ({events:,} events), {os.cpu_count()} cores, "
        f"median of {args.reps}:"
    )
    print(f"  --jobs 1  {one:6.2f} s  ({len(traces) / one:,.1f} traces/s)")
    print(f"  --jobs 2  {two:6.2f} s  ({len(traces) / two:,.1f} traces/s)")
    verdict = "met" if met else "MISSED"
    print(f"  ratio {ratio:.2f}x; target ≥ {TARGET_RATIO}x: {verdict}; same report: {same}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(
        orjson.dumps(
            {
                "machine": f"{platform.machine()} {platform.python_version()}",
                "cores": os.cpu_count(),
                "traces": len(traces),
                "events": events,
                "bytes": size,
                "reps": args.reps,
                "jobs_1_s": times[1],
                "jobs_2_s": times[2],
                "jobs_1_median_s": one,
                "jobs_2_median_s": two,
                "ratio": ratio,
                "same_report": same,
                "target_ratio": TARGET_RATIO,
                "met": met,
            },
            option=orjson.OPT_INDENT_2,
        )
        + b"\n"
    )


if __name__ == "__main__":
    main()
