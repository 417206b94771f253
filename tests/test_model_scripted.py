"""The offline scripted model: loading, validation messages, determinism, error turns."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from govrun.runtime.errors import GovrunError
from govrun.runtime.manifest.schema import ModelConfig
from govrun.runtime.models import build_model
from govrun.runtime.models.scripted import ScriptedModel, estimate_prompt_tokens
from govrun.runtime.ports import Model, ModelCallError, Usage

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "fixtures" / "scripts"
MESSAGES = [{"role": "user", "content": "write hello.txt"}]
TOOLS = [{"type": "function", "function": {"name": "write_file", "parameters": {}}}]


def write(tmp_path: Path, text: str, name: str = "script.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(GovrunError) as info:
        ScriptedModel.from_file(path)
    message = str(info.value)
    assert str(path) in message
    return message


# --- replies -------------------------------------------------------------------------------


def test_file_turns_answer_in_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
- content: I'll write it.
  tool_calls:
    - {name: write_file, arguments: {path: a.txt, content: hi}}
- content: done
""",
    )
    model = ScriptedModel.from_file(path, name="demo")

    first = model.complete(MESSAGES, TOOLS)
    second = model.complete(MESSAGES, TOOLS)

    assert isinstance(model, Model)
    assert (first.model, first.content, first.finish_reason) == (
        "demo",
        "I'll write it.",
        "tool_calls",
    )
    assert first.tool_calls[0].name == "write_file"
    assert first.tool_calls[0].arguments == '{"content": "hi", "path": "a.txt"}'  # sorted keys
    assert (second.content, second.tool_calls, second.finish_reason) == ("done", [], "stop")


def test_raw_string_arguments_pass_through_unparsed() -> None:
    broken = '{"path": "a.txt", "content": '
    model = ScriptedModel([{"tool_calls": [{"name": "write_file", "arguments": broken}]}])

    assert model.complete(MESSAGES, TOOLS).tool_calls[0].arguments == broken


def test_call_ids_are_deterministic_unless_given() -> None:
    turns = [
        {"content": "x"},
        {"tool_calls": [{"name": "a"}, {"name": "b", "id": "mine"}, {"name": "c"}]},
    ]
    model = ScriptedModel(turns)
    model.complete(MESSAGES, [])

    ids = [call.id for call in model.complete(MESSAGES, []).tool_calls]

    assert ids == ["call_1_0", "mine", "call_1_2"]


def test_finish_reason_can_be_scripted() -> None:
    model = ScriptedModel([{"content": "cut o", "finish_reason": "length"}])

    assert model.complete(MESSAGES, []).finish_reason == "length"


# --- token estimates -------------------------------------------------------------------------


def test_tokens_are_estimated_deterministically() -> None:
    turn = {"content": "hello there", "tool_calls": [{"name": "w", "arguments": '{"a": 1}'}]}
    replies = [ScriptedModel([turn]).complete(MESSAGES, TOOLS) for _ in range(2)]

    prompt = orjson.dumps({"messages": MESSAGES, "tools": TOOLS}, option=orjson.OPT_SORT_KEYS)
    expected = Usage(
        prompt_tokens=math.ceil(len(prompt) / 4),
        completion_tokens=math.ceil(len('hello there{"a": 1}') / 4),
        total_tokens=math.ceil(len(prompt) / 4) + math.ceil(len('hello there{"a": 1}') / 4),
    )
    assert replies[0].usage == replies[1].usage == expected
    assert estimate_prompt_tokens(MESSAGES, TOOLS) == expected.prompt_tokens


def test_prompt_estimate_ignores_dict_order() -> None:
    reordered = [{"content": "write hello.txt", "role": "user"}]

    assert estimate_prompt_tokens(reordered, []) == estimate_prompt_tokens(MESSAGES, [])


def test_prompt_estimate_grows_with_the_prompt() -> None:
    model = ScriptedModel([{"content": "a"}, {"content": "a"}])
    longer = [*MESSAGES, {"role": "assistant", "content": "x" * 400}]

    short, long = model.complete(MESSAGES, []), model.complete(longer, [])

    assert long.usage.prompt_tokens > short.usage.prompt_tokens + 100


