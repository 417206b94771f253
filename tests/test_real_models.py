"""What real models and flaky endpoints send (issue 20), through the real ``openai`` client.

Each test runs an agent against :class:`FakeOpenAI` (real HTTP on 127.0.0.1) answering as a
small local model or a production endpoint misbehaves: a reply cut off by the token limit,
a tool call written as text (fenced JSON, Hermes ``<tool_call>``), an invented tool name,
invalid JSON arguments again and again, an empty choice list, no usage. For each, the trace
holds a classified, explained event, the run completes only when a later real answer passes
the success checks, and ``run_in`` checks that the trace verifies and replays identically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from govrun.cli.inspect.palette import PLAIN
from govrun.cli.inspect.sections import build
from govrun.cli.inspect.steps import StepLoader
from govrun.runtime.errors import GovrunError
from govrun.runtime.loop import CUT_OFF_CALLS, RunResult
from govrun.runtime.models.openai_model import PLACEHOLDER_KEY
from govrun.runtime.replayer.session import assert_replays
from govrun.runtime.run import run_agent
from govrun.runtime.trace import events as ev
from govrun.runtime.views.diff import describe_action
from govrun.runtime.views.timeline import Timeline
from govrun.runtime.views.trajectory import load_trajectory
from tests.support.agents import (
    MANIFEST,
    OPENAI_ENV,
    WORKSPACE,
    checked_events,
    decided,
    last,
    of_type,
    one,
    openai_manifest,
    prepare,
    run_in,
    told,
)
from tests.support.cli import govrun
from tests.support.fake_openai import FakeOpenAI, fake_openai_fixture  # noqa: F401

HALF_A_SENTENCE = "The notes say that the release moves to Friday because the budget rev"
WRITE = {"path": "summary.md", "content": "# Summary\n- release on Friday\n"}
FRESH_SUMMARY = {"check": "file_exists", "path": f"{WORKSPACE}/summary.md", "fresh": True}


def run_model(
    tmp_path: Path,
    server: FakeOpenAI,
    *,
    model: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    **sections: Any,
) -> tuple[RunResult, list[ev.Event]]:
    """An agent whose success needs a summary.md written by this run."""
    sections.setdefault("success", [FRESH_SUMMARY])
    manifest = openai_manifest(server.base_url, model=model or {}, **sections)
    return run_in(tmp_path, manifest, files=files or {"notes.md": "- release on Friday\n"}, env=env)


def write_then_answer(server: FakeOpenAI) -> None:
    """A real tool call that writes the summary, then a real final answer."""
    server.reply(tool_calls=[{"id": "w", "name": "fs_write", "arguments": WRITE}])
    server.reply("The summary is in summary.md.")


def sent_after(server: FakeOpenAI, n: int) -> list[dict[str, Any]]:
    """The messages request ``n`` added to request ``n - 1``'s."""
    before = len(server.requests[n - 1].json["messages"])
    return server.requests[n].json["messages"][before:]


# --- finish reasons ----------------------------------------------------------------------


