"""The governed loop through the real ``openai`` client, over real HTTP, to a fake server.

Each test runs an agent with ``run_agent`` against :class:`FakeOpenAI` (a real
OpenAI-compatible server on 127.0.0.1), with real fs tools in a temporary workspace, and
checks three things: what happened on disk, what the trace says (read back as typed events
from a trace that verifies), and what the server received.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from govrun.runtime.loop import RunResult
from govrun.runtime.ports import SystemClock
from govrun.runtime.trace import events as ev
from tests.support.agents import (
    API_KEY,
    OPENAI_ENV,
    SYSTEM,
    TASK,
    WORKSPACE,
    decided,
    executed,
    last,
    of_type,
    one,
    openai_manifest,
    run_in,
    told,
    trace_bytes,
    types,
)
from tests.support.fake_openai import FakeOpenAI, fake_openai_fixture  # noqa: F401

TOOL_STEP = [
    "model_request",
    "model_response",
    "tool_call",
    "tool_started",
    "tool_finished",
]
FINAL_STEP = ["model_request", "model_response", "step_finished", "run_finished"]


def run_openai(
    tmp_path: Path, server: FakeOpenAI, *, manifest: dict[str, Any] | None = None, **kw: Any
) -> tuple[RunResult, list[ev.Event]]:
    """Run an openai-provider agent against ``server`` with the test API key in its env."""
    manifest = openai_manifest(server.base_url, **(manifest or {}))
    return run_in(tmp_path, manifest, env=OPENAI_ENV, **kw)


def conversation(server: FakeOpenAI, n: int) -> list[dict[str, Any]]:
    """The messages of the server's ``n``-th chat request (from 0)."""
    return server.requests[n].json["messages"]


# --- 1. multi-step tool use --------------------------------------------------------------


def test_list_read_write_then_answer(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.reply(tool_calls=[{"id": "c-list", "name": "fs_list", "arguments": {"path": "."}}])
    fake_openai.reply(
        tool_calls=[{"id": "c-read", "name": "fs_read", "arguments": {"path": "notes.txt"}}]
    )
    fake_openai.reply(
        tool_calls=[
            {
                "id": "c-write",
                "name": "fs_write",
                "arguments": {"path": "out/summary.md", "content": "# Summary\nthree notes\n"},
            }
        ]
    )
    fake_openai.reply("Wrote out/summary.md.")

    result, events = run_openai(tmp_path, fake_openai, files={"notes.txt": "a\nb\nc\n"})

    assert (result.status, result.failure_class, result.steps) == ("completed", None, 4)
    assert result.final_answer == "Wrote out/summary.md."
    written = tmp_path / WORKSPACE / "out" / "summary.md"
    assert written.read_text() == "# Summary\nthree notes\n"

    # The shape of each step, in order.
    assert types(events, step=0) == ["run_started"]
    assert types(events, step=1) == [*TOOL_STEP, "step_finished"]
    assert types(events, step=2) == [*TOOL_STEP, "step_finished"]
    assert types(events, step=3) == [*TOOL_STEP, "verification", "step_finished"]
    assert types(events, step=4) == FINAL_STEP
    assert executed(events) == ["c-list", "c-read", "c-write"]
    assert one(events, ev.Verification).passed  # fs.write's default evidence: the hash held

    # The trace grows linearly: each request records only the messages added since the last.
    requests = of_type(events, ev.ModelRequest)
    assert [r.step for r in requests] == [1, 2, 3, 4]
    assert requests[0].messages_added == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": TASK},
    ]
    second = requests[1].messages_added
    assert [m["role"] for m in second] == ["assistant", "tool"]
    assert second[0]["tool_calls"][0]["id"] == "c-list"
    assert second[1]["tool_call_id"] == "c-list"
    assert "notes.txt" in second[1]["content"]
    for r in requests[1:]:
        assert all(m["role"] != "system" for m in r.messages_added)
        assert len(r.messages_added) == 2
    assert [r.message_count for r in requests] == [2, 4, 6, 8]
    assert sum(len(r.messages_added) for r in requests) == requests[-1].message_count
    assert len({r.prompt_hash for r in requests}) == 4

    # The server saw the whole conversation each time, tool results tied to their calls.
    assert len(fake_openai.requests) == 4
    full = conversation(fake_openai, 3)
    assert [m["role"] for m in full] == ["system", "user"] + ["assistant", "tool"] * 3
    assert [m["tool_call_id"] for m in full if m["role"] == "tool"] == [
        "c-list",
        "c-read",
        "c-write",
    ]
    assert full[5]["content"] == "a\nb\nc\n"  # the file as fs_read returned it
    for n in range(4):
        assert conversation(fake_openai, n) == full[: 2 + 2 * n]
        body = fake_openai.requests[n].json
        assert body["model"] == "gpt-fake"
        assert {t["function"]["name"] for t in body["tools"]} == {"fs_list", "fs_read", "fs_write"}

    # What the model was told is what the trace says the tool returned.
    for finished in of_type(events, ev.ToolFinished):
        assert told(events, finished.call_id) == finished.output