def test_scripted_usage_wins_and_fills_the_rest() -> None:
    model = ScriptedModel(
        [
            {"content": "hi", "usage": {"prompt_tokens": 100, "completion_tokens": 5}},
            {"content": "12345678", "usage": {"completion_tokens": 9}},
        ]
    )

    explicit, partial = model.complete(MESSAGES, []), model.complete(MESSAGES, [])

    assert explicit.usage == Usage(prompt_tokens=100, completion_tokens=5, total_tokens=105)
    prompt = estimate_prompt_tokens(MESSAGES, [])
    assert partial.usage == Usage(
        prompt_tokens=prompt, completion_tokens=9, total_tokens=prompt + 9
    )


# --- exhaustion and error turns --------------------------------------------------------------


def test_exhausted_script_is_a_non_retryable_error() -> None:
    model = ScriptedModel([{"content": "one"}, {"content": "two"}])
    model.complete(MESSAGES, [])
    model.complete(MESSAGES, [])
    assert model.remaining == 0

    with pytest.raises(ModelCallError) as info:
        model.complete(MESSAGES, [])

    assert not info.value.retryable
    assert info.value.failure_class == "model_error"
    assert info.value.message == (
        "scripted model: script exhausted after 2 turns; the agent asked for more"
    )


def test_reset_starts_over() -> None:
    model = ScriptedModel([{"content": "one"}])
    model.complete(MESSAGES, [])
    model.reset()

    assert model.complete(MESSAGES, []).content == "one"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            {"status": 429, "message": "rate limited", "retry_after_s": 0.01},
            ("rate limited", True, "model_error", 429, 0.01),
        ),
        ({"status": 500}, ("scripted error: HTTP 500", True, "model_error", 500, None)),
        ({"status": 400}, ("scripted error: HTTP 400", False, "model_error", 400, None)),
        (
            {"status": 503, "retryable": False},
            ("scripted error: HTTP 503", False, "model_error", 503, None),
        ),
        ({"timeout": True}, ("scripted timeout: no response", True, "timeout", None, None)),
    ],
)
def test_error_turns_raise_the_matching_call_error(
    error: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    model = ScriptedModel([{"error": error}, {"content": "recovered"}])

    with pytest.raises(ModelCallError) as info:
        model.complete(MESSAGES, [])

    e = info.value
    assert (e.message, e.retryable, e.failure_class, e.status, e.retry_after_s) == expected
    assert model.complete(MESSAGES, []).content == "recovered"  # an error uses up its turn


# --- validation -----------------------------------------------------------------------------


def test_problems_name_file_line_and_turn(tmp_path: Path) -> None:
    message = load_error(
        tmp_path,
        """\
- content: fine
- tool_calls:
    - {arguments: {a: 1}}
- error: {status: 429, content: nope}
""",
    )

    assert "(2 problems)" in message
    assert ":3:7 turns[1].tool_calls[0].name: required key 'name' is missing" in message
    assert ":4:24 turns[2].error.content: unknown key 'content'" in message


def test_unknown_turn_key_suggests_the_right_one(tmp_path: Path) -> None:
    message = load_error(tmp_path, "- contnet: hi\n")

    assert ":1:3 turns[0].contnet: unknown key 'contnet'; did you mean 'content'?" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- {}\n", "turns[0]: expected `content`, `tool_calls` or `error`"),
        ("- {content: hi, error: {status: 500}}\n", "cannot also have content"),
        ("- error: {message: x}\n", "exactly one of `status: <code>` or `timeout: true`"),
        ("- error: {status: 200000}\n", "turns[0].error.status"),
        ("- tool_calls: [{name: w, arguments: [1, 2]}]\n", "expected a mapping (sent as JSON)"),
        ("- just a string\n", "turns[0]: expected a mapping; got 'just a string'"),
        ("- content: 5\n", "turns[0].content: Input should be a valid string; got 5"),
    ],
)
def test_invalid_turns_are_explained(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in load_error(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "script.yaml: the model script is empty"),
        ("# only a comment\n", "expected a YAML list of at least one turn; got nothing"),
        ("[]\n", "expected a YAML list of at least one turn; got a list"),
        ("content: hi\n", "expected a YAML list of at least one turn; got a mapping"),
        ("- content: [unclosed\n", "script.yaml:2:1: YAML syntax error: "),
    ],
)
def test_bad_files_are_explained(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in load_error(tmp_path, text)


def test_missing_file_is_a_govrun_error(tmp_path: Path) -> None:
    with pytest.raises(GovrunError, match=r"nowhere\.yaml: no such model script"):
        ScriptedModel.from_file(tmp_path / "nowhere.yaml")


def test_direct_turns_are_validated_too() -> None:
    with pytest.raises(GovrunError, match=r"<turns> turns\[1\]\.tool_calls\[0\]\.name"):
        ScriptedModel([{"content": "ok"}, {"tool_calls": [{"name": ""}]}])


# --- fixtures, building, speed -------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_fixture_script_loads(path: Path) -> None:
    assert ScriptedModel.from_file(path).remaining > 0


def test_flaky_fixture_demonstrates_retries_offline() -> None:
    model = ScriptedModel.from_file(SCRIPTS / "flaky_then_answer.yaml")
    classes = []
    for _ in range(3):
        with pytest.raises(ModelCallError) as info:
            model.complete(MESSAGES, [])
        assert info.value.retryable
        classes.append(info.value.failure_class)

    assert classes == ["model_error", "model_error", "timeout"]
    assert model.complete(MESSAGES, []).content == "Answered on the fourth attempt."


def test_build_model_resolves_the_script_against_base_dir(tmp_path: Path) -> None:
    write(tmp_path, "- content: from the manifest folder\n", name="turns.yaml")
    config = ModelConfig.model_validate(
        {"provider": "scripted", "script": "turns.yaml"}, context={"base_dir": tmp_path}
    )

    model = build_model(config, base_dir=tmp_path, env={})

    assert model.name == "scripted"
    assert model.complete(MESSAGES, []).content == "from the manifest folder"


def test_a_thousand_turns_stay_cheap() -> None:
    turns = [
        {"tool_calls": [{"name": "write_file", "arguments": {"path": f"{i}.txt", "content": "x"}}]}
        for i in range(1_000)
    ]
    model = ScriptedModel(turns)
    history = list(MESSAGES)

    started = time.perf_counter()
    for _ in range(1_000):
        reply = model.complete(history, TOOLS)
        call = reply.tool_calls[0]
        history.append({"role": "assistant", "tool_calls": [{"id": call.id}]})
        history.append({"role": "tool", "tool_call_id": call.id, "content": "ok"})

    assert json.loads(reply.tool_calls[0].arguments)["path"] == "999.txt"
    assert time.perf_counter() - started < 2.0


def test_the_readme_example_script_runs(tmp_path: Path) -> None:
    """The README's "The scripted model" example, as written, drives a real run: its calls
    are decided (the raw, cut-off arguments denied), its errors retried, its answer final."""
    import yaml

    from govrun.runtime.trace import events as ev
    from tests.support.agents import WORKSPACE, run_in, scripted_manifest

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## The scripted model", 1)[1]
    script = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    tools = [
        {"name": name, "uses": uses, "scope": {"roots": [WORKSPACE]}}
        for name, uses in (
            ("list_files", "fs.list"),
            ("read_file", "fs.read"),
            ("write_file", "fs.write"),
        )
    ]
    result, events = run_in(
        tmp_path, scripted_manifest(tools=tools), script=script, files={"notes.md": "n\n"}
    )
    assert (result.status, result.final_answer) == ("completed", script[-1]["content"])
    failed = [e.failure_class for e in events if isinstance(e, ev.ModelResponse) and e.error]
    assert failed == ["model_error", "timeout"]
    proposed = {e.call_id: e.tool for e in events if isinstance(e, ev.ToolCall)}
    assert proposed == {
        "call_0_0": "list_files",
        "call_0_1": "write_file",
        "my-call-1": "read_file",
    }
    denied = [e for e in events if isinstance(e, ev.ToolCall) and e.decision.effect == "deny"]
    assert [(c.tool, c.decision.failure_class) for c in denied] == [
        ("write_file", "invalid_arguments")
    ]
