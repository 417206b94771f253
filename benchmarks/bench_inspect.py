"""`govrun inspect` benchmark (not a test): first screen and key latency on a big trace.

    python -m benchmarks.bench_inspect [--steps 12500] [--reps 5]

Records one run of the shared workload (benchmarks/workload.py) through the real loop:
12,500 steps are ~100,000 events. Then, headless (``App.run_test``):

- **first screen**: from opening the trace to the first frame drawn with the header and
  timeline rows filled (median of REPS, a fresh app each time), against the 1 s target;
- **key latency**: from sending a key to the end of the screen refresh that first shows
  the new selection (*shown*), and to the end of the last refresh it caused (*settled*:
  e.g. the footer re-laid out after the jump prompt closes). Refreshes are timed inside the
  app, so Pilot's own idle waits do not count. ``j`` ×200, ``G`` and ``g`` alternately
  ×40, and ``:N`` jumps ×20 (timed from enter); median and p95.

Prints a table and writes benchmarks/results/inspect.json.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from textual.css.query import NoMatches
from textual.screen import Screen

from benchmarks.args import positive_int
from benchmarks.workload import turns, write_agent
from govrun.cli.inspect.app import InspectApp
from govrun.cli.inspect.timeline_view import TimelineView
from govrun.runtime.manifest.schema import load_manifest
from govrun.runtime.models.scripted import ScriptedModel
from govrun.runtime.run import run_agent
from govrun.runtime.views.timeline import Timeline

RESULTS = Path(__file__).resolve().parent / "results" / "inspect.json"
TARGET_FIRST_SCREEN_S = 1.0
SIZE = (120, 40)


def record(folder: Path, steps: int) -> Path:
    """One run of the shared workload through the real loop (~8 events per step)."""
    manifest_path = write_agent(folder, steps)
    trace = folder / "recorded.jsonl"
    result = run_agent(
        load_manifest(manifest_path),
        task="add numbers",
        trace_path=trace,
        model=ScriptedModel(turns(steps), name="bench"),
        manifest_path=manifest_path,
        run_id="bench",
    )
    if result.status != "completed":
        raise SystemExit(f"recording did not complete: {result.status} {result.reason}")
    return trace


async def first_screen(trace: Path) -> float:
    """Seconds from opening the trace to the end of the first screen refresh that shows
    timeline rows and the filled header."""
    frames: list[float] = []
    refresh = Screen._compositor_refresh

    def timed_refresh(screen: Screen[Any]) -> None:
        refresh(screen)
        if not frames and _filled(screen.app):
            frames.append(time.perf_counter())

    Screen._compositor_refresh = timed_refresh  # type: ignore[method-assign]
    try:
        start = time.perf_counter()
        app = InspectApp(Timeline(trace))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
    finally:
        Screen._compositor_refresh = refresh  # type: ignore[method-assign]
    if not frames:
        raise SystemExit("the first screen never showed timeline rows and the header")
    return frames[0] - start


def _filled(app: Any) -> bool:
    try:
        rows = app.query_one(TimelineView).rows_drawn
        header = str(app.query_one("#header").visual.plain)
    except NoMatches:
        return False
    return rows > 0 and "bench" in header


async def key_latencies(trace: Path) -> dict[str, list[float]]:
    """Per key press, seconds until the screen is updated."""
    app = InspectApp(Timeline(trace))
    times: dict[str, dict[str, list[float]]] = {
        key: {"shown": [], "settled": []} for key in ("j", "G / g", ": jump")
    }
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        refresh = screen._compositor_refresh
        refreshed: list[tuple[float, int]] = []  # (when, the row selected when drawn)

        def timed_refresh() -> None:
            refresh()
            refreshed.append((time.perf_counter(), app.cursor.row))

        screen._compositor_refresh = timed_refresh  # type: ignore[method-assign]

        async def timed(key: str, bucket: str) -> None:
            before, row = len(refreshed), app.cursor.row
            start = time.perf_counter()
            await pilot.press(key)
            await pilot.pause()
            after = refreshed[before:]
            shown = next((t for t, r in after if r != row), None)
            if shown is None:
                raise SystemExit(f"pressing {key!r} did not move the selection on screen")
            times[bucket]["shown"].append(shown - start)
            times[bucket]["settled"].append(after[-1][0] - start)

        for _ in range(200):
            await timed("j", "j")
        for n in range(40):
            await timed("G" if n % 2 == 0 else "g", "G / g")
        rows = app.tl.rows
        for n in range(1, 21):
            target = (n * 7919) % rows  # spread over the trace, never the current row
            await pilot.press("colon", *str(target))
            await timed("enter", ": jump")
            if app.cursor.row != target:
                raise SystemExit(f"jump to {target} landed on {app.cursor.row}")
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=positive_int, default=12_500)
    parser.add_argument("--reps", type=positive_int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="govrun-bench-inspect-") as tmp:
        trace = record(Path(tmp), args.steps)
        events = sum(1 for _ in trace.open("rb"))
        size = trace.stat().st_size
        firsts = [asyncio.run(first_screen(trace)) for _ in range(args.reps)]
        keys = asyncio.run(key_latencies(trace))
    first = statistics.median(firsts)
    verdict = "met" if first < TARGET_FIRST_SCREEN_S else "MISSED"
    print(f"govrun inspect on a {args.steps:,}-step trace ({events:,} events, {size / 1e6:.1f} MB)")
    print(f"  first screen   median {first * 1000:7.1f} ms   best {min(firsts) * 1000:7.1f} ms")
    print(f"                 target < {TARGET_FIRST_SCREEN_S:.0f} s: {verdict}")
    heads = f"{'shown: median':>13} {'p95':>8}  {'settled: median':>15} {'p95':>8}"
    print(f"  {'key':<8} {'presses':>7}  {heads}")
    report: dict[str, Any] = {}
    for key, kinds in keys.items():
        row = {"presses": len(kinds["shown"])}
        cells = []
        for kind, values in kinds.items():
            med, high = statistics.median(values) * 1000, p95(values) * 1000
            row[f"{kind}_median_ms"], row[f"{kind}_p95_ms"] = med, high
            cells.append(f"{med:>11.1f}ms {high:>6.1f}ms")
        print(f"  {key:<8} {row['presses']:>7}  {cells[0]}  {cells[1]:>24}")
        report[key] = row
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(
        orjson.dumps(
            {
                "machine": f"{platform.machine()} {platform.python_version()}",
                "steps": args.steps,
                "events": events,
                "bytes": size,
                "terminal": f"{SIZE[0]}x{SIZE[1]}",
                "first_screen_median_s": first,
                "first_screen_best_s": min(firsts),
                "first_screen_runs_s": firsts,
                "target_first_screen_s": TARGET_FIRST_SCREEN_S,
                "met": first < TARGET_FIRST_SCREEN_S,
                "keys": report,
            },
            option=orjson.OPT_INDENT_2,
        )
    )


if __name__ == "__main__":
    main()