# --- 2. parallel tool calls ----------------------------------------------------------------


def test_two_calls_in_one_response_are_governed_and_run_in_order(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply(
        tool_calls=[
            {"id": "c-a", "name": "fs_write", "arguments": {"path": "a.txt", "content": "A"}},
            {"id": "c-b", "name": "fs_write", "arguments": {"path": "b.txt", "content": "B"}},
        ]
    )
    fake_openai.reply("both written")

    result, events = run_openai(tmp_path, fake_openai)

    assert result.status == "completed"
    assert (tmp_path / WORKSPACE / "a.txt").read_text() == "A"
    assert (tmp_path / WORKSPACE / "b.txt").read_text() == "B"
    per_call = ["tool_call", "tool_started", "tool_finished", "verification"]
    assert types(events, step=1) == [
        "model_request",
        "model_response",
        *per_call,
        *per_call,
        "step_finished",
    ]
    step1 = [e for e in events if e.step == 1 and hasattr(e, "call_id")]
    assert [e.call_id for e in step1] == ["c-a"] * 4 + ["c-b"] * 4
    assert [c.decision.effect for c in of_type(events, ev.ToolCall)] == ["allow", "allow"]
    assert executed(events) == ["c-a", "c-b"]
    full = conversation(fake_openai, 1)
    assert [(m["role"], m.get("tool_call_id")) for m in full[2:]] == [
        ("assistant", None),
        ("tool", "c-a"),
        ("tool", "c-b"),
    ]
    assert [c["id"] for c in full[2]["tool_calls"]] == ["c-a", "c-b"]


# --- 3-5. calls that never reach a tool ------------------------------------------------------


@pytest.mark.parametrize(
    ("tool_call", "failure_class", "reason"),
    [
        pytest.param(
            {"name": "fs_read", "arguments": '{"path": '},
            "invalid_arguments",
            "not a JSON object",
            id="malformed-json",
        ),
        pytest.param(
            {"name": "fs_read", "arguments": '["notes.txt"]'},
            "invalid_arguments",
            "not a JSON object",
            id="json-array",
        ),
        pytest.param(
            {"name": "delete_everything", "arguments": {"path": "."}},
            "unknown_tool",
            "unknown tool 'delete_everything'",
            id="unknown-tool",
        ),
        pytest.param(
            {"name": "fs_read", "arguments": {"path": "notes.txt", "encoding": "latin-1"}},
            "invalid_arguments",
            "encoding",
            id="hallucinated-argument",
        ),
        pytest.param(
            {"name": "fs_read", "arguments": {"file": "notes.txt"}},
            "invalid_arguments",
            "path",
            id="misnamed-argument",
        ),
        pytest.param(
            {"name": "fs_read", "arguments": {"path": 7}},
            "invalid_arguments",
            "path",
            id="wrong-type",
        ),
    ],
)
def test_a_bad_call_is_denied_the_model_is_told_and_the_run_goes_on(
    tmp_path: Path, fake_openai: FakeOpenAI, tool_call: dict, failure_class: str, reason: str
) -> None:
    fake_openai.reply(tool_calls=[{"id": "c-bad", **tool_call}])
    fake_openai.reply(
        tool_calls=[{"id": "c-good", "name": "fs_read", "arguments": {"path": "notes.txt"}}]
    )
    fake_openai.reply("recovered")

    result, events = run_openai(tmp_path, fake_openai, files={"notes.txt": "hello"})

    assert (result.status, result.final_answer) == ("completed", "recovered")
    decision = decided(events, "c-bad")
    assert (decision.effect, decision.failure_class, decision.rule) == ("deny", failure_class, None)
    assert reason in decision.reason
    assert types(events, step=1) == [
        "model_request",
        "model_response",
        "tool_call",
        "step_finished",
    ]
    proposed = one(events, ev.ToolCall, call_id="c-bad")
    if isinstance(tool_call["arguments"], str):
        assert proposed.raw_arguments == tool_call["arguments"]
    assert executed(events) == ["c-good"]  # the bad call never started; the next one ran
    assert last(events, ev.RunFinished).totals["denials"] == 1

    # The model is told, in the next request, with the class and the reason.
    explained = told(events, "c-bad")
    assert explained.startswith(f"[{failure_class}] call not executed:")
    assert reason in explained
    sent = [m for m in conversation(fake_openai, 1) if m.get("tool_call_id") == "c-bad"]
    assert sent == [{"role": "tool", "tool_call_id": "c-bad", "content": explained}]
    if isinstance(tool_call["arguments"], str):  # sent back exactly as the model wrote it
        echoed = conversation(fake_openai, 1)[2]["tool_calls"][0]["function"]["arguments"]
        assert echoed == tool_call["arguments"]


# --- 6-8. model failures and retries ----------------------------------------------------------


def test_429_then_success_is_retried_and_both_attempts_are_recorded(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.error(429, headers={"retry-after": "0"})
    fake_openai.reply("after the retry")

    result, events = run_openai(tmp_path, fake_openai)

    assert (result.status, result.final_answer) == ("completed", "after the retry")
    assert types(events, step=1) == [
        "model_request",
        "model_response",
        "model_request",
        "model_response",
        "step_finished",
        "run_finished",
    ]
    first, second = of_type(events, ev.ModelResponse)
    assert (first.attempt, first.failure_class) == (1, "model_error")
    assert "429" in (first.error or "")
    assert first.tool_calls == [] and first.content is None
    assert (second.attempt, second.failure_class, second.error) == (2, None, None)
    assert second.content == "after the retry"
    r1, r2 = of_type(events, ev.ModelRequest)
    assert (r1.attempt, r2.attempt) == (1, 2)
    assert len(r1.messages_added) == 2 and r2.messages_added == []  # a retry adds nothing
    assert r1.prompt_hash == r2.prompt_hash
    assert len(fake_openai.requests) == 2
    assert conversation(fake_openai, 0) == conversation(fake_openai, 1)
    assert last(events, ev.RunFinished).totals["model_calls"] == 2


def test_a_500_storm_fails_the_run_after_max_retries_plus_one_attempts(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    for _ in range(6):
        fake_openai.error(500)

    result, events = run_openai(tmp_path, fake_openai, manifest={"model": {"max_retries": 2}})

    assert (result.status, result.failure_class) == ("failed", "model_error")
    assert "after 3 attempts" in result.reason
    assert "500" in result.reason
    responses = of_type(events, ev.ModelResponse)
    assert [r.attempt for r in responses] == [1, 2, 3]
    assert all(r.failure_class == "model_error" and r.error for r in responses)
    assert [r.attempt for r in of_type(events, ev.ModelRequest)] == [1, 2, 3]
    assert len(fake_openai.requests) == 3 and fake_openai.pending == 3
    finished = last(events, ev.RunFinished)
    assert (finished.status, finished.failure_class) == ("failed", "model_error")
    assert finished.totals["model_calls"] == 3


def test_a_hanging_server_times_out_without_waiting_for_it(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """The real client timeout, with the real clock: the run ends in about timeout_s."""
    fake_openai.hang(10)
    started = time.monotonic()

    result, events = run_openai(
        tmp_path,
        fake_openai,
        manifest={"model": {"timeout_s": 0.5, "max_retries": 0}},
        clock=SystemClock(),
    )

    elapsed = time.monotonic() - started
    assert elapsed < 4, f"the run waited {elapsed:.1f}s for a server hanging 10s"
    assert (result.status, result.failure_class) == ("failed", "timeout")
    response = one(events, ev.ModelResponse)
    assert response.failure_class == "timeout"
    assert "0.5s" in (response.error or "")
    assert 400 <= response.duration_ms < 4000
    assert len(fake_openai.requests) == 1


# --- 9. cost -----------------------------------------------------------------------------------


def test_pricing_gives_a_cost_per_response_per_step_and_in_total(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}
    fake_openai.reply(
        tool_calls=[{"id": "c1", "name": "fs_list", "arguments": {"path": "."}}], usage=usage
    )
    fake_openai.reply(
        "done", usage={"prompt_tokens": 3000, "completion_tokens": 100, "total_tokens": 3100}
    )
    pricing = {"input_per_mtok": 2.5, "output_per_mtok": 10}

    result, events = run_openai(tmp_path, fake_openai, manifest={"model": {"pricing": pricing}})

    assert result.status == "completed"
    first, second = of_type(events, ev.ModelResponse)
    assert first.cost_usd == pytest.approx(0.0025 + 0.002)
    assert second.cost_usd == pytest.approx(0.0075 + 0.001)
    assert first.usage == usage
    steps = of_type(events, ev.StepFinished)
    assert steps[0].cost_usd == pytest.approx(first.cost_usd)
    assert steps[0].tokens == 1200
    totals = last(events, ev.RunFinished).totals
    assert totals["cost_usd"] == pytest.approx(0.013)
    assert (totals["prompt_tokens"], totals["completion_tokens"], totals["tokens"]) == (
        4000,
        300,
        4300,
    )
    assert result.counters.cost_usd == pytest.approx(0.013)
    assert sum(s.cost_usd for s in steps) == pytest.approx(totals["cost_usd"])
    assert sum(s.tokens for s in steps) == totals["tokens"]


def test_without_pricing_cost_is_zero(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.reply("done")

    _, events = run_openai(tmp_path, fake_openai)

    assert one(events, ev.ModelResponse).cost_usd == 0.0
    assert last(events, ev.RunFinished).totals["cost_usd"] == 0.0


# --- 10. the API key ---------------------------------------------------------------------------


def test_the_api_key_is_sent_as_bearer_and_never_written(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """Even when the agent reads a file holding the key and echoes it into a call."""
    fake_openai.reply(tool_calls=[{"id": "c1", "name": "fs_read", "arguments": {"path": ".env"}}])
    fake_openai.reply(
        tool_calls=[
            {
                "id": "c2",
                "name": "fs_write",
                "arguments": {"path": "leak.txt", "content": f"key={API_KEY}"},
            }
        ]
    )
    fake_openai.reply(f"the key is {API_KEY}")

    result, events = run_openai(
        tmp_path,
        fake_openai,
        manifest={"model": {"api_key_env": "OPENAI_API_KEY"}},  # a local server is keyless
        files={".env": f"OPENAI_API_KEY={API_KEY}"},
    )

    assert result.status == "completed"
    assert len(fake_openai.requests) == 3
    for request in fake_openai.requests:
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
    raw = trace_bytes(result.trace_path)
    assert API_KEY.encode() not in raw
    assert b"[redacted]" in raw  # it was there, and was replaced
    assert one(events, ev.ToolFinished, call_id="c1").output == "OPENAI_API_KEY=[redacted]"
    assert API_KEY not in (last(events, ev.RunFinished).final_answer or "")
    started = one(events, ev.RunStarted)
    assert started.manifest["model"]["api_key_env"] == "OPENAI_API_KEY"


def test_a_run_with_no_tools_offers_none(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.reply("plain answer")

    result, _ = run_openai(tmp_path, fake_openai, manifest={"tools": []})

    assert result.status == "completed"
    assert "tools" not in fake_openai.last_request.json
