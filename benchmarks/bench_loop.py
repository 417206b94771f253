"""Governed-step overhead benchmark (not a test).

    python -m benchmarks.bench_loop [--steps 200 1000] [--reps 5] [--registry]

Runs the shared workload (benchmarks/workload.py) through the real loop: scripted model,
the real `add` tool as a Python callable, a five-rule policy, budgets and interrupts on,
the hash-chained trace on disk before every side effect (two writes a step). Compares with a bare
Python loop that makes the same calls and appends the same events as orjson lines with a
flush. Prints µs per step (median and min of REPS after a warm-up), the governed step's own
overhead (govrun - bare) and whether per-step cost stays flat as N grows. ``--registry``
runs as `govrun run` does: listed in a run registry and steerable by `govrun ctl`.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from benchmarks.args import positive_int
from benchmarks.workload import add, turns, write_agent
from govrun.runtime.manifest.schema import load_manifest
from govrun.runtime.models.scripted import ScriptedModel
from govrun.runtime.ops.registry import Registry
from govrun.runtime.run import run_agent
from govrun.runtime.trace.reader import read_trace

RESULTS = Path(__file__).resolve().parent / "results" / "loop.json"
TARGET_US = 50.0
FLAT = 0.20


def govrun_once(
    manifest_path: Path, n: int, out: Path, registry: Registry | None = None
) -> tuple[float, Path]:
    manifest = load_manifest(manifest_path)
    model = ScriptedModel(turns(n), name="bench")
    trace = out / f"govrun-{time.monotonic_ns()}.jsonl"
    start = time.perf_counter()
    result = run_agent(
        manifest,
        task="add numbers",
        trace_path=trace,
        model=model,
        run_id="bench",
        registry=registry,
    )
    elapsed = time.perf_counter() - start
    if result.status != "completed" or result.steps != n + 1:
        sys.exit(f"benchmark run did not complete: {result.status} {result.reason}")
    return elapsed, trace


def bare_once(n: int, by_step: dict[int, list[dict[str, Any]]], out: Path) -> float:
    """Same calls, same events as orjson lines with a flush: the floor."""
    script = turns(n)
    start = time.perf_counter()
    with open(out / f"bare-{time.monotonic_ns()}.jsonl", "wb") as f:
        for event in by_step[0]:
            f.write(orjson.dumps(event) + b"\n")
            f.flush()
        for i, turn in enumerate(script, start=1):
            for call in turn.get("tool_calls") or []:
                add(**call["arguments"])
            for event in by_step[i]:
                f.write(orjson.dumps(event) + b"\n")
                f.flush()
    return time.perf_counter() - start


def measure(n: int, reps: int, folder: Path, registry: Registry | None = None) -> dict[str, Any]:
    manifest_path = write_agent(folder / f"agent-{n}", n)
    govrun_once(manifest_path, n, folder, registry)  # warm-up: imports, caches
    runs, trace = [], None
    for _ in range(reps):
        elapsed, trace = govrun_once(manifest_path, n, folder, registry)
        runs.append(elapsed)
    assert trace is not None
    events, _ = read_trace(trace)
    by_step: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_step[e.step].append(e.model_dump(mode="json"))
    bare_once(n, by_step, folder)
    bare = [bare_once(n, by_step, folder) for _ in range(reps)]
    steps = n + 1
    g_med, b_med = statistics.median(runs) / steps * 1e6, statistics.median(bare) / steps * 1e6
    return {
        "n": n,
        "steps": steps,
        "events": len(events),
        "trace_bytes": trace.stat().st_size,
        "govrun_us_median": round(g_med, 2),
        "govrun_us_min": round(min(runs) / steps * 1e6, 2),
        "bare_us_median": round(b_med, 2),
        "overhead_us": round(g_med - b_med, 2),
        "ratio": round(g_med / b_med, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=positive_int, nargs="+", default=[200, 1000])
    parser.add_argument("--reps", type=positive_int, default=5)
    parser.add_argument(
        "--registry", action="store_true", help="register runs as `govrun run` does"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="govrun-bench-") as tmp:
        registry = Registry(Path(tmp) / "runs") if args.registry else None
        rows = [measure(n, args.reps, Path(tmp), registry) for n in args.steps]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"governed step benchmark · {platform.python_version()} · {platform.machine()} · "
        f"median of {args.reps} after a warm-up"
    )
    header = (
        f"{'N':>6} {'events':>7} {'trace KB':>9} {'govrun µs/step':>15} {'min':>7} "
        f"{'bare µs/step':>13} {'overhead µs':>12} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['n']:>6} {r['events']:>7} {r['trace_bytes'] / 1024:>9.0f} "
            f"{r['govrun_us_median']:>15.1f} {r['govrun_us_min']:>7.1f} "
            f"{r['bare_us_median']:>13.1f} {r['overhead_us']:>12.1f} {r['ratio']:>5.1f}x"
        )
    last = rows[-1]
    verdicts = [
        (
            f"overhead per step at N={last['n']} <= {TARGET_US:.0f} µs",
            last["overhead_us"] <= TARGET_US,
        )
    ]
    if len(rows) > 1:
        first = rows[0]
        growth = last["govrun_us_median"] / first["govrun_us_median"] - 1
        verdicts.append(
            (
                f"per-step cost flat from N={first['n']} to N={last['n']} "
                f"(within {FLAT:.0%}; measured {growth:+.0%})",
                abs(growth) <= FLAT,
            )
        )
        size_ratio = (last["trace_bytes"] / last["steps"]) / (first["trace_bytes"] / first["steps"])
        verdicts.append(
            (f"trace size linear in N (bytes per step ratio {size_ratio:.2f})", size_ratio < 1.2)
        )
    verdicts.append((f"peak RSS {rss_mb:.0f} MB < 100 MB", rss_mb < 100))
    for text, ok in verdicts:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    results = RESULTS.with_name("loop-registry.json") if args.registry else RESULTS
    results.parent.mkdir(exist_ok=True)
    results.write_bytes(
        orjson.dumps(
            {
                "rows": rows,
                "peak_rss_mb": round(rss_mb, 1),
                "verdicts": [{"check": t, "pass": ok} for t, ok in verdicts],
            },
            option=orjson.OPT_INDENT_2,
        )
    )


if __name__ == "__main__":
    main()
