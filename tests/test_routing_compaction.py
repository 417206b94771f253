"""Several models and a bounded prompt: `routing:` escalates after a failure and back,
`compaction:` keeps the prompt under its limit — and both replay exactly (run_in replays
every run strictly on the way out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from govrun.runtime.manifest.schema import load_manifest
from govrun.runtime.replayer.session import assert_replays, replay
from govrun.runtime.trace import events as ev
from govrun.runtime.trace.reader import read_stored
from govrun.runtime.trace.record import Record
from tests.support.agents import (
    WORKSPACE,
    answer,
    call,
    calls,
    fs_tools,
    of_type,
    run_in,
)
from tests.support.cli import govrun

TITLE_CHECK = {
    "check": "file_contains",
    "id": "has-title",
    "path": "{args.path}",
    "pattern": "^# Report",
}


def routed_manifest(**extra: Any) -> dict[str, Any]:
    tools = fs_tools("read", "write")
    tools[1]["verify"] = [TITLE_CHECK]
    return {
        "name": "routed",
        "system": "Write the report.",
        "models": {
            "fast": {
                "provider": "scripted",
                "script": "fast.yaml",
                "pricing": {"input_per_mtok": 0.1, "output_per_mtok": 0.4},
            },
            "strong": {
                "provider": "scripted",
                "script": "strong.yaml",
                "name": "big-model",
                "pricing": {"input_per_mtok": 5, "output_per_mtok": 15},
            },
        },
        "routing": {
            "default": "fast",
            "rules": [
                {"id": "escalate", "after": ["verification_failed", "tool_error"], "use": "strong"}
            ],
        },
        "tools": tools,
        "policy": {"default": "allow"},
        **extra,
    }


def write_scripts(folder: Path, fast: list[Any], strong: list[Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fast.yaml").write_text(yaml.safe_dump(fast), encoding="utf-8")
    (folder / "strong.yaml").write_text(yaml.safe_dump(strong), encoding="utf-8")


def report(content: str) -> dict[str, Any]:
    return calls(call("fs_write", {"path": "report.md", "content": content}))


@pytest.fixture
def escalated(tmp_path: Path) -> tuple[Path, list[ev.Event]]:
    write_scripts(
        tmp_path,
        fast=[report("no title\n"), answer("done")],
        strong=[report("# Report\nall good\n")],
    )
    result, events = run_in(tmp_path, routed_manifest())
    assert result.status == "completed"
    return Path(result.trace_path), events


def test_escalates_after_a_verification_failure_and_back(
    escalated: tuple[Path, list[ev.Event]],
) -> None:
    trace, events = escalated
    routes = of_type(events, ev.Route)
    assert [(r.step, r.model, r.previous) for r in routes] == [
        (1, "fast", None),
        (2, "strong", "fast"),
        (3, "fast", "strong"),
    ]
    assert routes[1].reason == "rule escalate: step 1 had verification_failed"
    assert routes[2].reason == "default (step 2 succeeded)"
    requests = of_type(events, ev.ModelRequest)
    assert [r.model for r in requests] == ["scripted", "big-model", "scripted"]
    assert (trace.parent / WORKSPACE / "report.md").read_text() == "# Report\nall good\n"
    finished = of_type(events, ev.RunFinished)[0]
    models = finished.totals["models"]
    assert models["fast"]["model_calls"] == 2 and models["strong"]["model_calls"] == 1
    # each model's calls cost at its own prices
    fast_cost = sum(r.cost_usd for r in of_type(events, ev.ModelResponse) if r.step != 2)
    assert models["fast"]["cost_usd"] == pytest.approx(fast_cost)
    assert models["strong"]["cost_usd"] > models["fast"]["cost_usd"]


def test_the_routed_run_replays_and_show_and_diff_reflect_it(
    escalated: tuple[Path, list[ev.Event]], tmp_path: Path
) -> None:
    trace, _ = escalated
    assert_replays(trace).identical  # noqa: B018 - raises if not

    shown = govrun("show", trace)
    assert shown.code == 0
    assert "strong" in shown.flat and "fast" in shown.flat

    # the same run with a routing rule removed: diff shows the model change at step 2
    other = tmp_path / "other"
    write_scripts(
        other,
        fast=[report("no title\n"), report("# Report\nall good\n"), answer("done")],
        strong=[answer("unused")],
    )
    manifest = routed_manifest()
    manifest["routing"]["rules"] = []
    result, _ = run_in(other, manifest)
    ran = govrun("diff", trace, result.trace_path)
    assert ran.code == 1
    assert "big-model" in ran.flat


def test_a_per_model_budget_stops_the_run(tmp_path: Path) -> None:
    write_scripts(
        tmp_path,
        fast=[report("no title\n")] * 3 + [answer("done")],
        strong=[report("still no title\n")] * 3,
    )
    manifest = routed_manifest(budgets={"per_model": {"strong": {"max_model_calls": 1}}})
    result, events = run_in(tmp_path, manifest)
    assert (result.status, result.failure_class) == ("stopped", "budget_exceeded")
    (trip,) = [i for i in of_type(events, ev.Interrupt) if i.kind == "budget"]
    assert trip.rule == "per_model.strong.max_model_calls"


# --- compaction ---------------------------------------------------------------------------


def long_run(n: int) -> list[dict[str, Any]]:
    """Read n files (each output ~600 bytes), then answer."""
    return [calls(call("fs_read", {"path": f"f{i}.txt"})) for i in range(n)] + [answer("read all")]


FILES = {f"f{i}.txt": f"file {i}: " + "lorem ipsum " * 50 for i in range(12)}


def test_a_long_run_compacts_at_least_twice_and_replays_exactly(tmp_path: Path) -> None:
    manifest = {
        "name": "long",
        "system": "Read the files.",
        "model": {"provider": "scripted", "script": "script.yaml"},
        "tools": fs_tools("read"),
        "policy": {"default": "allow"},
        "compaction": {"max_context_tokens": 900, "keep_last_turns": 2},
    }
    result, events = run_in(tmp_path, manifest, script=long_run(12), files=FILES)
    assert result.status == "completed"
    compactions = of_type(events, ev.Compaction)
    assert len(compactions) >= 2
    for c in compactions:
        assert c.strategy == "truncate"
        assert c.tokens_after < c.tokens_before
        assert c.turns_replaced >= 1
        assert "result elided" in (c.summary or "") and "sha256" in (c.summary or "")
    # every request after a compaction records the whole new prompt, and stays under the limit
    stored = read_stored(result.trace_path)[0]
    after = [stored[i + 1] for i, e in enumerate(stored[:-1]) if e["type"] == "compaction"]
    for request in after:
        assert request["type"] == "model_request"
        roles = [m["role"] for m in request["messages_added"]]
        assert roles[:3] == ["system", "user", "user"]  # system, task, the compaction
        assert request["messages_added"][2]["content"].startswith("[compacted")
    # run_in already replayed it strictly; replaying again under the same manifest file too
    assert_replays(result.trace_path, manifest=tmp_path / "agent.yaml")


def test_a_model_written_summary_is_recorded_and_replayed(tmp_path: Path) -> None:
    manifest = {
        "name": "summarized",
        "system": "Read the files.",
        "models": {
            "worker": {"provider": "scripted", "script": "script.yaml"},
            "summarizer": {"provider": "scripted", "script": "summaries.yaml"},
        },
        "routing": {"default": "worker"},
        "tools": fs_tools("read"),
        "policy": {"default": "allow"},
        "compaction": {
            "max_context_tokens": 900,
            "keep_last_turns": 2,
            "strategy": "summarize",
            "summary_model": "summarizer",
        },
    }
    (tmp_path).mkdir(exist_ok=True)
    summaries = [answer(f"summary {n}: files read so far, nothing odd") for n in range(10)]
    (tmp_path / "summaries.yaml").write_text(yaml.safe_dump(summaries), encoding="utf-8")
    result, events = run_in(tmp_path, manifest, script=long_run(10), files=FILES)
    assert result.status == "completed"
    compactions = of_type(events, ev.Compaction)
    assert len(compactions) >= 2
    assert compactions[0].summary == "summary 0: files read so far, nothing odd"
    assert compactions[0].strategy == "summarize" and compactions[0].usage
    # the summarizer's calls are accounted
    finished = of_type(events, ev.RunFinished)[0]
    assert finished.totals["model_calls"] == 11 + len(compactions)
    assert finished.totals["models"]["summarizer"]["model_calls"] == len(compactions)
    # replay never asks the summarizer again: it answers from the recorded summary
    (tmp_path / "summaries.yaml").write_text(yaml.safe_dump([answer("DIFFERENT")] * 10))
    assert_replays(result.trace_path)


def test_manifest_problems_are_named(tmp_path: Path) -> None:
    write_scripts(tmp_path, [answer()], [answer()])
    both = routed_manifest(model={"provider": "scripted", "script": "fast.yaml"})
    (tmp_path / "both.yaml").write_text(yaml.safe_dump(both), encoding="utf-8")
    ran = govrun("validate", tmp_path / "both.yaml")
    assert ran.code == 2
    assert "expected either `model:` or `models:` with `routing:`, not both" in ran.flat

    vague = routed_manifest()
    vague["routing"]["rules"].append({"id": "nothing", "use": "strong"})
    (tmp_path / "vague.yaml").write_text(yaml.safe_dump(vague), encoding="utf-8")
    ran = govrun("validate", tmp_path / "vague.yaml")
    assert ran.code == 2
    assert "expected at least one condition" in ran.flat


def test_a_counterfactual_without_the_escalation_rule_reports_the_model_change(
    escalated: tuple[Path, list[ev.Event]], tmp_path: Path
) -> None:
    trace, _ = escalated
    manifest = routed_manifest()
    manifest["routing"]["rules"] = []
    (trace.parent / "no-escalation.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    outcome = replay(
        Record.load(trace),
        tmp_path / "r.jsonl",
        manifest=load_manifest(trace.parent / "no-escalation.yaml"),
    )
    assert [c.describe() for c in outcome.changes()] == ["step 2 model: strong → fast"]
