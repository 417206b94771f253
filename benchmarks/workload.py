"""The shared benchmark workload: one cheap tool, a deterministic instant model, a
five-rule policy. Every contender runs exactly this (issue #8's workload)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def turns(n: int) -> list[dict[str, Any]]:
    """At call i < n ask for add(a=i, b=1) with id call_i; at call n answer "done"."""
    usage = {"prompt_tokens": 40, "completion_tokens": 8}
    calls = [
        {
            "content": None,
            "usage": usage,
            "tool_calls": [{"id": f"call_{i}", "name": "add", "arguments": {"a": i, "b": 1}}],
        }
        for i in range(n)
    ]
    return [*calls, {"content": "done", "usage": usage}]


MANIFEST = """\
name: bench
system: You add numbers.
model:
  provider: scripted
  script: script.yaml
  pricing: {{input_per_mtok: 0.15, output_per_mtok: 0.6}}
tools:
  - {{name: add, python: "benchmarks.workload:add", risk: low}}
policy:
  default: deny
  rules:
    - {{id: no-negative, tools: [add], when: {{a: {{max: -1}}}}, effect: deny}}
    - {{id: no-huge, tools: [add], when: {{a: {{min: 1000000000}}}}, effect: deny}}
    - {{id: ask-big-b, tools: [add], when: {{b: {{min: 1000}}}}, effect: ask}}
    - {{id: small-adds, tools: [add], when: {{a: {{max: 1000000}}, b: {{max: 100}}}},
       effect: allow}}
    - {{id: nothing-else, tools: ["*"], effect: deny}}
budgets:
  max_steps: {steps}
  max_tool_calls: {steps}
  max_tokens: 100000000
  max_cost_usd: 100
  max_wall_time_s: 3600
interrupts:
  repeat_call: {{max_repeats: 3, action: stop}}
  argument_size: {{max_bytes: 10000, action: stop}}
"""


def write_agent(folder: Path, n: int) -> Path:
    """The manifest and its script in ``folder``; returns the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "script.yaml").write_text(yaml.safe_dump(turns(n), sort_keys=False))
    path = folder / "agent.yaml"
    path.write_text(MANIFEST.format(steps=n + 5))
    return path
