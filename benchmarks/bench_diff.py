"""`govrun diff` benchmark (not a test).

    python -m benchmarks.bench_diff [--steps 10000] [--reps 5]

Writes three traces of the shared workload (benchmarks/workload.py) through the real loop:
the base run, one whose step 5,000 calls ``add`` with another argument, and one with an
extra step inserted at 5,000. Times what `govrun diff` does for each pair — load both
trajectories, align them, compare the steps — as the median of REPS after a warm-up, and
checks that the diff found the right first divergence. Target: under 1 s for 10,000 steps.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from benchmarks.args import positive_int
from benchmarks.workload import MANIFEST, turns
from govrun.runtime.manifest.schema import load_manifest
from govrun.runtime.models.scripted import ScriptedModel
from govrun.runtime.run import run_agent
from govrun.runtime.views.diff import TrajectoryDiff, diff_trajectories
from govrun.runtime.views.trajectory import load_trajectory

RESULTS = Path(__file__).resolve().parent / "results" / "diff.json"
TARGET_S = 1.0


def write_trace(folder: Path, script: list[dict[str, Any]], name: str) -> Path:
    """Run the workload agent on ``script`` (its calls, then "done") into ``name``.jsonl.
    The model is given directly, so its script file stays empty (YAML-dumping 10,000 turns
    takes longer than the run)."""
    agent = folder / f"agent-{name}"
    agent.mkdir(parents=True)
    (agent / "script.yaml").write_text("[]\n")
    (agent / "agent.yaml").write_text(MANIFEST.format(steps=len(script) + 5))
    manifest = load_manifest(agent / "agent.yaml")
    trace = folder / f"{name}.jsonl"
    result = run_agent(
        manifest,
        task="add numbers",
        trace_path=trace,
        model=ScriptedModel(script, name="bench"),
        run_id=f"bench-{name}",
    )
    if result.status != "completed":
        sys.exit(f"benchmark run {name} did not complete: {result.status} {result.reason}")
    return trace


def scripts(n: int) -> dict[str, list[dict[str, Any]]]:
    """The base script and its two variants, all differing at step n/2 (turn n/2 - 1)."""
    base = turns(n)
    at = n // 2 - 1
    changed = orjson.loads(orjson.dumps(base))
    changed[at]["tool_calls"][0]["arguments"]["b"] = 2
    extra = {
        "content": None,
        "usage": base[at]["usage"],
        "tool_calls": [{"id": "call_extra", "name": "add", "arguments": {"a": at, "b": 7}}],
    }
    return {"base": base, "changed": changed, "inserted": [*base[:at], extra, *base[at:]]}


def measure(a: Path, b: Path, reps: int) -> tuple[dict[str, float], TrajectoryDiff]:
    """Median and min of load + diff, and the parts, over ``reps`` after a warm-up."""
    totals: list[float] = []
    loads: list[float] = []
    diffs: list[float] = []
    result = None
    for rep in range(reps + 1):
        result = None
        gc.collect()  # the previous repetition's garbage is not this one's cost
        start = time.perf_counter()
        ta, tb = load_trajectory(a), load_trajectory(b)
        loaded = time.perf_counter()
        result = diff_trajectories(ta, tb)
        end = time.perf_counter()
        if rep:  # the first one warms imports and caches
            totals.append(end - start)
            loads.append(loaded - start)
            diffs.append(end - loaded)
        del ta, tb
    assert result is not None
    return {
        "total_s_median": round(statistics.median(totals), 3),
        "total_s_min": round(min(totals), 3),
        "load_both_s_median": round(statistics.median(loads), 3),
        "diff_s_median": round(statistics.median(diffs), 4),
    }, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=positive_int, default=10_000)
    parser.add_argument("--reps", type=positive_int, default=5)
    args = parser.parse_args()
    n = args.steps
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="govrun-bench-diff-") as tmp:
        folder = Path(tmp)
        made = time.perf_counter()
        # Written by child processes, so this one measures with a heap as fresh as that of
        # a `govrun diff` (after 30,000 governed steps it is fragmented and loads ~25% slower).
        with ProcessPoolExecutor(max_workers=2) as pool:
            jobs = {
                name: pool.submit(write_trace, folder, s, name) for name, s in scripts(n).items()
            }
            traces = {name: job.result() for name, job in jobs.items()}
        made = time.perf_counter() - made
        for variant in ("changed", "inserted"):
            timing, d = measure(traces["base"], traces[variant], args.reps)
            first = d.first_divergence
            rows.append(
                {
                    "pair": f"base vs {variant}",
                    "steps": [d.a.totals.steps, d.b.totals.steps],
                    "trace_mb": round(traces[variant].stat().st_size / 1e6, 1),
                    **timing,
                    "first_divergence": None
                    if first is None
                    else {"a_step": first.a_step, "b_step": first.b_step, "kind": first.kind},
                    "entries": len(d.entries),
                }
            )
    print(
        f"diff benchmark · {n:,}-step traces · {platform.python_version()} · "
        f"{platform.machine()} · median of {args.reps} after a warm-up "
        f"(writing the traces took {made:.1f}s)"
    )
    header = (
        f"{'pair':<18} {'steps a/b':>13} {'MB':>5} {'load both s':>12} {'diff s':>7} "
        f"{'total s':>8} {'min':>6}  first divergence"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        fd = r["first_divergence"] or {}
        steps = f"{r['steps'][0]:,}/{r['steps'][1]:,}"
        print(
            f"{r['pair']:<18} {steps:>13} {r['trace_mb']:>5} {r['load_both_s_median']:>12.3f} "
            f"{r['diff_s_median']:>7.3f} {r['total_s_median']:>8.3f} {r['total_s_min']:>6.3f}  "
            f"{fd.get('kind')} at step {fd.get('a_step')} (a) / {fd.get('b_step')} (b)"
        )
    half = n // 2
    verdicts = [
        (
            f"{r['pair']}: load + diff of two {n:,}-step traces < {TARGET_S:.0f} s "
            f"(median {r['total_s_median']:.3f} s)",
            r["total_s_median"] < TARGET_S,
        )
        for r in rows
    ]
    verdicts += [
        (
            f"{r['pair']}: first divergence at step {half:,}, one differing step",
            r["first_divergence"] is not None
            and (r["first_divergence"]["a_step"], r["first_divergence"]["b_step"]) == (half, half)
            and r["entries"] == 1,
        )
        for r in rows
    ]
    for text, ok in verdicts:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_bytes(
        orjson.dumps(
            {
                "steps": n,
                "reps": args.reps,
                "rows": rows,
                "verdicts": [{"check": t, "pass": ok} for t, ok in verdicts],
            },
            option=orjson.OPT_INDENT_2,
        )
    )


if __name__ == "__main__":
    main()
