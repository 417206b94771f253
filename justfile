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
