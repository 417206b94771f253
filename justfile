# govrun developer recipes. `just --list` shows them.

# Run the test suite (the same command CI runs).
test *args:
    python -m pytest {{args}}

# Lint.
lint:
    ruff check .

# Run the offline quickstart agent, then show and verify its trace and the fixtures.
demo:
    govrun validate fixtures/agents/realistic.yaml
    govrun run fixtures/agents/quickstart.yaml -o runs/demo-quickstart.jsonl || true
    govrun show runs/demo-quickstart.jsonl
    govrun verify runs/demo-quickstart.jsonl
    -govrun verify fixtures/traces/torn.jsonl
    -govrun verify fixtures/traces/tampered.jsonl
    rm -f runs/demo-quickstart.jsonl

# Benchmarks (not tests): print tables, write benchmarks/results/*.json.
bench:
    python -m benchmarks.bench_trace
    python -m benchmarks.bench_loop
    python -m benchmarks.bench_replay
    python -m benchmarks.bench_diff

# Re-record the golden quickstart trace (after an intended change to the quickstart agent);
# tests replay it under the current manifest and fail on any divergence.
golden:
    rm -f fixtures/golden/quickstart.jsonl
    govrun run fixtures/agents/quickstart.yaml -o fixtures/golden/quickstart.jsonl </dev/null
    govrun replay fixtures/golden/quickstart.jsonl --manifest fixtures/agents/quickstart.yaml --strict -o "$(mktemp -d)/replay.jsonl"
