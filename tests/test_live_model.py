"""Opt-in: govrun against a real model on a real OpenAI-compatible server (issue 20).

Skipped unless ``GOVRUN_LIVE_BASE_URL`` and ``GOVRUN_LIVE_MODEL`` name one, e.g. a small
GGUF model on llama.cpp's ``llama-server --jinja`` (README, "Real models"). Optional:
``GOVRUN_LIVE_API_KEY_ENV`` (the variable holding a key; keyless without it),
``GOVRUN_LIVE_TOOL_CALL_FORMAT`` (hermes or json), ``GOVRUN_LIVE_TIMEOUT_S`` (default 300).

These tests assert govrun's behaviour, never that the model solved the task: the run ends
without a traceback (completed, or failed or stopped with a failure class), its trace
verifies, every failure in it is classified, and replay reproduces it event for event.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from govrun.runtime.trace import events as ev
from govrun.runtime.trace.reader import read_trace
from tests.support.cli import govrun

BASE_URL = os.environ.get("GOVRUN_LIVE_BASE_URL", "")
MODEL = os.environ.get("GOVRUN_LIVE_MODEL", "")

pytestmark = [
    pytest.mark.live_model,
    pytest.mark.skipif(
        not (BASE_URL and MODEL),
        reason="set GOVRUN_LIVE_BASE_URL and GOVRUN_LIVE_MODEL to run against a real model",
    ),
]

NOTES = "- The release moves to Friday.\n- The budget review is next week.\n"


def live_manifest(**model: Any) -> dict[str, Any]:
    """The notes-to-summary agent on the live server, with small, bounded replies."""
    config: dict[str, Any] = {
        "provider": "openai",
        "name": MODEL,
        "base_url": BASE_URL,
        "timeout_s": float(os.environ.get("GOVRUN_LIVE_TIMEOUT_S", "300")),
        "max_retries": 1,
        "params": {"temperature": 0, "max_tokens": 512, "seed": 1, "tool_choice": "auto"},
        **model,
    }
    if os.environ.get("GOVRUN_LIVE_API_KEY_ENV"):
        config["api_key_env"] = os.environ["GOVRUN_LIVE_API_KEY_ENV"]
    if os.environ.get("GOVRUN_LIVE_TOOL_CALL_FORMAT"):
        config["tool_call_format"] = os.environ["GOVRUN_LIVE_TOOL_CALL_FORMAT"]
    return {
        "name": "live-notes",
        "system": "You are a careful assistant. Use the tools to read and write files. "
        "When the summary is written, answer in one sentence without calling tools.",
        "input": "Read notes.md and write summary.md: a line '# Summary', then one bullet "
        "per note. Then answer with one sentence naming summary.md.",
        "model": config,
        "workspace": {"template": "workspace"},
        "tools": [
            {"name": "read_file", "uses": "fs.read", "scope": {"roots": ["workspace"]}},
            {"name": "write_file", "uses": "fs.write", "scope": {"roots": ["workspace"]}},
        ],
        "policy": {"default": "deny", "rules": [{"id": "all", "tools": ["*"], "effect": "allow"}]},
        "budgets": {"max_steps": 6, "max_tool_calls": 6},
        "success": [{"check": "file_exists", "path": "workspace/summary.md", "fresh": True}],
    }


def run_live(tmp_path: Path, manifest: dict[str, Any]) -> list[ev.Event]:
    """``govrun run`` the manifest; then verify and replay its trace through the CLI."""
    (tmp_path / "workspace").mkdir()
    (tmp_path / "workspace" / "notes.md").write_text(NOTES)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    trace = tmp_path / "live.jsonl"

    ran = govrun("run", path, "-o", trace)  # fails the test on a traceback

    assert ran.code in (0, 1), ran.flat  # completed, or failed/stopped: never a crash
    assert govrun("verify", trace).code == 0
    replayed = govrun("replay", trace, "-o", tmp_path / "replay.jsonl")
    assert replayed.code == 0, replayed.flat
    events, torn = read_trace(trace)
    assert torn is None
    return events


def assert_every_failure_classified(events: list[ev.Event]) -> None:
    finished = events[-1]
    assert isinstance(finished, ev.RunFinished)
    assert (finished.status == "completed") == (finished.failure_class is None)
    for e in events:
        if isinstance(e, ev.ToolCall) and e.decision.effect == "deny":
            assert e.decision.failure_class is not None
        if isinstance(e, ev.ToolFinished) and not e.ok:
            assert e.failure_class is not None
        if isinstance(e, ev.ModelResponse) and e.error is not None:
            assert e.failure_class is not None
        if isinstance(e, ev.Verification) and not e.passed:
            assert e.failure_class is not None


def test_a_live_run_is_governed_recorded_and_replays(tmp_path: Path) -> None:
    events = run_live(tmp_path, live_manifest())
    assert_every_failure_classified(events)
    assert any(isinstance(e, ev.ModelResponse) and e.error is None for e in events)


def test_a_live_run_cut_short_by_the_token_limit_is_no_answer(tmp_path: Path) -> None:
    """max_tokens 8: whatever the model says is cut off; the run must not complete on it."""
    manifest = live_manifest(max_refused_replies=2)
    manifest["model"]["params"]["max_tokens"] = 8
    events = run_live(tmp_path, manifest)
    assert_every_failure_classified(events)
    finished = events[-1]
    assert isinstance(finished, ev.RunFinished)
    if any(isinstance(e, ev.ModelResponse) and e.finish_reason == "length" for e in events):
        assert any(isinstance(e, ev.ReplyRefused) and e.kind == "length" for e in events)
    assert finished.status != "completed"


def test_a_live_run_with_a_minimal_schema(tmp_path: Path) -> None:
    events = run_live(tmp_path, live_manifest(tool_schema="minimal"))
    assert_every_failure_classified(events)
