"""Step overhead, side by side with the peers (not a test): issues #8 and #18's step table.

    python -m pip install -r benchmarks/requirements-peers.txt   # the peers; not govrun's deps
    python -m benchmarks.bench_peers [--steps 200 1000] [--reps 5] [--only NAME ...]
        [--processes K] [--json PATH]

Every contender runs the shared workload (benchmarks/workload.py): one tool
``add(a: int, b: int) -> int`` and a deterministic, instant, in-process model that at call
i < N asks for ``add(a=i, b=1)`` (id ``call_i``) and at call N answers "done":

- govrun: the real loop (benchmarks.bench_loop.govrun_once) with the scripted model adapter,
  the real ``add`` as a Python callable, a five-rule policy, budgets and interrupts on, the
  hash-chained trace on disk before every side effect (two writes a step; the
  govrun-per-event row writes each event on its own);
- LangGraph's prebuilt ReAct agent with a fake chat model, without and with the in-memory
  checkpointer;
- the OpenAI Agents SDK ``Runner`` with a custom in-process ``Model``, tracing off, and
  tracing on with a local in-memory processor;
- floors: a bare Python loop making the same calls, and the same loop appending govrun's
  events of each step (read from govrun's trace at the same N) as orjson lines with a flush.

Each (contender, N) runs in its own fresh process — a peer's imports never touch another's
numbers and peak RSS (``ru_maxrss``) is that contender's own: a warm-up run, then REPS timed
runs (``--processes K``: K such processes one after the other, their runs pooled, to see
past process-to-process noise). µs per step is a run's time over its N + 1 model calls.
Only the run is timed; building a peer's agent object is not (govrun's time includes its
whole ``run_agent``). A peer that is not installed, or fails, gets a row saying so; the
others still run.

Prints one table with the issue's targets and writes benchmarks/results/peers.json.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks.args import positive_int
from benchmarks.workload import add, turns

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "peers.json"
TARGET_US = 50.0
TARGET_RSS_MB = 100.0
TARGET_TIMES_BELOW = {"langgraph": 75.0, "langgraph-memory": 500.0, "agents": 1000.0}
"""Issue #18's ratios: govrun's step that many times cheaper than LangGraph's prebuilt agent
without and with the in-memory checkpointer, and than the Agents SDK's Runner, at the same N
in the same run."""
TARGET_FLOOR_RATIO = 3.0
"""Issue #18: govrun's step at most this many times the orjson floor writing its events."""
SCHEMA_1_BYTES_PER_STEP = 3382.0
TARGET_BYTES_PER_STEP = SCHEMA_1_BYTES_PER_STEP * 0.7
"""Issue #18: trace bytes per step at least 30% below schema 1's (measured here at N=1,000)."""
FLAT = 0.20
TIMEOUT_S = 1800.0
PEER_PACKAGES = (
    "langgraph",
    "langgraph-prebuilt",
    "langgraph-checkpoint",
    "langchain-core",
    "openai-agents",
    "openai",
)
OWN_PACKAGES = ("govrun", "pydantic", "orjson")


class Skipped(Exception):
    """The contender cannot run here; the message says why."""


@dataclass
class Prepared:
    """One contender ready to run: ``run()`` does one whole run and returns its timed seconds;
    ``extras`` collects what the contender reports besides time (trace size, spans)."""

    run: Callable[[], float]
    extras: dict[str, Any] = field(default_factory=dict)
    finish: Callable[[], None] = lambda: None


# --- contenders (each prepared inside its own child process) ---------------------------


def prepare_govrun(n: int, folder: Path, *, write_per_event: bool = False) -> Prepared:
    """``write_per_event``: every event its own ``write`` (the writer holds nothing), to show
    what the default's group commit — every event on disk before the next side effect,
    two writes per step — saves."""
    from benchmarks.bench_loop import govrun_once  # checks: completed, with n + 1 steps
    from benchmarks.workload import write_agent

    if write_per_event:
        from govrun.runtime import loop

        loop.HELD = frozenset()  # this child process only
    manifest = write_agent(folder / f"agent-{n}", n)
    traces: list[Path] = []

    def run() -> float:
        elapsed, trace = govrun_once(manifest, n, folder)
        traces.append(trace)
        return elapsed

    extras: dict[str, Any] = {}

    def finish() -> None:
        last = traces[-1]
        lines = [orjson.loads(line) for line in last.read_bytes().splitlines()]
        extras.update(trace_bytes=last.stat().st_size, events=len(lines))
        # The orjson floor at this N writes exactly these events, step by step.
        (folder / f"govrun-events-{n}.json").write_bytes(orjson.dumps(lines))
        for trace in traces:
            trace.unlink()

    return Prepared(run, extras, finish)


