"""Replay throughput benchmark (not a test).

    python -m benchmarks.bench_replay [--steps 10000] [--reps 5]

Records one run of the shared workload (benchmarks/workload.py) through the real loop, then
replays it strictly — the whole pipeline a user runs: read and index the record, rebuild the
manifest from the trace, run the same loop with replay adapters, compare every event, and
write the new hash-chained trace. Each repetition times the live run and its replay one
after the other, so their ratio is measured in one sitting. Prints steps/s (median and best
of REPS) against the 5,000 steps/s target and replay's speed-up over the live run it
reproduces against issue #18's 2x, and writes benchmarks/results/replay.json.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

from benchmarks.args import positive_int
from benchmarks.workload import turns, write_agent
from govrun.runtime.manifest.schema import load_manifest
from govrun.runtime.models.scripted import ScriptedModel
from govrun.runtime.replayer.session import replay
from govrun.runtime.run import run_agent
from govrun.runtime.trace.record import Record

RESULTS = Path(__file__).resolve().parent / "results" / "replay.json"
TARGET_STEPS_PER_S = 5000.0
TARGET_SPEEDUP = 2.0
"""Issue #18: replay at least this many times faster per step than the live run."""


def record(folder: Path, n: int, trace: Path) -> float:
    """Run the workload live into ``trace``; the seconds ``run_agent`` took."""
    manifest_path = folder / "agent.yaml"
    if not manifest_path.exists():
        write_agent(folder, n)
    manifest = load_manifest(manifest_path)
    model = ScriptedModel(turns(n), name="bench")
    gc.collect()
    start = time.perf_counter()
    result = run_agent(
        manifest,
        task="add numbers",
        trace_path=trace,
        model=model,
        manifest_path=manifest_path,
        run_id="bench",
    )
    elapsed = time.perf_counter() - start
    if result.status != "completed":
        sys.exit(f"recording did not complete: {result.status} {result.reason}")
    return elapsed


def replay_once(trace: Path, out: Path) -> tuple[float, int]:
    gc.collect()  # the previous repetition's garbage is not this one's cost
    start = time.perf_counter()
    outcome = replay(Record.load(trace), out)
    elapsed = time.perf_counter() - start
    if not outcome.identical:
        why = outcome.divergence.message if outcome.divergence else outcome.result.reason
        sys.exit(f"the benchmark trace did not replay identically: {why}")
    return elapsed, outcome.result.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=positive_int, default=10_000)
    parser.add_argument("--reps", type=positive_int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="govrun-bench-replay-") as tmp:
        folder = Path(tmp)
        trace = folder / "recorded.jsonl"
        record(folder, args.steps, trace)
        events = sum(1 for _ in trace.open("rb"))
        replay_once(trace, folder / "warmup.jsonl")
        times: list[float] = []
        live: list[float] = []
        steps = 0
        for rep in range(args.reps):
            live.append(record(folder, args.steps, folder / f"live-{rep}.jsonl"))
            elapsed, steps = replay_once(trace, folder / f"replay-{rep}.jsonl")
            times.append(elapsed)
    median, best = statistics.median(times), min(times)
    rate = steps / median
    speedup = statistics.median(live) / median
    verdict = "met" if rate >= TARGET_STEPS_PER_S else "MISSED"
    print(f"replay of a {steps:,}-step trace ({events:,} events), {args.reps} runs:")
    print(
        f"  median {median:.3f} s = {rate:,.0f} steps/s   best {best:.3f} s = {steps / best:,.0f}"
    )
    print(
        f"  per step {median / steps * 1e6:.1f} µs; target ≥ {TARGET_STEPS_PER_S:,.0f} steps/s: "
        f"{verdict}"
    )
    print(
        f"  live run median {statistics.median(live):.3f} s: replay {speedup:.2f}x faster per "
        f"step; target ≥ {TARGET_SPEEDUP:.0f}x: {'met' if speedup >= TARGET_SPEEDUP else 'MISSED'}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(
        orjson.dumps(
            {
                "machine": f"{platform.machine()} {platform.python_version()}",
                "steps": steps,
                "events": events,
                "median_s": median,
                "best_s": best,
                "steps_per_s": rate,
                "target_steps_per_s": TARGET_STEPS_PER_S,
                "met": rate >= TARGET_STEPS_PER_S,
                "live_median_s": statistics.median(live),
                "speedup_over_live": speedup,
                "target_speedup": TARGET_SPEEDUP,
                "speedup_met": speedup >= TARGET_SPEEDUP,
            },
            option=orjson.OPT_INDENT_2,
        )
    )


if __name__ == "__main__":
    main()
