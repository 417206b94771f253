"""Per-call cost of a Python tool, inline and under ``isolation: process`` (not a test).

    python -m benchmarks.bench_pycall [--calls 2000] [--reps 7] [--starts 5]

Calls the workload's trivial tool (``benchmarks.workload:add``) as the loop does — validate
the arguments, run the tool, get its ``ToolResult`` — CALLS times per repetition, after a
warm-up, in both modes: inline (in govrun's process, under the interval timer) and process
(a round trip to the tool's warm worker). Also the floor of that round trip: a small
message to a Python echo process and back over pipes, nothing else. Prints µs per call
(median and best of REPS), the ratio, and the time a first call takes to start a worker
(median of STARTS); writes benchmarks/results/pycall.json. No target: the numbers say what
process isolation costs. On a machine with few cores the round trip is bimodal: a few µs
when the scheduler runs both processes on one CPU, tens when it wakes the other one.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from subprocess import PIPE
from typing import Any, Literal

import orjson

from benchmarks.args import positive_int
from govrun.runtime.tools import PythonTool, load_python_tool, parse_arguments

RESULTS = Path(__file__).resolve().parent / "results" / "pycall.json"
SPEC = "benchmarks.workload:add"
Isolation = Literal["inline", "process"]
MODES: tuple[Isolation, ...] = ("inline", "process")


def per_call_us(tool: PythonTool, calls: int) -> float:
    """µs per call over ``calls`` calls, each validated and run as the loop does."""
    gc.collect()  # the previous repetition's garbage is not this one's cost
    start = time.perf_counter()
    for i in range(calls):
        result = tool.run(parse_arguments(tool, {"a": i, "b": 1}))
    elapsed = time.perf_counter() - start
    if not result.ok or result.output != str(calls):
        raise SystemExit(f"{tool.name}: unexpected result {result.output!r} ({result.error})")
    return elapsed / calls * 1e6


def measure(isolation: Isolation, calls: int, reps: int) -> dict[str, float]:
    tool = load_python_tool(SPEC, name="add", isolation=isolation)
    try:
        per_call_us(tool, min(calls, 200))  # warm-up: the worker, caches, branch predictors
        times = [per_call_us(tool, calls) for _ in range(reps)]
    finally:
        tool.close()
    return {"us_median": statistics.median(times), "us_min": min(times)}


ECHO = "import os\nwhile (data := os.read(0, 65536)):\n    os.write(1, data)\n"


def pipe_floor(calls: int, reps: int) -> dict[str, float]:
    """µs per round trip of a 40-byte message to an echo process: what any worker costs."""
    echo = subprocess.Popen([sys.executable, "-c", ECHO], stdin=PIPE, stdout=PIPE)
    assert echo.stdin is not None and echo.stdout is not None
    out, back = echo.stdin.fileno(), echo.stdout.fileno()
    message = b"x" * 40
    times = []
    try:
        for rep in range(reps + 1):
            start = time.perf_counter()
            for _ in range(calls):
                os.write(out, message)
                os.read(back, 65536)
            if rep:  # the first one warms up
                times.append((time.perf_counter() - start) / calls * 1e6)
    finally:
        echo.stdin.close()
        echo.wait()
        echo.stdout.close()
    return {"us_median": statistics.median(times), "us_min": min(times)}


def first_call_ms(starts: int) -> float:
    """Median ms of a call that has to start its worker (and import the tool's module)."""
    tool = load_python_tool(SPEC, name="add", isolation="process")
    times = []
    try:
        for _ in range(starts):
            tool.close()
            start = time.perf_counter()
            tool.run(parse_arguments(tool, {"a": 1, "b": 1}))
            times.append((time.perf_counter() - start) * 1e3)
    finally:
        tool.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=positive_int, default=2000)
    parser.add_argument("--reps", type=positive_int, default=7)
    parser.add_argument("--starts", type=positive_int, default=5)
    args = parser.parse_args()
    rows = {mode: measure(mode, args.calls, args.reps) for mode in MODES}
    rows["pipe floor"] = pipe_floor(args.calls, args.reps)
    start_ms = first_call_ms(args.starts)
    ratio = rows["process"]["us_median"] / rows["inline"]["us_median"]
    extra = rows["process"]["us_median"] - rows["inline"]["us_median"]
    print(
        f"Python tool per call · add(a, b) · {platform.python_version()} · "
        f"{platform.machine()} · {args.calls:,} calls, median and best of {args.reps}"
    )
    print(f"{'isolation':<11} {'µs/call':>9} {'best':>9}")
    print("-" * 31)
    for mode, row in rows.items():
        print(f"{mode:<11} {row['us_median']:>9.1f} {row['us_min']:>9.1f}")
    over_floor = rows["process"]["us_median"] - rows["pipe floor"]["us_median"]
    print(
        f"process costs {ratio:.1f}x inline (+{extra:.0f} µs per call, {over_floor:.0f} µs "
        f"above the pipe floor); a first call starts its worker in {start_ms:.0f} ms "
        f"(median of {args.starts})"
    )
    result: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.python_version()}",
        "tool": SPEC,
        "calls": args.calls,
        "reps": args.reps,
        **{
            f"{mode.replace(' ', '_')}_{key}": round(v, 2)
            for mode, row in rows.items()
            for key, v in row.items()
        },
        "ratio_median": round(ratio, 2),
        "extra_us_median": round(extra, 1),
        "over_floor_us_median": round(over_floor, 1),
        "first_call_ms_median": round(start_ms, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
