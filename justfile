# govrun developer recipes. `just --list` shows them.

# Run the test suite (the same command CI runs).
test *args:
    python -m pytest {{args}}

# Lint.
lint:
    ruff check .

# Run the offline quickstart and triage agents, then show and verify a trace and the fixtures.
demo:
    govrun validate fixtures/agents/realistic.yaml
    govrun run fixtures/agents/quickstart.yaml -o runs/demo-quickstart.jsonl || true
    govrun run fixtures/agents/realistic-offline.yaml --approvals fixtures/approvals/triage.yaml -o runs/demo-triage.jsonl || true
    govrun show runs/demo-quickstart.jsonl
    govrun verify runs/demo-quickstart.jsonl
    -govrun verify fixtures/traces/torn.jsonl
    -govrun verify fixtures/traces/tampered.jsonl
    rm -rf runs/demo-quickstart.jsonl* runs/demo-triage.jsonl*

# The peers are installed first (benchmarks/requirements-peers.txt); benchmarks/run_all.py then
# runs, each in its own process, bench_peers (the step table against them), bench_trace,
# bench_loop, bench_replay, bench_corpus (replay of 200 traces, --jobs 1 against --jobs 2),
# bench_diff, bench_inspect, bench_pycall (a Python tool's cost per call, inline and under
# isolation: process), bench_mcp (a governed MCP call against a bare SDK call_tool loop),
# bench_temporal (50 runs over 2 workers against local runs) and bench_otel (OpenTelemetry
# export spans/s of a 10,000-step trace, and live export's cost to a run), and prints every
# target met / missed.
# A new benchmark goes in run_all's STAGES.
# Benchmarks (not tests): print tables, write benchmarks/results/*.json and summary.json.
bench:
    python -m pip install -q -r benchmarks/requirements-peers.txt
    python -m benchmarks.run_all

# Re-record the golden quickstart trace (after an intended change to the quickstart agent);
# tests replay it under the current manifest and fail on any divergence.
golden:
    rm -f fixtures/golden/quickstart.jsonl
    govrun run fixtures/agents/quickstart.yaml -o fixtures/golden/quickstart.jsonl </dev/null
    rm -rf fixtures/golden/quickstart.jsonl.workspace  # the run's files; the trace is the record
    govrun replay fixtures/golden/quickstart.jsonl --manifest fixtures/agents/quickstart.yaml --strict -o "$(mktemp -d)/replay.jsonl"