def _bare_loop(n: int, write: Callable[[int], None] | None) -> Callable[[], float]:
    """The floor's loop: ask the scripted "model" for turn i, make its calls, keep the
    conversation; ``write(step)`` after each step if given."""
    script = turns(n)

    def model(i: int) -> dict[str, Any]:
        return script[i]

    def run() -> float:
        messages: list[Any] = []
        start = time.perf_counter()
        if write:
            write(0)
        for i in range(n + 1):
            turn = model(i)
            messages.append(turn)
            for call in turn.get("tool_calls") or ():
                messages.append(add(**call["arguments"]))
            if write:
                write(i + 1)
        elapsed = time.perf_counter() - start
        if len(messages) != 2 * n + 1 or messages[-2] != n:
            raise SystemExit("the bare loop did not do the workload")
        return elapsed

    return run


def prepare_floor_bare(n: int, folder: Path) -> Prepared:
    return Prepared(_bare_loop(n, None))


def prepare_floor_orjson(n: int, folder: Path) -> Prepared:
    source = folder / f"govrun-events-{n}.json"
    if not source.exists():
        raise Skipped(f"needs govrun's events at N={n}; govrun did not run")
    by_step: list[list[dict[str, Any]]] = [[] for _ in range(n + 2)]
    for event in orjson.loads(source.read_bytes()):
        by_step[event["step"]].append(event)
    files: list[Any] = []

    def write(step: int) -> None:
        f = files[-1]
        for event in by_step[step]:
            f.write(orjson.dumps(event) + b"\n")
            f.flush()

    loop = _bare_loop(n, write)
    extras: dict[str, Any] = {}

    def run() -> float:
        path = folder / f"floor-{time.monotonic_ns()}.jsonl"
        with open(path, "wb") as f:
            files.append(f)
            elapsed = loop()
        extras.update(trace_bytes=path.stat().st_size, events=sum(map(len, by_step)))
        path.unlink()
        return elapsed

    return Prepared(run, extras)


def prepare_langgraph(n: int, folder: Path, *, checkpointer: bool) -> Prepared:
    from benchmarks import peer_langgraph

    return Prepared(peer_langgraph.prepare(n, checkpointer=checkpointer))


def prepare_agents(n: int, folder: Path, *, tracing: bool) -> Prepared:
    from benchmarks import peer_openai_agents

    extras: dict[str, Any] = {}
    return Prepared(peer_openai_agents.prepare(n, tracing=tracing, extras=extras), extras)


@dataclass(frozen=True)
class Contender:
    label: str
    prepare: Callable[[int, Path], Prepared]
    issue_us: float | None
    """Issue #18's reference median µs per step at N = 1,000 (measured elsewhere, before
    trace schema 2)."""


CONTENDERS: dict[str, Contender] = {
    "govrun": Contender(
        "govrun (default run: every event on disk before the next side effect)",
        prepare_govrun,
        200.2,
    ),
    "govrun-per-event": Contender(
        "govrun, one write per event (no group commit)",
        lambda n, f: prepare_govrun(n, f, write_per_event=True),
        None,
    ),
    "floor-bare": Contender("floor: bare Python loop", prepare_floor_bare, None),
    "floor-orjson": Contender("floor: bare loop + orjson JSONL flush", prepare_floor_orjson, 27.0),
    "langgraph": Contender(
        "LangGraph create_react_agent",
        lambda n, f: prepare_langgraph(n, f, checkpointer=False),
        6318.0,
    ),
    "langgraph-memory": Contender(
        "LangGraph create_react_agent + InMemorySaver",
        lambda n, f: prepare_langgraph(n, f, checkpointer=True),
        43035.0,
    ),
    "agents": Contender(
        "OpenAI Agents SDK Runner, tracing off",
        lambda n, f: prepare_agents(n, f, tracing=False),
        94513.0,
    ),
    "agents-tracing": Contender(
        "OpenAI Agents SDK Runner, tracing on (in-memory)",
        lambda n, f: prepare_agents(n, f, tracing=True),
        None,
    ),
}


