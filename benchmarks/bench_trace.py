"""Trace throughput benchmark (not a test).

    python -m benchmarks.bench_trace [--events N]

Builds N typical events (the mix a governed loop emits) before timing, then measures, best
of 3 each: the TraceWriter (hash chain, one write per event) against two bare floors that
only serialize and write; verify_trace; TraceIndex build and random access. Prints a plain
table with targets and writes ``benchmarks/results/trace.json``.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benchmarks.args import positive_int
from govrun.runtime.ports import SystemClock
from govrun.runtime.trace.canonical import call_hash
from govrun.runtime.trace.events import (
    ENVELOPE_FIELDS,
    ApprovalDecided,
    ApprovalRequested,
    CallDecision,
    Compaction,
    Event,
    ModelRequest,
    ModelResponse,
    Route,
    RunFinished,
    RunStarted,
    StepFinished,
    ToolCall,
    ToolFinished,
    ToolStarted,
    Verification,
)
from govrun.runtime.trace.reader import TraceIndex
from govrun.runtime.trace.signing import SEAL_FIELDS, Signer, approval_message, seal_message
from govrun.runtime.trace.verify import verify_trace
from govrun.runtime.trace.writer import TraceWriter

REPS = 3
RUN_ID = "run-bench"
SIGNER = Signer.ephemeral()
"""Approvals in the synthetic run are signed and the run sealed, as the loop does."""
RESULTS = Path(__file__).resolve().parent / "results" / "trace.json"
TARGET_WRITER_RATIO = 3.0
TARGET_VERIFY_EPS = 300_000
TARGET_GET_MS = 10.0

_WORDS = [
    "the",
    "agent",
    "reads",
    "file",
    "notes",
    "summary",
    "test",
    "passed",
    "failed",
    "import",
    "def",
    "return",
    "value",
    "config",
    "path",
    "workspace",
    "error",
    "line",
    "step",
    "tool",
    "call",
    "model",
    "output",
    "result",
    "check",
    "policy",
    "allow",
    "deny",
]


def _texts(rng: random.Random, count: int, low: int, high: int) -> list[str]:
    """A pool of word salads between ``low`` and ``high`` characters long."""
    pool = []
    for _ in range(count):
        size = rng.randint(low, high)
        words: list[str] = []
        while sum(map(len, words)) + len(words) < size:
            words.append(rng.choice(_WORDS))
        pool.append(" ".join(words)[:size])
    return pool


def build_events(n: int) -> list[Event]:
    """``n - 1`` events as a loop emits them; the caller appends ``run_finished``."""
    rng = random.Random(7)
    outputs = _texts(rng, 300, 80, 2_000)
    thoughts = _texts(rng, 100, 20, 300)
    h = "9f" * 32
    manifest = {"name": "bench", "model": {"provider": "openai", "name": "gpt-4o-mini"}}
    events: list[Event] = [
        RunStarted(agent="bench", manifest=manifest, manifest_hash=h, input=thoughts[0])
    ]
    step = 0
    while len(events) < n - 1:
        step += 1
        call = f"call_{step:06d}"
        tool = ("fs.read", "fs.write", "shell.run")[step % 3]
        args = {"path": f"src/module_{step % 97}.py", "content": thoughts[step % 100]}
        output = outputs[step % 300]
        usage = {"prompt_tokens": 900 + step % 500, "completion_tokens": 40 + step % 60}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        batch: list[Event] = []
        if step % 40 == 0:
            batch.append(Route(step=step, model="large", previous="small", reason="rule: hard"))
        if step % 75 == 0:
            batch.append(
                Compaction(step=step, strategy="truncate", tokens_before=9000, tokens_after=3000)
            )
        batch += [
            ModelRequest(
                step=step,
                model="gpt-4o-mini",
                messages_added=[
                    {"role": "assistant", "tool_calls": [{"id": call, "name": tool}]},
                    {"role": "tool", "tool_call_id": call, "content": outputs[(step - 1) % 300]},
                ],
                message_count=2 * step + 2,
                prompt_hash=h,
            ),
            ModelResponse(
                step=step,
                model="gpt-4o-mini",
                content=thoughts[(step * 7) % 100] if step % 4 == 0 else None,
                tool_calls=[{"id": call, "name": tool, "arguments": orjson.dumps(args).decode()}],
                finish_reason="tool_calls",
                usage=usage,
                cost_usd=usage["total_tokens"] * 6e-7,
                duration_ms=300.0 + step % 200,
            ),
        ]
        denied = step % 10 == 0
        decision = (
            CallDecision(
                effect="deny",
                rule="no-network",
                reason="network access is denied",
                failure_class="policy_denied",
            )
            if denied
            else CallDecision(effect="allow", rule="ws", reason="rule 'ws' allows")
        )
        batch.append(
            ToolCall(
                step=step, call_id=call, tool=tool, arguments=args, call_hash=h, decision=decision
            )
        )
        if not denied:
            if step % 25 == 0:
                exact = call_hash(tool, args, step)  # approvals must cover the exact call
                decided = {
                    "step": step,
                    "call_id": call,
                    "tool": tool,
                    "call_hash": exact,
                    "decision": "approve",
                    "approver": "alice",
                    "via": "prompt",
                    "reason": "",
                    "decided_at": "",
                    "policy_hash": None,
                }
                signature = SIGNER.sign(approval_message({**decided, "run_id": RUN_ID}))
                batch += [
                    ApprovalRequested(step=step, call_id=call, tool=tool, call_hash=exact),
                    ApprovalDecided(
                        **decided,
                        key_fingerprint=SIGNER.fingerprint,
                        public_key=SIGNER.public_key,
                        key_source=SIGNER.source,
                        signature=signature,
                    ),
                ]
                h = exact
            evidence = {"path": args["path"], "sha256": h}
            batch += [
                ToolStarted(step=step, call_id=call, call_hash=h),
                ToolFinished(
                    step=step,
                    call_id=call,
                    tool=tool,
                    ok=True,
                    output=output,
                    evidence=evidence,
                    duration_ms=3.5,
                ),
                Verification(
                    step=step, call_id=call, check="file_exists", passed=True, evidence=evidence
                ),
            ]
        batch.append(StepFinished(step=step, outcome="continue", tokens=usage["total_tokens"]))
        events += batch
    return events[: n - 1]


def best(fn: Callable[[int], Any], reps: int = REPS) -> float:
    """Best wall time of ``reps`` calls of ``fn(rep)``, in seconds."""
    times = []
    for rep in range(reps):
        t0 = time.perf_counter()
        fn(rep)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description="Trace throughput benchmark.")
    parser.add_argument("--events", type=positive_int, default=100_000, help="events per trace")
    n = parser.parse_args().events

    t0 = time.perf_counter()
    events = build_events(n)
    dicts = [e.model_dump(mode="json") for e in events]
    print(f"built {n:,} events in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="govrun-bench-") as tmp:
        folder = Path(tmp)
        traces: list[Path] = []

        def write_trace(rep: int) -> None:
            path = folder / f"run-{rep}.jsonl"
            with TraceWriter(path, run_id=RUN_ID, clock=SystemClock()) as writer:
                for event in events:
                    writer.append(event)
                end = RunFinished(
                    status="completed", event_count=writer.seq + 1, head=writer.head, steps=1
                )
                fields = {k: getattr(end, k) for k in SEAL_FIELDS if k != "run_id"}
                seal = SIGNER.sign(seal_message({**fields, "run_id": RUN_ID}))
                writer.append(
                    end.model_copy(
                        update={
                            "seal": {
                                "key_fingerprint": SIGNER.fingerprint,
                                "public_key": SIGNER.public_key,
                                "key_source": SIGNER.source,
                                "signature": seal,
                            }
                        }
                    )
                )
            traces.append(path)

        def floor_models(rep: int) -> None:
            with open(folder / f"floor-models-{rep}.jsonl", "wb") as f:
                for event in events:
                    f.write(orjson.dumps(event.model_dump(mode="json")) + b"\n")
                    f.flush()

        def floor_dicts(rep: int) -> None:
            with open(folder / f"floor-dicts-{rep}.jsonl", "wb") as f:
                for d in dicts:
                    f.write(orjson.dumps(d) + b"\n")
                    f.flush()

        payloads = [
            [{k: v for k, v in d.items() if k not in ENVELOPE_FIELDS} for d in dicts]
            for _ in range(REPS)
        ]

        def write_payloads(rep: int) -> None:
            """The loop's hot path, if this TraceWriter has it: payload dicts, no models."""
            path = folder / f"payloads-{rep}.jsonl"
            with TraceWriter(path, run_id=RUN_ID, clock=SystemClock()) as writer:
                for event, payload in zip(events, payloads[rep], strict=True):
                    writer.write(type(event), event.step, payload)

        t_writer = best(write_trace)
        has_write = hasattr(TraceWriter, "write")
        t_payloads = best(write_payloads) if has_write else None
        payloads.clear()  # free the copies before the remaining timings
        t_models = best(floor_models)
        t_dicts = best(floor_dicts)
        trace = traces[-1]
        size = trace.stat().st_size

        reports = []
        t_verify = best(lambda _: reports.append(verify_trace(trace)))
        assert reports[-1].ok and reports[-1].events == n, reports[-1].problem

        t_index = best(lambda _: TraceIndex(trace).close())
        with TraceIndex(trace) as index:
            last = n - 1
            t_last = best(lambda _: index.get(last))
            rng = random.Random(1)
            samples = []
            for k in rng.choices(range(n), k=1_000):
                t = time.perf_counter()
                index.get(k)
                samples.append(time.perf_counter() - t)
            t_random = statistics.median(samples)

    writer_eps = n / t_writer
    ratio_models, ratio_dicts = t_writer / t_models, t_writer / t_dicts
    verify_eps = n / t_verify
    checks = {
        "writer_vs_floor": ratio_models <= TARGET_WRITER_RATIO,
        "verify": verify_eps >= TARGET_VERIFY_EPS,
        "get_last": t_last * 1e3 < TARGET_GET_MS,
        "get_random_median": t_random * 1e3 < TARGET_GET_MS,
    }

    def mark(key: str) -> str:
        return "PASS" if checks[key] else "MISS"

    rows = [
        ("TraceWriter (chain + write/event)", f"{writer_eps:,.0f} ev/s", "", ""),
        *(
            [("TraceWriter.write (payload dicts)", f"{n / t_payloads:,.0f} ev/s", "(info)", "")]
            if t_payloads
            else []
        ),
        ("floor: model_dump+orjson+write+flush", f"{n / t_models:,.0f} ev/s", "", ""),
        ("floor: orjson(dict)+write+flush", f"{n / t_dicts:,.0f} ev/s", "", ""),
        ("writer / floor(model_dump)", f"{ratio_models:.2f}x", "<= 3x", mark("writer_vs_floor")),
        ("writer / floor(dict)", f"{ratio_dicts:.2f}x", "(info)", ""),
        (
            "verify_trace (one core)",
            f"{verify_eps:,.0f} ev/s",
            f">= {TARGET_VERIFY_EPS:,} ev/s",
            mark("verify"),
        ),
        ("TraceIndex build", f"{t_index * 1e3:.1f} ms", "", ""),
        (f"TraceIndex.get({last:,})", f"{t_last * 1e3:.3f} ms", "< 10 ms", mark("get_last")),
        (
            "get(random n), median of 1,000",
            f"{t_random * 1e3:.3f} ms",
            "< 10 ms",
            mark("get_random_median"),
        ),
    ]
    title = f"govrun trace benchmark: {n:,} events, {size / n:,.0f} B/line avg, best of {REPS}"
    print(title)
    print(f"{'metric':<38} {'measured':>16}  {'target':<16} result")
    print("-" * 80)
    for name, value, target, result in rows:
        print(f"{name:<38} {value:>16}  {target:<16} {result}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = {
        "events": n,
        "trace_bytes": size,
        "reps": REPS,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "writer_events_per_s": writer_eps,
        "writer_payload_events_per_s": n / t_payloads if t_payloads else None,
        "floor_model_dump_events_per_s": n / t_models,
        "floor_dict_events_per_s": n / t_dicts,
        "writer_ratio_to_model_dump_floor": ratio_models,
        "writer_ratio_to_dict_floor": ratio_dicts,
        "verify_events_per_s": verify_eps,
        "index_build_ms": t_index * 1e3,
        "get_last_ms": t_last * 1e3,
        "get_random_median_ms": t_random * 1e3,
        "targets": {
            "writer_ratio_max": TARGET_WRITER_RATIO,
            "verify_events_per_s_min": TARGET_VERIFY_EPS,
            "get_ms_max": TARGET_GET_MS,
        },
        "pass": checks,
    }
    RESULTS.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"\nresults: {RESULTS}")


if __name__ == "__main__":
    main()
