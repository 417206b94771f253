"""OpenTelemetry export throughput benchmark (not a test).

    python -m benchmarks.bench_otel [--steps 10000] [--reps 5]

Records one run of the shared workload (benchmarks/workload.py), then exports its trace the
way `govrun export otel` does — read the record, map events to spans, build the SDK's spans
and send them — in three depths, each timed REPS times (median): mapping only (the span
plans `--dry-run` prints), through the SDK's exporter interface (in-memory exporter), and
over OTLP/HTTP to a receiver on 127.0.0.1 that reads each request and answers 200 (protobuf
encoding and HTTP included; the collector's own work excluded). Then the live overhead:
the same run with and without live export to that receiver, alternated in each repetition.
Prints spans/s and writes benchmarks/results/otel.json. No target: the issue asks for the
number; the README quotes it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson

from benchmarks.args import positive_int
from benchmarks.bench_replay import record
from benchmarks.workload import turns
from govrun.runtime.manifest.schema import load_manifest
from govrun.runtime.manifest.telemetry import Otlp, Telemetry
from govrun.runtime.models.scripted import ScriptedModel
from govrun.runtime.run import run_agent
from govrun.runtime.views.telemetry.destination import resolve
from govrun.runtime.views.telemetry.export import export_traces, trace_spans
from govrun.runtime.views.telemetry.sdk import otlp_exporter

RESULTS = Path(__file__).resolve().parent / "results" / "otel.json"


class _Sink(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextlib.contextmanager
def sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def timed(reps: int, work: Callable[[], int]) -> tuple[float, int]:
    """Median seconds of ``work`` over ``reps`` and the span count it returned."""
    times, count = [], 0
    for _ in range(reps):
        gc.collect()
        start = time.perf_counter()
        count = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), count


def live_run(folder: Path, n: int, trace: Path, endpoint: str | None) -> tuple[float, float]:
    """(the run's own duration as recorded, seconds until ``run_agent`` returned: the run
    plus the wait for its last spans to leave)."""
    manifest = load_manifest(folder / "agent.yaml")
    telemetry = Telemetry(otlp=Otlp(endpoint=endpoint)) if endpoint else None
    gc.collect()
    start = time.perf_counter()
    run_agent(
        manifest,
        task="add numbers",
        trace_path=trace,
        model=ScriptedModel(turns(n), name="bench"),
        telemetry=telemetry,
        on_telemetry_problem=lambda said: print(f"  ! {said}"),
    )
    wall = time.perf_counter() - start
    finished = orjson.loads(trace.read_bytes().splitlines()[-1])
    return finished["totals"]["duration_ms"] / 1000, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=positive_int, default=10_000)
    parser.add_argument("--reps", type=positive_int, default=5)
    args = parser.parse_args()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="govrun-bench-otel-") as tmp, sink() as url:
        folder = Path(tmp)
        trace = folder / "recorded.jsonl"
        record(folder, args.steps, trace)
        events = sum(1 for _ in trace.open("rb"))

        def plans() -> int:
            return len(trace_spans(trace))

        def memory() -> int:
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )

            done = export_traces(
                [trace], InMemorySpanExporter(), where="memory", say=print, env=env
            )
            return done[0].sent

        def otlp() -> int:
            exporter = otlp_exporter(resolve(endpoint=url, env=env))
            done = export_traces([trace], exporter, where=url, say=print, env=env)
            if done[0].lost:
                raise SystemExit(f"the local receiver lost spans: {done[0].problem}")
            return done[0].sent

        mapped_s, spans = timed(args.reps, plans)
        memory_s, _ = timed(args.reps, memory)
        otlp_s, _ = timed(args.reps, otlp)
        plain, watched, walls = [], [], []
        for rep in range(args.reps):
            plain.append(live_run(folder, args.steps, folder / f"plain-{rep}.jsonl", None)[0])
            run_s, wall = live_run(folder, args.steps, folder / f"live-{rep}.jsonl", url)
            watched.append(run_s)
            walls.append(wall)
    rows = {
        "map (trace to span plans)": mapped_s,
        "map + SDK spans (in-memory exporter)": memory_s,
        "map + SDK + OTLP/HTTP to 127.0.0.1": otlp_s,
    }
    print(
        f"export of a {args.steps:,}-step trace ({events:,} events, {spans:,} spans), "
        f"median of {args.reps}:"
    )
    for label, seconds in rows.items():
        print(f"  {label:<40} {seconds:7.3f} s  {spans / seconds:>10,.0f} spans/s")
    overhead = statistics.median(watched) / statistics.median(plain)
    print(
        f"  live run (its recorded duration) {statistics.median(plain):.2f} s unwatched, "
        f"{statistics.median(watched):.2f} s exporting live: x{overhead:.2f}; "
        f"{statistics.median(walls):.2f} s until its last spans had left"
    )
    per_step = (statistics.median(watched) - statistics.median(plain)) / args.steps * 1e6
    print(
        f"  = {per_step:,.0f} µs of interpreter time per step, taken under the GIL from a loop "
        "whose model answers at once (a real model call's latency hides it)"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(
        orjson.dumps(
            {
                "machine": f"{platform.machine()} {platform.python_version()}",
                "steps": args.steps,
                "events": events,
                "spans": spans,
                "map_s": mapped_s,
                "memory_s": memory_s,
                "otlp_http_s": otlp_s,
                "spans_per_s_map": spans / mapped_s,
                "spans_per_s_memory": spans / memory_s,
                "spans_per_s_otlp_http": spans / otlp_s,
                "live_plain_s": statistics.median(plain),
                "live_watched_s": statistics.median(watched),
                "live_overhead": overhead,
                "live_until_exported_s": statistics.median(walls),
                "live_us_per_step": per_step,
            },
            option=orjson.OPT_INDENT_2,
        )
    )


if __name__ == "__main__":
    main()