# --- inside a child process --------------------------------------------------------------


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(name: str, n: int, reps: int, folder: Path, out: Path) -> None:
    """Run one contender at one N: a warm-up, then ``reps`` timed runs; write JSON to out."""
    try:
        prepared = CONTENDERS[name].prepare(n, folder)
    except ModuleNotFoundError as e:
        reason = f"{e.name} is not installed (pip install -r benchmarks/requirements-peers.txt)"
        out.write_bytes(orjson.dumps({"status": "skipped", "reason": reason}))
        return
    except Skipped as e:
        out.write_bytes(orjson.dumps({"status": "skipped", "reason": str(e)}))
        return
    setup_rss = rss_mb()
    prepared.run()  # warm-up: first-call caches, lazy imports
    runs = []
    for _ in range(reps):
        gc.collect()
        runs.append(prepared.run())
    peak = rss_mb()
    prepared.finish()
    result = {
        "status": "ok",
        "runs_s": runs,
        "peak_rss_mb": peak,
        "rss_after_setup_mb": setup_rss,
        **prepared.extras,
    }
    out.write_bytes(orjson.dumps(result))


# --- the parent: one child per (contender, N), then the table ----------------------------


def run_child(name: str, n: int, reps: int, folder: Path, timeout: float) -> dict[str, Any]:
    out = folder / f"result-{name}-{n}.json"
    env = {**os.environ, "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false"}
    argv = [sys.executable, "-m", "benchmarks.bench_peers", "--child", name, "--n", str(n)]
    argv += ["--reps", str(reps), "--folder", str(folder), "--out", str(out)]
    row: dict[str, Any] = {"contender": name, "label": CONTENDERS[name].label, "n": n}
    start = time.perf_counter()
    try:
        done = subprocess.run(
            argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {**row, "status": "skipped", "reason": f"timed out after {timeout:.0f} s"}
    row["wall_s"] = round(time.perf_counter() - start, 1)
    if done.returncode != 0 or not out.exists():
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit {done.returncode}"]
        return {**row, "status": "failed", "reason": lines[-1][:200]}
    return {**row, **orjson.loads(out.read_bytes())}


def measure(
    name: str, n: int, reps: int, folder: Path, timeout: float, processes: int
) -> dict[str, Any]:
    """One contender at one N in ``processes`` fresh children, one after the other; their
    runs pooled (median and min over all), the highest peak RSS."""
    children = []
    for _ in range(processes):
        row = run_child(name, n, reps, folder, timeout)
        if row["status"] != "ok":
            return row
        children.append(row)
    runs = [t for c in children for t in c["runs_s"]]
    per_step = 1e6 / (n + 1)
    return {
        **children[-1],
        "runs_s": runs,
        "us_median": statistics.median(runs) * per_step,
        "us_min": min(runs) * per_step,
        "peak_rss_mb": max(c["peak_rss_mb"] for c in children),
        "rss_after_setup_mb": max(c["rss_after_setup_mb"] for c in children),
        "wall_s": round(sum(c["wall_s"] for c in children), 1),
        "processes": processes,
        "process_us_medians": [statistics.median(c["runs_s"]) * per_step for c in children],
    }


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in (*OWN_PACKAGES, *PEER_PACKAGES):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def load() -> float:
    """The 1-minute load average: other work on the machine skews every timing."""
    return round(os.getloadavg()[0], 2)


def analyse(rows: list[dict[str, Any]], steps: list[int]) -> dict[str, Any]:
    """Ratios to govrun at the same N; per contender, growth from the smallest to the
    largest N and a line through the two medians: the marginal cost of one more step and
    the fixed part of a run (negative when the cost per step grows with N); the issue's
    govrun targets."""
    ok = {(r["contender"], r["n"]): r for r in rows if r["status"] == "ok"}
    for r in rows:
        g = ok.get(("govrun", r["n"]))
        if r["status"] == "ok" and g:
            r["ratio_to_govrun"] = r["us_median"] / g["us_median"]
    low, high = min(steps), max(steps)
    growth: dict[str, float] = {}
    marginal: dict[str, dict[str, float]] = {}
    if low != high:
        for name in CONTENDERS:
            a, b = ok.get((name, low)), ok.get((name, high))
            if a and b:
                growth[name] = b["us_median"] / a["us_median"]
                ta, tb = (statistics.median(r["runs_s"]) for r in (a, b))
                slope = (tb - ta) / (high - low)
                marginal[name] = {
                    "us_per_step": slope * 1e6,
                    "fixed_ms_per_run": (ta - slope * (low + 1)) * 1e3,
                }
    targets: list[dict[str, Any]] = []
    g_high, g_low = ok.get(("govrun", high)), ok.get(("govrun", low))
    if g_high:
        targets += [
            {
                "target": f"govrun median ≤ {TARGET_US:.0f} µs per step at N={high:,}",
                "measured": f"{g_high['us_median']:.1f} µs",
                "met": g_high["us_median"] <= TARGET_US,
            },
            {
                "target": f"govrun peak RSS < {TARGET_RSS_MB:.0f} MB at N={high:,}",
                "measured": f"{g_high['peak_rss_mb']:.0f} MB",
                "met": g_high["peak_rss_mb"] < TARGET_RSS_MB,
            },
        ]
    floor = ok.get(("floor-orjson", high))
    if g_high and floor:
        ratio = g_high["us_median"] / floor["us_median"]
        targets.append(
            {
                "target": f"govrun ≤ {TARGET_FLOOR_RATIO:.0f}x the orjson floor writing its "
                f"events at N={high:,}",
                "measured": f"{ratio:.2f}x ({g_high['us_median']:.1f} vs "
                f"{floor['us_median']:.1f} µs)",
                "met": ratio <= TARGET_FLOOR_RATIO,
            }
        )
    if g_high:
        per_step = g_high["trace_bytes"] / (g_high["n"] + 1)
        targets.append(
            {
                "target": f"trace bytes per step ≤ {TARGET_BYTES_PER_STEP:,.0f} (30% below "
                f"schema 1's {SCHEMA_1_BYTES_PER_STEP:,.0f}) at N={high:,}",
                "measured": f"{per_step:,.0f} B/step "
                f"({per_step / SCHEMA_1_BYTES_PER_STEP - 1:+.0%})",
                "met": per_step <= TARGET_BYTES_PER_STEP,
            }
        )
    for peer, times in TARGET_TIMES_BELOW.items():
        p = ok.get((peer, high))
        if g_high and p:
            ratio = p["us_median"] / g_high["us_median"]
            targets.append(
                {
                    "target": f"govrun over {times:.0f}x below {CONTENDERS[peer].label} "
                    f"at N={high:,}",
                    "measured": f"{ratio:,.0f}x",
                    "met": ratio >= times,
                }
            )
    if g_high and g_low and "govrun" in growth:
        per_step = [g["trace_bytes"] / (g["n"] + 1) for g in (g_low, g_high)]
        size_ratio = per_step[1] / per_step[0]
        targets += [
            {
                "target": f"govrun per-step cost flat N={low:,}→{high:,} (within {FLAT:.0%})",
                "measured": f"{growth['govrun'] - 1:+.0%}",
                "met": abs(growth["govrun"] - 1) <= FLAT,
            },
            {
                "target": f"govrun trace size linear in N (bytes/step within {FLAT:.0%})",
                "measured": f"{per_step[0]:,.0f} → {per_step[1]:,.0f} B/step",
                "met": abs(size_ratio - 1) <= FLAT,
            },
        ]
    return {"growth": growth, "marginal": marginal, "targets": targets}


def fmt_us(value: float) -> str:
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return ""
    digits = 0 if value >= 100 else 1 if value >= 10 else 2 if value >= 0.1 else 3
    return f"{value:,.{digits}f}x"


def runs_in(processes: int) -> str:
    if processes == 1:
        return "each contender in its own process"
    return f"in each of {processes} fresh processes per contender, pooled"


def print_table(
    rows: list[dict[str, Any]], report: dict[str, Any], meta: dict[str, Any], high: int
) -> None:
    m = meta["machine"]
    print(
        f"step overhead · shared workload · {m['cpu']}, {m['cores']} cores · "
        f"Python {m['python']} · median and min of {meta['reps']} runs after a warm-up, "
        f"{runs_in(meta['processes'])} · load {meta['load_avg_1m']['start']:.1f} → "
        f"{meta['load_avg_1m']['end']:.1f}"
    )
    v = meta["versions"]
    print(
        f"govrun {v['govrun']} · langgraph {v['langgraph']} (prebuilt {v['langgraph-prebuilt']}, "
        f"checkpoint {v['langgraph-checkpoint']}) · langchain-core {v['langchain-core']} · "
        f"openai-agents {v['openai-agents']}"
    )
    width = max(len(c.label) for c in CONTENDERS.values())
    header = (
        f"{'contender':<{width}} {'N':>5} {'median µs/step':>15} {'min µs/step':>12} "
        f"{'× govrun':>9} {'peak RSS MB':>12} {'trace KB':>9} {'grows with N?':>14} "
        f"{'issue µs @1k':>13}"
    )
    print(header)
    print("-" * len(header))
    growth = report["growth"]
    for r in rows:
        c = CONTENDERS[r["contender"]]
        head = f"{r['label']:<{width}} {r['n']:>5,}"
        if r["status"] != "ok":
            print(f"{head} {r['status']}: {r['reason']}")
            continue
        ratio = r.get("ratio_to_govrun")
        grows = ""
        if r["n"] == high and r["contender"] in growth:
            x = growth[r["contender"]]
            grows = f"{'yes' if x > 1 + FLAT else 'no'} (×{x:.2f})"
        trace_kb = f"{r['trace_bytes'] / 1024:,.0f}" if "trace_bytes" in r else ""
        issue = fmt_us(c.issue_us) if c.issue_us and r["n"] == 1000 else ""
        print(
            f"{head} {fmt_us(r['us_median']):>15} {fmt_us(r['us_min']):>12} "
            f"{fmt_ratio(ratio):>9} {r['peak_rss_mb']:>12,.0f} "
            f"{trace_kb:>9} {grows:>14} {issue:>13}"
        )
    print()
    for t in report["targets"]:
        print(f"{'met   ' if t['met'] else 'MISSED'}  {t['target']}: {t['measured']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=positive_int, nargs="+", default=[200, 1000])
    parser.add_argument("--reps", type=positive_int, default=5)
    parser.add_argument("--only", nargs="+", choices=list(CONTENDERS), help="these contenders")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per child")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="fresh processes per contender and N, runs pooled (process-to-process noise)",
    )
    parser.add_argument("--child", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=positive_int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS,
        help=f"where to write the results (default {RESULTS.relative_to(REPO)}; "
        "give another path for a partial run)",
    )
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress order
    if args.child:
        child(args.child, args.n, args.reps, args.folder, args.out)
        return

    names = args.only or list(CONTENDERS)
    if "floor-orjson" in names and "govrun" not in names:
        names = ["govrun", *names]  # the orjson floor writes govrun's events
    steps = sorted(set(args.steps))
    meta: dict[str, Any] = {"machine": machine(), "versions": versions(), "reps": args.reps}
    meta["processes"] = args.processes
    meta.update(steps=steps, load_avg_1m={"start": load()})
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="govrun-bench-peers-") as tmp:
        for n in steps:  # govrun first at each N: the orjson floor reads its events
            for name in names:
                print(f"  {name} N={n:,} …", end="", file=sys.stderr, flush=True)
                row = measure(name, n, args.reps, Path(tmp), args.timeout, args.processes)
                print(f" {row['status']} ({row.get('wall_s', '-')} s)", file=sys.stderr)
                rows.append(row)
    order = {name: k for k, name in enumerate(CONTENDERS)}
    rows.sort(key=lambda r: (order[r["contender"]], r["n"]))
    report = analyse(rows, steps)
    meta["load_avg_1m"]["end"] = load()
    meta["wall_s"] = round(time.perf_counter() - started, 1)
    print_table(rows, report, meta, max(steps))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    issue = {name: c.issue_us for name, c in CONTENDERS.items() if c.issue_us}
    args.json.write_bytes(
        orjson.dumps(
            {
                **meta,
                "rows": rows,
                "growth": report["growth"],
                "marginal": report["marginal"],
                "flat_within": FLAT,
                "issue_reference_us_at_1000": issue,
                "targets": report["targets"],
            },
            option=orjson.OPT_INDENT_2,
        )
        + b"\n"
    )
    print(f"\nresults: {args.json}")


if __name__ == "__main__":
    main()
