"""One governed MCP call over stdio, next to a bare SDK ``call_tool`` loop (not a test).

    python -m benchmarks.bench_mcp [--calls 300] [--reps 5]

Against the same server (benchmarks/mcp_echo_server.py: one ``add`` tool, over stdio):

- bare: the official SDK's ``ClientSession.call_tool`` in a loop, one session, nothing else;
- govrun: the real loop, a scripted model asking for ``add`` once per step, the call
  validated against the tool's input schema, decided by a five-rule policy, run through the
  MCP connection and recorded in the hash-chained trace.

govrun's figure is per governed step: the slope between a run of CALLS steps and one of
CALLS/4, so the server's start and the run's fixed cost are not counted. Prints µs per call
(median of REPS) and the ratio; writes benchmarks/results/mcp.json. No target: it says what
governing an MCP call costs over calling it.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
import yaml

from benchmarks.args import positive_int

RESULTS = Path(__file__).resolve().parent / "results" / "mcp.json"
SERVER = Path(__file__).resolve().parent / "mcp_echo_server.py"

MANIFEST = """\
name: bench-mcp
model: {{provider: scripted, script: script.yaml}}
mcp_servers:
  bench: {{command: [{python}, {server}]}}
tools:
  - {{name: add, mcp: bench/add, risk: low}}
policy:
  default: deny
  rules:
    - {{id: no-negative, tools: [add], when: {{a: {{max: -1}}}}, effect: deny}}
    - {{id: no-huge, tools: [add], when: {{a: {{min: 1000000000}}}}, effect: deny}}
    - {{id: ask-big-b, tools: [add], when: {{b: {{min: 1000}}}}, effect: ask}}
    - {{id: small-adds, tools: [add], when: {{a: {{max: 1000000}}, b: {{max: 100}}}},
       effect: allow}}
    - {{id: nothing-else, tools: ["*"], effect: deny}}
budgets: {{max_steps: {steps}, max_tool_calls: {steps}}}
"""


async def bare_once(calls: int) -> float:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=[str(SERVER)])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.call_tool("add", {"a": 0, "b": 1})  # warm
        start = time.perf_counter()
        for i in range(calls):
            result = await session.call_tool("add", {"a": i, "b": 1})
        elapsed = time.perf_counter() - start
    if result.is_error:
        raise SystemExit(f"bare call failed: {result}")
    return elapsed / calls * 1e6


def govrun_once(folder: Path, steps: int) -> float:
    from govrun.runtime.manifest.schema import load_manifest
    from govrun.runtime.models.scripted import ScriptedModel
    from govrun.runtime.run import run_agent

    folder.mkdir(parents=True, exist_ok=True)
    turns = [
        {"tool_calls": [{"id": f"c{i}", "name": "add", "arguments": {"a": i, "b": 1}}]}
        for i in range(steps)
    ] + [{"content": "done"}]
    (folder / "script.yaml").write_text(yaml.safe_dump(turns))
    path = folder / "agent.yaml"
    path.write_text(MANIFEST.format(python=sys.executable, server=SERVER, steps=steps + 5))
    manifest = load_manifest(path)
    model = ScriptedModel(turns, name="bench")
    start = time.perf_counter()
    result = run_agent(
        manifest, task="add", trace_path=folder / f"t-{time.monotonic_ns()}.jsonl", model=model
    )
    elapsed = time.perf_counter() - start
    if result.status != "completed":
        raise SystemExit(f"govrun run did not complete: {result.status} {result.reason}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=positive_int, default=300)
    parser.add_argument("--reps", type=positive_int, default=5)
    args = parser.parse_args()
    small = max(1, args.calls // 4)
    bare: list[float] = []
    governed: list[float] = []
    with tempfile.TemporaryDirectory(prefix="govrun-bench-mcp-") as tmp:
        folder = Path(tmp)
        for rep in range(args.reps):  # alternated: drift on this machine hits both alike
            bare.append(asyncio.run(bare_once(args.calls)))
            long = govrun_once(folder / f"long-{rep}", args.calls)
            short = govrun_once(folder / f"short-{rep}", small)
            governed.append((long - short) / (args.calls - small) * 1e6)
    b, g = statistics.median(bare), statistics.median(governed)
    print(f"MCP call over stdio, {args.calls} calls, median of {args.reps}:")
    print(f"  bare SDK call_tool loop        {b:10,.1f} µs/call")
    print(f"  govrun governed step (1 call)  {g:10,.1f} µs/step   {g / b:.2f}x the bare call")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(
        orjson.dumps(
            {
                "machine": f"{platform.machine()} {platform.python_version()}",
                "calls": args.calls,
                "bare_us_median": b,
                "govrun_us_median": g,
                "ratio": g / b,
                "bare_us": bare,
                "govrun_us": governed,
            },
            option=orjson.OPT_INDENT_2,
        )
    )


if __name__ == "__main__":
    main()
