"""The benchmark scripts refuse counts they cannot run with a usage error, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        (
            "bench_replay",
            ["--steps", "-5"],
            "argument --steps: expected a number of at least 1, got -5",
        ),
        ("bench_loop", ["--reps", "0"], "argument --reps: expected a number of at least 1, got 0"),
        (
            "bench_trace",
            ["--events", "many"],
            "argument --events: expected a whole number, got 'many'",
        ),
        (
            "bench_peers",
            ["--steps", "200", "0"],
            "argument --steps: expected a number of at least 1",
        ),
        (
            "bench_diff",
            ["--reps", "-1"],
            "argument --reps: expected a number of at least 1, got -1",
        ),
        (
            "bench_inspect",
            ["--steps", "1.5"],
            "argument --steps: expected a whole number, got '1.5'",
        ),
        (
            "bench_pycall",
            ["--calls", "0"],
            "argument --calls: expected a number of at least 1, got 0",
        ),
    ],
)
def test_a_benchmark_refuses_a_count_below_one_as_a_usage_error(
    script: str, args: list[str], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{script}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