def test_a_reply_cut_off_by_the_token_limit_is_no_answer(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply(HALF_A_SENTENCE, finish_reason="length")
    write_then_answer(fake_openai)

    result, events = run_model(tmp_path, fake_openai)

    refused = one(events, ev.ReplyRefused)
    assert (refused.kind, refused.finish_reason, refused.failure_class) == (
        "length",
        "length",
        "model_error",
    )
    assert (refused.in_a_row, refused.limit, refused.step) == (1, 3, 1)
    assert "cut off by the token limit" in refused.reason
    assert "shorter reply" in refused.reason
    # the model saw its own half sentence, then was told to continue or shorten
    assert sent_after(fake_openai, 1) == [
        {"role": "assistant", "content": HALF_A_SENTENCE},
        {"role": "user", "content": refused.reason},
    ]
    assert result.status == "completed"
    assert result.final_answer == "The summary is in summary.md."
    assert one(events, ev.StepFinished, step=1).outcome == "continue"


def test_a_run_that_keeps_getting_cut_off_ends_saying_so(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    for _ in range(2):
        fake_openai.reply(HALF_A_SENTENCE, finish_reason="length")

    result, events = run_model(tmp_path, fake_openai, model={"max_refused_replies": 2})

    assert (result.status, result.failure_class) == ("failed", "model_error")
    assert "2 replies in a row that were no final answer" in result.reason
    assert "cut off by the token limit" in result.reason
    assert [e.in_a_row for e in of_type(events, ev.ReplyRefused)] == [1, 2]
    finished = last(events, ev.RunFinished)
    assert finished.final_answer is None
    assert last(events, ev.StepFinished).outcome == "failed"


def test_content_filter_and_empty_replies_are_counted_in_a_row(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply("", finish_reason="content_filter")
    fake_openai.reply(None, finish_reason="stop")  # no text, no calls
    fake_openai.reply("   \n", finish_reason="stop")

    result, events = run_model(tmp_path, fake_openai)

    kinds = [(e.kind, e.in_a_row) for e in of_type(events, ev.ReplyRefused)]
    assert kinds == [("content_filter", 1), ("empty", 2), ("empty", 3)]
    assert (result.status, result.failure_class) == ("failed", "model_error")
    assert "the last was empty" in result.reason


def test_a_good_reply_resets_the_count(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.reply(HALF_A_SENTENCE, finish_reason="length")
    fake_openai.reply(
        tool_calls=[{"id": "r", "name": "fs_read", "arguments": {"path": "notes.md"}}]
    )
    fake_openai.reply(HALF_A_SENTENCE, finish_reason="length")
    write_then_answer(fake_openai)

    result, events = run_model(tmp_path, fake_openai, model={"max_refused_replies": 2})

    assert result.status == "completed"
    assert [e.in_a_row for e in of_type(events, ev.ReplyRefused)] == [1, 1]


def test_a_refusal_is_no_answer(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.malformed(
        '{"object": "chat.completion", "model": "m", "choices": [{"index": 0, '
        '"finish_reason": "stop", "message": {"role": "assistant", "content": null, '
        '"refusal": "I cannot help with that."}}]}'
    )
    write_then_answer(fake_openai)

    result, events = run_model(tmp_path, fake_openai)

    assert one(events, ev.ModelResponse, step=1).refusal == "I cannot help with that."
    refused = one(events, ev.ReplyRefused)
    assert refused.kind == "refusal"
    assert "I cannot help with that." in refused.reason
    assert result.status == "completed"


# --- tool calls written as text ----------------------------------------------------------

FENCED = (
    'I will read the notes.\n```json\n{"name": "fs_read", "arguments": {"path": "notes.md"}}\n```'
)
HERMES = (
    'Reading the notes.\n<tool_call>\n{"name": "fs_read", "arguments": {"path": "notes.md"}}'
    "\n</tool_call>"
)


@pytest.mark.parametrize(("content", "form"), [(FENCED, "json"), (HERMES, "hermes")])
def test_a_tool_call_written_as_text_is_refused_and_the_model_told(
    tmp_path: Path, fake_openai: FakeOpenAI, content: str, form: str
) -> None:
    fake_openai.reply(content)
    write_then_answer(fake_openai)

    result, events = run_model(tmp_path, fake_openai)

    refused = one(events, ev.ReplyRefused)
    assert refused.kind == "text_tool_call"
    assert refused.detected == {
        "format": form,
        "calls": [{"name": "fs_read", "arguments": '{"path":"notes.md"}'}],
    }
    assert "wrote a tool call as text (fs_read)" in refused.reason
    assert "tools interface" in refused.reason
    assert "fs_write(path: string, content: string)" in refused.reason
    assert sent_after(fake_openai, 1)[-1] == {"role": "user", "content": refused.reason}
    assert of_type(events, ev.ToolCall, tool="fs_read") == []  # nothing ran from the text
    assert result.status == "completed"


def test_a_text_call_and_then_a_text_answer_does_not_complete(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """The model gives up on tools and answers: the success check (written by this run)
    fails, so the run does not end COMPLETED."""
    fake_openai.reply(FENCED)
    fake_openai.reply("Done: the summary is in summary.md.")

    result, events = run_model(tmp_path, fake_openai)

    assert (result.status, result.failure_class) == ("failed", "verification_failed")
    assert one(events, ev.ReplyRefused).kind == "text_tool_call"


def test_with_tool_call_format_hermes_the_hermes_reply_runs_the_tool(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    content = (
        '<tool_call>\n{"name": "fs_write", "arguments": {"path": "summary.md", '
        '"content": "# Summary\\n- release on Friday\\n"}}\n</tool_call>'
    )
    fake_openai.reply(content)
    fake_openai.reply("The summary is in summary.md.")

    result, events = run_model(tmp_path, fake_openai, model={"tool_call_format": "hermes"})

    assert result.status == "completed"
    parsed = one(events, ev.TextToolCalls)
    assert parsed.format == "hermes"
    assert parsed.calls == [
        {
            "id": "text_1_0",
            "name": "fs_write",
            "arguments": '{"content":"# Summary\\n- release on Friday\\n","path":"summary.md"}',
        }
    ]
    assert decided(events, "text_1_0").effect == "allow"
    assert one(events, ev.ToolFinished, call_id="text_1_0").ok
    assert (tmp_path / WORKSPACE / "summary.md").read_text() == "# Summary\n- release on Friday\n"
    assert of_type(events, ev.ReplyRefused) == []
    # the history says which calls the text held, so the tool result has its call
    assistant = fake_openai.requests[1].json["messages"][-2]
    assert assistant["content"] == content
    assert assistant["tool_calls"][0]["id"] == "text_1_0"
    assert fake_openai.requests[1].json["messages"][-1]["tool_call_id"] == "text_1_0"


def test_tool_call_format_json_parses_a_bare_object(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply(
        '{"name": "fs_write", "arguments": {"path": "summary.md", "content": "# Summary\\n"}}'
    )
    fake_openai.reply("The summary is in summary.md.")

    result, events = run_model(tmp_path, fake_openai, model={"tool_call_format": "json"})

    assert result.status == "completed"
    assert one(events, ev.TextToolCalls).format == "json"


def test_a_text_call_in_the_other_format_is_still_refused(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply(FENCED)
    write_then_answer(fake_openai)

    result, events = run_model(tmp_path, fake_openai, model={"tool_call_format": "hermes"})

    assert one(events, ev.ReplyRefused).detected["format"] == "json"  # type: ignore[index]
    assert of_type(events, ev.TextToolCalls) == []
    assert result.status == "completed"


# --- recovery messages -------------------------------------------------------------------


def test_an_invented_tool_name_is_told_the_tools_and_their_arguments(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply(tool_calls=[{"id": "bad", "name": "fs_read notes.md", "arguments": {}}])
    write_then_answer(fake_openai)

    result, events = run_model(tmp_path, fake_openai)

    decision = decided(events, "bad")
    assert (decision.effect, decision.failure_class) == ("deny", "unknown_tool")
    message = told(events, "bad")
    assert message.startswith("[unknown_tool] call not executed: unknown tool 'fs_read notes.md'")
    assert "Did you mean fs_read?" in message
    assert (
        "fs_list(path?: string); fs_read(path: string); fs_write(path: string, content: string)"
        in message
    )
    assert result.status == "completed"


def test_invalid_json_arguments_three_times_in_a_row(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    for n in range(3):
        fake_openai.reply(
            tool_calls=[{"id": f"j{n}", "name": "fs_write", "arguments": '{"path": "summary.md", '}]
        )
    fake_openai.reply("I could not write it.")

    result, events = run_model(tmp_path, fake_openai)

    for n in range(3):
        decision = decided(events, f"j{n}")
        assert (decision.effect, decision.failure_class) == ("deny", "invalid_arguments")
        message = told(events, f"j{n}")
        assert "not a JSON object" in message
        assert "Send the arguments as one JSON object: fs_write(path: string, content: string)" in (
            message
        )
    assert (tmp_path / WORKSPACE / "summary.md").exists() is False
    assert (result.status, result.failure_class) == ("failed", "verification_failed")


def test_a_schema_violation_is_told_the_expected_arguments(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply(
        tool_calls=[{"id": "s", "name": "fs_write", "arguments": {"file": "summary.md"}}]
    )
    write_then_answer(fake_openai)

    result, events = run_model(tmp_path, fake_openai)

    assert decided(events, "s").failure_class == "invalid_arguments"
    message = told(events, "s")
    assert "path: Field required" in message
    assert message.endswith("Expected: fs_write(path: string, content: string)")
    assert result.status == "completed"


# --- endpoints: empty choices, no usage ----------------------------------------------------


def test_an_empty_choice_list_is_retried_and_recorded(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.malformed('{"object": "chat.completion", "model": "m", "choices": []}')
    write_then_answer(fake_openai)

    result, events = run_model(tmp_path, fake_openai)

    failed = one(events, ev.ModelResponse, attempt=1, step=1)
    assert (failed.failure_class, failed.retryable) == ("model_error", True)
    assert "no choices" in (failed.error or "")
    assert result.status == "completed"


def test_empty_choices_on_every_attempt_fail_the_run(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    for _ in range(2):
        fake_openai.malformed('{"object": "chat.completion", "model": "m", "choices": []}')

    result, events = run_model(tmp_path, fake_openai, model={"max_retries": 1})

    assert (result.status, result.failure_class) == ("failed", "model_error")
    assert "after 2 attempts" in result.reason and "no choices" in result.reason
    assert len(of_type(events, ev.ModelResponse)) == 2


def test_a_reply_without_usage_is_estimated_and_budgets_still_hold(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    for _ in range(3):
        fake_openai.reply(
            tool_calls=[{"id": "r", "name": "fs_read", "arguments": {"path": "notes.md"}}],
            usage=None,
        )

    result, events = run_model(tmp_path, fake_openai, budgets={"max_tokens": 400})

    response = of_type(events, ev.ModelResponse)[0]
    assert response.estimated_usage is True
    assert response.usage["prompt_tokens"] > 0 and response.usage["completion_tokens"] > 0
    assert (result.status, result.failure_class) == ("stopped", "budget_exceeded")
    assert one(events, ev.Interrupt).rule == "max_tokens"
    assert "partly estimated: a reply reported no usage" in govrun("show", result.trace_path).flat


# --- keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["x", "k", "none"])
def test_a_short_key_is_refused_at_start_naming_the_variable(
    tmp_path: Path, fake_openai: FakeOpenAI, key: str
) -> None:
    manifest = openai_manifest(fake_openai.base_url, model={"api_key_env": "OPENAI_API_KEY"})
    m = prepare(tmp_path, manifest, env={"OPENAI_API_KEY": key})

    with pytest.raises(GovrunError) as caught:
        run_agent(m, task="t", trace_path=tmp_path / "t.jsonl", env={"OPENAI_API_KEY": key})

    assert "OPENAI_API_KEY" in caught.value.message
    assert "shorter than 8 characters" in caught.value.message
    assert "leave model.api_key_env out" in (caught.value.hint or "")
    assert not (tmp_path / "t.jsonl").exists()  # a refused run leaves no trace
    assert fake_openai.requests == []


def test_a_short_secret_under_secrets_is_refused_too(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    manifest = openai_manifest(fake_openai.base_url, secrets=["GITHUB_TOKEN"])
    m = prepare(tmp_path, manifest)

    with pytest.raises(GovrunError, match="GITHUB_TOKEN"):
        run_agent(m, task="t", trace_path=tmp_path / "t.jsonl", env={"GITHUB_TOKEN": "abc"})


@pytest.mark.parametrize("key", ["x", "k", "none"])
def test_a_keyless_local_endpoint_runs_whatever_the_openai_key_holds(
    tmp_path: Path, fake_openai: FakeOpenAI, key: str
) -> None:
    """api_key_env left out on a local server: a placeholder key, nothing to redact, and
    the user's OPENAI_API_KEY is never sent to it. (Not through ``run_in``, which counts
    every env value as a secret the trace must not hold, and ``x`` is in ordinary text.)"""
    write_then_answer(fake_openai)
    manifest = openai_manifest(fake_openai.base_url, success=[FRESH_SUMMARY])
    m = prepare(tmp_path, manifest, files={"notes.md": "- n\n"})
    trace = tmp_path / "t.jsonl"

    result = run_agent(m, task="t", trace_path=trace, env={"OPENAI_API_KEY": key})

    assert result.status == "completed"
    for request in fake_openai.requests:
        assert request.headers["authorization"] == f"Bearer {PLACEHOLDER_KEY}"
    events = checked_events(trace)  # verifies, complete, every step finished
    assert "api_key_env" not in one(events, ev.RunStarted).manifest["model"]
    # the field names a one-letter key used to break are intact, and so are the values
    check = one(events, ev.Verification, call_id=None)
    assert (check.check, check.evidence["path"]) == ("file_exists", f"{WORKSPACE}/summary.md")
    assert b"[redacted]" not in trace.read_bytes()
    assert_replays(trace)


def test_a_real_key_still_goes_to_a_keyed_endpoint(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    write_then_answer(fake_openai)

    result, _ = run_model(
        tmp_path, fake_openai, model={"api_key_env": "OPENAI_API_KEY"}, env=OPENAI_ENV
    )

    assert result.status == "completed"
    assert (
        fake_openai.last_request.headers["authorization"]
        == f"Bearer {OPENAI_ENV['OPENAI_API_KEY']}"
    )


# --- what is sent: schemas and params ------------------------------------------------------


def _bounds(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [k for k in node if k in ("maxLength", "maxItems", "minLength", "minItems")]
        return found + [b for v in node.values() for b in _bounds(v)]
    if isinstance(node, list):
        return [b for v in node for b in _bounds(v)]
    return []


def test_tool_definitions_sent_carry_no_length_bounds_while_validation_keeps_them(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    long_path = "a" * 5000 + ".md"
    fake_openai.reply(
        tool_calls=[
            {"id": "big", "name": "fs_write", "arguments": {"path": long_path, "content": "x"}}
        ]
    )
    write_then_answer(fake_openai)
    tools = [
        {"name": "fs_read", "uses": "fs.read", "scope": {"roots": [WORKSPACE]}},
        {"name": "fs_write", "uses": "fs.write", "scope": {"roots": [WORKSPACE]}},
        {"name": "sh", "uses": "shell", "scope": {"roots": [WORKSPACE], "commands": {"wc": {}}}},
        {"name": "get", "uses": "http.get", "scope": {"hosts": ["example.com"]}},
    ]

    result, events = run_model(tmp_path, fake_openai, tools=tools)

    sent = fake_openai.requests[0].json["tools"]
    assert [t["function"]["name"] for t in sent] == ["fs_read", "fs_write", "sh", "get"]
    assert _bounds(sent) == []
    assert _bounds(one(events, ev.RunStarted).tools) == []
    decision = decided(events, "big")
    assert (decision.effect, decision.failure_class) == ("deny", "invalid_arguments")
    assert "at most 4096 characters" in decision.reason
    assert result.status == "completed"


def test_a_minimal_tool_schema_keeps_only_the_shape(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    write_then_answer(fake_openai)

    result, _ = run_model(tmp_path, fake_openai, model={"tool_schema": "minimal"})

    assert result.status == "completed"
    write = next(
        t for t in fake_openai.requests[0].json["tools"] if t["function"]["name"] == "fs_write"
    )
    assert write["function"]["parameters"] == {
        "additionalProperties": False,
        "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["path", "content"],
        "type": "object",
    }


SUMMARY_FORMAT = {"name": "summary", "schema": {"type": "object"}, "strict": True}


def test_endpoint_params_are_sent_and_recorded(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    write_then_answer(fake_openai)
    params = {
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "seed": 7,
        "stop": ["</answer>"],
        "response_format": {"type": "json_schema", "json_schema": SUMMARY_FORMAT},
        "extra_body": {"cache_prompt": True, "top_k": 20},
    }

    result, events = run_model(tmp_path, fake_openai, model={"params": params})

    assert result.status == "completed"
    body = fake_openai.requests[0].json
    assert body["tool_choice"] == "auto"
    assert body["parallel_tool_calls"] is False
    assert (body["seed"], body["stop"], body["response_format"]) == (
        7,
        ["</answer>"],
        {"type": "json_schema", "json_schema": SUMMARY_FORMAT},
    )
    assert (body["cache_prompt"], body["top_k"]) == (True, 20)
    assert "extra_body" not in body
    assert one(events, ev.RunStarted).manifest["model"]["params"] == params


def test_a_forced_tool_choice_is_sent_as_the_api_takes_it(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    write_then_answer(fake_openai)
    forced = {"type": "function", "function": {"name": "fs_write"}}

    result, events = run_model(tmp_path, fake_openai, model={"params": {"tool_choice": forced}})

    assert result.status == "completed"
    assert fake_openai.requests[0].json["tool_choice"] == forced
    assert one(events, ev.RunStarted).manifest["model"]["params"]["tool_choice"] == forced


def test_tool_choice_is_not_sent_without_tools(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.reply("plain answer")

    result, _ = run_model(
        tmp_path, fake_openai, tools=[], success=[], model={"params": {"tool_choice": "required"}}
    )

    assert result.status == "completed"
    assert "tool_choice" not in fake_openai.last_request.json


# --- success checks about this run -------------------------------------------------------


def test_a_stale_file_never_completes_a_run(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.reply(
        tool_calls=[{"id": "r", "name": "fs_read", "arguments": {"path": "notes.md"}}]
    )
    fake_openai.reply("The summary is in summary.md.")

    result, events = run_model(
        tmp_path,
        fake_openai,
        files={"notes.md": "- release on Friday\n", "summary.md": "# Summary\nold run\n"},
    )

    assert (result.status, result.failure_class) == ("failed", "verification_failed")
    check = one(events, ev.Verification)
    assert check.evidence["before_run"] == "existed before the run, unchanged"
    assert check.evidence["exists"] is True and check.evidence["fresh"] is True
    assert "existed before the run, unchanged: this run did not write it" in check.detail


def test_a_file_the_run_rewrote_is_fresh_even_with_the_same_bytes(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    write_then_answer(fake_openai)

    result, events = run_model(
        tmp_path,
        fake_openai,
        files={"notes.md": "- n\n", "summary.md": WRITE["content"]},
        success=[
            FRESH_SUMMARY,
            {"check": "file_contains", "path": f"{WORKSPACE}/notes.md", "pattern": "n"},
        ],
    )

    assert result.status == "completed"
    fresh, notes = of_type(events, ev.Verification, call_id=None)
    assert fresh.evidence["before_run"] == "existed before the run, changed during it"
    # without fresh: a stale file passes, and its evidence says it was there already
    assert notes.passed and notes.evidence["before_run"] == "existed before the run, unchanged"
    assert notes.detail.endswith("existed before the run, unchanged")


def test_a_new_file_says_it_did_not_exist(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    write_then_answer(fake_openai)

    result, events = run_model(tmp_path, fake_openai)

    assert result.status == "completed"
    assert one(events, ev.Verification, call_id=None).evidence["before_run"] == (
        "did not exist before the run"
    )


@pytest.mark.parametrize("key", ["x", "k", "none"])
def test_govrun_run_refuses_a_short_key_in_one_paragraph(
    tmp_path: Path, fake_openai: FakeOpenAI, key: str
) -> None:
    manifest = openai_manifest(fake_openai.base_url, model={"api_key_env": "OPENAI_API_KEY"})
    prepare(tmp_path, manifest, env={"OPENAI_API_KEY": key})
    trace = tmp_path / "t.jsonl"

    ran = govrun("run", tmp_path / MANIFEST, "-i", "task", "-o", trace, env={"OPENAI_API_KEY": key})

    assert ran.code == 2
    assert "OPENAI_API_KEY is shorter than 8 characters" in ran.flat
    assert not trace.exists()


# --- reading such runs: show, diff, the timeline -------------------------------------------


def test_views_tell_a_refused_reply_and_parsed_text_calls_from_answers(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply(HALF_A_SENTENCE, finish_reason="length")
    write_then_answer(fake_openai)
    refused, _ = run_model(tmp_path / "a", fake_openai)
    fake_openai.reply(
        '<tool_call>{"name": "fs_write", "arguments": {"path": "summary.md", "content": "# S"}}'
        "</tool_call>"
    )
    fake_openai.reply("The summary is in summary.md.")
    parsed, _ = run_model(tmp_path / "b", fake_openai, model={"tool_call_format": "hermes"})

    first = load_trajectory(refused.trace_path).steps[0]
    assert (first.refused, first.is_final) == ("length", False)
    assert describe_action(first).startswith("refused reply (length) 'The notes say")
    assert [c.tool for c in load_trajectory(parsed.trace_path).steps[0].calls] == ["fs_write"]
    timeline = Timeline(refused.trace_path)
    try:
        row = timeline.row(1)
        assert (row.status, row.action) == ("model_error", f"refused (length): {HALF_A_SENTENCE}")
        drawn = reply_tab(timeline, 1)
        assert "reply_refused" in drawn and "length" in drawn and "1 of 3 in a row" in drawn
    finally:
        timeline.close()
    timeline = Timeline(parsed.trace_path)
    try:
        assert timeline.row(1).action.startswith("fs_write(")
        assert "text_tool_calls" in reply_tab(timeline, 1) and "text_1_0" in reply_tab(timeline, 1)
    finally:
        timeline.close()

    shown = govrun("show", refused.trace_path)
    assert shown.code == 0 and "refused: length×1" in shown.flat
    diff = govrun("diff", refused.trace_path, parsed.trace_path)
    assert diff.code == 1
    assert "refused reply (length)" in diff.flat


def reply_tab(timeline: Timeline, row: int) -> str:
    """The inspector's Reply tab for a row, drawn as plain text."""
    step = StepLoader(timeline).load(row, timeline.seq_range(row)[0])
    console = Console(width=120, file=io.StringIO(), color_system=None)
    with console.capture() as capture:
        for section in build("reply", step, PLAIN, None):
            console.print(section.title)
            if section.body is not None:
                console.print(section.body)
    return capture.get()


def test_validate_refuses_a_short_key_too(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    manifest = openai_manifest(fake_openai.base_url, model={"api_key_env": "OPENAI_API_KEY"})
    prepare(tmp_path, manifest)

    short = govrun("validate", tmp_path / MANIFEST, env={"OPENAI_API_KEY": "none"})
    fine = govrun("validate", tmp_path / MANIFEST, env={"OPENAI_API_KEY": "sk-long-enough"})

    assert short.code == 2 and "OPENAI_API_KEY is shorter than 8 characters" in short.flat
    assert fine.code == 0


def test_calls_of_a_reply_cut_off_by_the_token_limit_are_decided_and_the_model_told(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    cut = '{"path": "summary.md", "content": "# Summary\\n- release on Fri'
    fake_openai.reply(
        tool_calls=[{"id": "cut", "name": "fs_write", "arguments": cut}], finish_reason="length"
    )
    write_then_answer(fake_openai)

    result, events = run_model(tmp_path, fake_openai)

    assert decided(events, "cut").failure_class == "invalid_arguments"
    assert sent_after(fake_openai, 1)[-1] == {"role": "user", "content": CUT_OFF_CALLS}
    assert of_type(events, ev.ReplyRefused) == []  # the calls were governed, not refused
    assert result.status == "completed"


def test_a_fork_that_goes_live_refuses_a_short_key(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    write_then_answer(fake_openai)
    result, _ = run_model(
        tmp_path, fake_openai, model={"api_key_env": "OPENAI_API_KEY"}, env=OPENAI_ENV
    )

    fork = govrun(
        "replay",
        result.trace_path,
        "--live-from",
        "2",
        "-o",
        tmp_path / "fork.jsonl",
        env={"OPENAI_API_KEY": "k"},
    )

    assert fork.code == 2 and "OPENAI_API_KEY is shorter than 8 characters" in fork.flat
    assert not (tmp_path / "fork.jsonl").exists()
