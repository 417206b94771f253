"""Deadlines that hold, end to end (issue 17): ``govrun run`` against servers that trickle.

A model server that sends its reply a byte every half second, its head a byte at a time,
nothing at all, or a chunked body without end: the run ends ``timeout`` within
``timeout_s`` + 1 s per attempt (plus backoff between attempts), every attempt is a
``model_response`` with ``failure_class: timeout``, the trace verifies, and ``govrun replay``
reproduces it. The same for ``http.get`` against a trickling server.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from govrun.runtime.trace import events as ev
from tests.support.agents import checked_events, of_type
from tests.support.cli import Ran, govrun
from tests.support.trickle_server import Mode, trickling

NO_KEY: dict[str, str | None] = {"OPENAI_API_KEY": None}
"""A local server needs no key; never send the developer's."""


def write_manifest(folder: Path, manifest: dict[str, Any], script: list[Any] | None = None) -> Path:
    (folder / "ws").mkdir(exist_ok=True)
    if script is not None:
        (folder / "script.yaml").write_text(yaml.safe_dump(script))
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


def model_agent(folder: Path, base_url: str, *, timeout_s: float, max_retries: int) -> Path:
    model = {
        "provider": "openai",
        "name": "gpt-fake",
        "base_url": base_url,
        "timeout_s": timeout_s,
        "max_retries": max_retries,
    }
    return write_manifest(folder, {"name": "trickled", "input": "Say hello.", "model": model})


def run(manifest: Path, trace: Path) -> tuple[Ran, float]:
    started = time.monotonic()
    ran = govrun("run", manifest, "-o", trace, env=NO_KEY)
    return ran, time.monotonic() - started


def assert_verifies_and_replays(trace: Path, tmp_path: Path) -> list[ev.Event]:
    assert govrun("verify", trace).code == 0
    replayed = govrun("replay", trace, "-o", tmp_path / "replay.jsonl", env=NO_KEY)
    assert replayed.code == 0, replayed.flat
    assert "✓ identical" in replayed.flat
    return checked_events(trace)


@pytest.mark.parametrize("mode", ["body", "head", "silent", "chunked"])
def test_a_trickling_model_server_ends_the_run_timeout_within_timeout_s(
    mode: Mode, tmp_path: Path
) -> None:
    trace = tmp_path / "trace.jsonl"
    with trickling(mode, interval=0.5) as server:
        manifest = model_agent(tmp_path, server.base_url, timeout_s=1.5, max_retries=0)
        ran, elapsed = run(manifest, trace)

    assert ran.code == 1, ran.flat
    assert elapsed < 1.5 + 1
    assert "status FAILED" in ran.flat and "no complete reply" in ran.flat
    events = assert_verifies_and_replays(trace, tmp_path)
    (response,) = of_type(events, ev.ModelResponse)
    assert (response.failure_class, response.retryable) == ("timeout", True)
    assert "within 1.5s" in (response.error or "")
    assert 1500 <= response.duration_ms < 2500
    finished = of_type(events, ev.RunFinished)[-1]
    assert (finished.status, finished.failure_class) == ("failed", "timeout")


def test_every_retry_is_bounded_and_recorded(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    with trickling("body", interval=0.5) as server:
        manifest = model_agent(tmp_path, server.base_url, timeout_s=1, max_retries=1)
        ran, elapsed = run(manifest, trace)

    assert ran.code == 1, ran.flat
    assert elapsed < 2 * (1 + 1) + 0.5  # two attempts, and the 0.5 s backoff between them
    assert "after 2 attempts" in ran.flat
    events = assert_verifies_and_replays(trace, tmp_path)
    responses = of_type(events, ev.ModelResponse)
    assert [(r.attempt, r.failure_class) for r in responses] == [(1, "timeout"), (2, "timeout")]
    assert all(1000 <= r.duration_ms < 2000 for r in responses)
    assert server.connections == 2  # the retry did not reuse the cut connection


def test_a_retry_after_a_timeout_can_succeed(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    with trickling("body", "fast", interval=0.5) as server:
        manifest = model_agent(tmp_path, server.base_url, timeout_s=1, max_retries=1)
        ran, _ = run(manifest, trace)

    assert ran.code == 0, ran.flat
    events = assert_verifies_and_replays(trace, tmp_path)
    responses = of_type(events, ev.ModelResponse)
    assert [(r.attempt, r.failure_class) for r in responses] == [(1, "timeout"), (2, None)]
    assert responses[1].content == "slow hello"


@pytest.mark.parametrize("mode", ["body", "head", "silent", "chunked"])
def test_http_get_against_a_trickling_server_ends_timeout_within_timeout_s(
    mode: Mode, tmp_path: Path
) -> None:
    trace = tmp_path / "trace.jsonl"
    with trickling(mode, interval=0.5, body=b"x" * 200, path="") as server:
        tool = {
            "name": "fetch",
            "uses": "http.get",
            "timeout_s": 1,
            "scope": {"hosts": [f"127.0.0.1:{server.port}"]},
        }
        script = [
            {"tool_calls": [{"name": "fetch", "arguments": {"url": server.base_url + "/slow"}}]},
            {"content": "the server was too slow"},
        ]
        manifest = {
            "name": "fetcher",
            "input": "Fetch it.",
            "model": {"provider": "scripted", "script": "script.yaml"},
            "tools": [tool],
            "policy": {"default": "allow"},
        }
        ran, elapsed = run(write_manifest(tmp_path, manifest, script), trace)

    assert ran.code == 0, ran.flat
    assert elapsed < 1 + 1
    events = assert_verifies_and_replays(trace, tmp_path)
    (finished,) = of_type(events, ev.ToolFinished)
    assert (finished.ok, finished.failure_class) == (False, "timeout")
    assert (finished.error or "").startswith("GET got no complete response within 1s (")
    assert 1000 <= finished.duration_ms < 1500
