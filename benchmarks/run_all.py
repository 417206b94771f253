"""Every benchmark, one after the other, and a summary of the issues' targets (not a test).

    python -m benchmarks.run_all [--skip NAME ...] [--only NAME ...]

Runs each benchmark as its own process, in this order, printing its table: peers (the step
table against LangGraph, the OpenAI Agents SDK and the floors), trace, loop, replay, corpus
(`govrun replay` over 200 traces, --jobs 1 against --jobs 2), diff, inspect, pycall (a
Python tool's cost per call, inline and under `isolation: process`), mcp (one governed MCP
call over stdio against a bare SDK call_tool loop), temporal (50 runs over 2 workers against
the same runs made locally), otel (export spans/s of a 10,000-step trace, and live export's
cost to a run). A benchmark whose
module is missing is skipped; one that fails is reported and the rest still run. Then prints
every target with its measured value and met / missed, read from the results each benchmark
wrote during this run, and writes them all to benchmarks/results/summary.json. Exit 1 if a
benchmark failed; a missed target is a result, not a failure.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks.bench_peers import CONTENDERS, fmt_ratio, fmt_us, load, machine, versions

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
SUMMARY = RESULTS / "summary.json"

Target = dict[str, Any]
"""{"area", "target", "measured", "met"}: met is True / False, or None for information."""


def target(area: str, text: str, measured: str, met: bool | None) -> Target:
    return {"area": area, "target": text, "measured": measured, "met": met}


def peers_targets(data: dict[str, Any]) -> list[Target]:
    found = [target("step", t["target"], t["measured"], t["met"]) for t in data["targets"]]
    high = max(data["steps"])
    for r in data["rows"]:
        if r["n"] != high:
            continue
        label = CONTENDERS[r["contender"]].label if r["contender"] in CONTENDERS else r["label"]
        if r["status"] != "ok":
            found.append(target("step", f"{label} at N={high:,}", r["status"], None))
            continue
        issue = data.get("issue_reference_us_at_1000", {}).get(r["contender"])
        growth = data["growth"].get(r["contender"])
        measured = f"{fmt_us(r['us_median'])} µs/step"
        if "ratio_to_govrun" in r and r["contender"] != "govrun":
            measured += f", {fmt_ratio(r['ratio_to_govrun'])} govrun"
        if growth is not None:
            measured += f", ×{growth:.2f} from N={min(data['steps']):,}"
        reference = f" (issue's reference {fmt_us(issue)} µs)" if issue else ""
        found.append(target("step", f"{label} at N={high:,}{reference}", measured, None))
    return found


def loop_targets(data: dict[str, Any]) -> list[Target]:
    return [target("step vs floor", v["check"], "", v["pass"]) for v in data["verdicts"]]


def trace_targets(data: dict[str, Any]) -> list[Target]:
    ok = data["pass"]
    n = data["events"]
    return [
        target(
            "trace",
            f"writer within 3x of the bare floor ({n:,} events)",
            f"{data['writer_ratio_to_model_dump_floor']:.2f}x "
            f"({data['writer_ratio_to_dict_floor']:.2f}x the dict-only floor)",
            ok["writer_vs_floor"],
        ),
        target(
            "trace",
            f"verify ≥ {data['targets']['verify_events_per_s_min']:,} events/s, one core",
            f"{data['verify_events_per_s']:,.0f} events/s",
            ok["verify"],
        ),
        target(
            "trace",
            "random access < 10 ms",
            f"{data['get_random_median_ms']:.3f} ms median, last {data['get_last_ms']:.3f} ms",
            ok["get_random_median"] and ok["get_last"],
        ),
    ]


def replay_targets(data: dict[str, Any]) -> list[Target]:
    return [
        target(
            "replay",
            f"replay ≥ {data['target_steps_per_s']:,.0f} steps/s ({data['steps']:,} steps)",
            f"{data['steps_per_s']:,.0f} steps/s",
            data["met"],
        ),
        target(
            "replay",
            f"replay ≥ {data['target_speedup']:.0f}x faster per step than the live run",
            f"{data['speedup_over_live']:.2f}x ({data['live_median_s']:.2f} s live → "
            f"{data['median_s']:.2f} s replayed)",
            data["speedup_met"],
        ),
    ]


def corpus_targets(data: dict[str, Any]) -> list[Target]:
    return [
        target(
            "replay",
            f"replay --jobs 2 ≥ {data['target_ratio']}x faster than --jobs 1 "
            f"({data['traces']} traces, {data['cores']} cores)",
            f"{data['ratio']:.2f}x ({data['jobs_1_median_s']:.1f} s → "
            f"{data['jobs_2_median_s']:.1f} s)",
            data["met"],
        )
    ]


def diff_targets(data: dict[str, Any]) -> list[Target]:
    return [target("diff", v["check"], "", v["pass"]) for v in data["verdicts"]]


def inspect_targets(data: dict[str, Any]) -> list[Target]:
    found = [
        target(
            "tui",
            f"first screen < {data['target_first_screen_s']:.0f} s on {data['events']:,} events",
            f"{data['first_screen_median_s'] * 1000:,.0f} ms median",
            data["met"],
        )
    ]
    for key, row in data.get("keys", {}).items():
        kinds = [
            f"{name.removesuffix('median_ms').rstrip('_')} {value:,.1f} ms".lstrip()
            for name, value in row.items()
            if name.endswith("median_ms")  # "shown_median_ms", "settled_median_ms"
        ]
        measured = ", ".join(kinds)
        found.append(target("tui", f"step navigation '{key}' (median)", measured, None))
    return found


def otel_targets(data: dict[str, Any]) -> list[Target]:
    spans = f"{data['spans']:,} spans of a {data['steps']:,}-step trace"
    return [
        target(
            "otel",
            f"export over OTLP/HTTP to 127.0.0.1 ({spans})",
            f"{data['spans_per_s_otlp_http']:,.0f} spans/s "
            f"({data['spans_per_s_map']:,.0f} mapping only)",
            None,
        ),
        target(
            "otel",
            "live export's cost to the run (same run unwatched = 1)",
            f"x{data['live_overhead']:.2f} with an instant model "
            f"(+{data['live_us_per_step']:,.0f} µs/step)",
            None,
        ),
    ]


def pycall_targets(data: dict[str, Any]) -> list[Target]:
    """No target: what `isolation: process` costs per call, for the README."""
    return [
        target(
            "python tool",
            "per call: inline vs isolation: process",
            f"{data['inline_us_median']:,.1f} vs {data['process_us_median']:,.1f} µs "
            f"({data['ratio_median']:.1f}x); worker start {data['first_call_ms_median']:,.0f} ms",
            None,
        )
    ]


def mcp_targets(data: dict[str, Any]) -> list[Target]:
    """No target: what governing one MCP call costs over calling it (issue 19)."""
    return [
        target(
            "mcp",
            "one governed MCP call over stdio vs a bare SDK call_tool loop",
            f"{data['govrun_us_median']:,.0f} vs {data['bare_us_median']:,.0f} µs "
            f"({data['ratio']:.2f}x)",
            None,
        )
    ]


def temporal_targets(data: dict[str, Any]) -> list[Target]:
    """No target: what the distributed backend costs (issue 23)."""
    if "runs_per_min" not in data:
        return [target("temporal", "runs on Temporal", str(data.get("status")), None)]
    return [
        target(
            "temporal",
            f"{data['runs']} runs of {data['steps']} steps over {data['workers']} workers",
            f"{data['runs_per_min']:,.0f} runs/min; +{data['added_us_per_step']:,.0f} µs a step "
            f"vs local",
            None,
        )
    ]


@dataclass(frozen=True)
class Stage:
    name: str
    module: str
    results: str
    targets: Callable[[dict[str, Any]], list[Target]]


STAGES = [
    Stage("peers", "benchmarks.bench_peers", "peers.json", peers_targets),
    Stage("trace", "benchmarks.bench_trace", "trace.json", trace_targets),
    Stage("loop", "benchmarks.bench_loop", "loop.json", loop_targets),
    Stage("replay", "benchmarks.bench_replay", "replay.json", replay_targets),
    Stage("corpus", "benchmarks.bench_corpus", "corpus.json", corpus_targets),
    Stage("diff", "benchmarks.bench_diff", "diff.json", diff_targets),
    Stage("inspect", "benchmarks.bench_inspect", "inspect.json", inspect_targets),
    Stage("pycall", "benchmarks.bench_pycall", "pycall.json", pycall_targets),
    Stage("mcp", "benchmarks.bench_mcp", "mcp.json", mcp_targets),
    Stage("temporal", "benchmarks.bench_temporal", "temporal.json", temporal_targets),
    Stage("otel", "benchmarks.bench_otel", "otel.json", otel_targets),
]


def run_stage(stage: Stage) -> tuple[dict[str, Any], list[Target]]:
    """Run one benchmark; its record, and its targets from the results it just wrote."""
    source = REPO / (stage.module.replace(".", "/") + ".py")
    record: dict[str, Any] = {"name": stage.name, "command": f"python -m {stage.module}"}
    if not source.exists():
        print(f"\n== {stage.name}: skipped, {source.relative_to(REPO)} does not exist yet")
        return {**record, "status": "skipped: no module"}, []
    print(f"\n== {stage.name}: python -m {stage.module}", flush=True)
    started_at = time.time()
    started = time.perf_counter()
    code = subprocess.run([sys.executable, "-m", stage.module], cwd=REPO).returncode
    record.update(exit_code=code, seconds=round(time.perf_counter() - started, 1))
    results = RESULTS / stage.results
    record["results"] = str(results.relative_to(REPO))
    if not results.exists() or results.stat().st_mtime < started_at:
        record["status"] = f"failed: exit {code}, no results written" if code else "no results"
        return record, []
    record["status"] = "ok" if code == 0 else f"failed: exit {code}"
    try:
        return record, stage.targets(orjson.loads(results.read_bytes()))
    except (KeyError, TypeError, ValueError) as e:  # the benchmark changed its JSON
        record["status"] = f"results not understood: {type(e).__name__} {e}"
        return record, []


def print_summary(targets: list[Target], stages: list[dict[str, Any]]) -> None:
    print("\n== targets (benchmarks/results/summary.json)")
    width = max([len(t["target"]) for t in targets] + [10])
    print(f"{'area':<14} {'target':<{width}}  {'measured':<44} result")
    print("-" * (width + 68))
    for t in targets:
        result = "info" if t["met"] is None else "met" if t["met"] else "MISSED"
        print(f"{t['area']:<14} {t['target']:<{width}}  {t['measured']:<44} {result}")
    for s in stages:
        if s["status"] != "ok":
            print(f"{s['name']}: {s['status']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [s.name for s in STAGES]
    parser.add_argument("--skip", nargs="+", choices=names, default=[])
    parser.add_argument("--only", nargs="+", choices=names)
    args = parser.parse_args()
    chosen = [s for s in STAGES if s.name in (args.only or names) and s.name not in args.skip]
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.perf_counter()
    host = {**machine(), "load_avg_1m": {"start": load()}}
    stages: list[dict[str, Any]] = []
    targets: list[Target] = []
    for stage in chosen:
        record, found = run_stage(stage)
        stages.append(record)
        targets += found
    host["load_avg_1m"]["end"] = load()
    print_summary(targets, stages)
    checked = [t["met"] for t in targets if t["met"] is not None]
    RESULTS.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_bytes(
        orjson.dumps(
            {
                "started": started.isoformat(timespec="seconds"),
                "seconds": round(time.perf_counter() - t0, 1),
                "machine": host,
                "versions": versions(),
                "stages": stages,
                "targets": targets,
                "met": sum(checked),
                "missed": len(checked) - sum(checked),
            },
            option=orjson.OPT_INDENT_2,
        )
        + b"\n"
    )
    print(f"\nsummary: {SUMMARY.relative_to(REPO)}")
    if any(s["status"].startswith("failed") for s in stages):
        sys.exit(1)


if __name__ == "__main__":
    main()
