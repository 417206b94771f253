"""The live OpenAI adapter against a real HTTP server on 127.0.0.1, with the real client."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest

from govrun.runtime.errors import GovrunError
from govrun.runtime.manifest.schema import ModelConfig, Pricing
from govrun.runtime.models import build_model, cost_usd
from govrun.runtime.models.estimate import estimate_prompt_tokens
from govrun.runtime.models.openai_model import PLACEHOLDER_KEY, OpenAIModel
from govrun.runtime.ports import Model, ModelCallError, ModelReply, Usage
from tests.support.fake_openai import NO_RESPONSE_LEFT, FakeOpenAI, fake_openai_fixture  # noqa: F401

HERE = Path(__file__).parent
KEY = "sk-test-0123456789abcdefSECRET"
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "write_file",
            "description": "Write a file.",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]


def model_for(
    server: FakeOpenAI, *, timeout_s: float = 5.0, params: dict[str, Any] | None = None
) -> OpenAIModel:
    return OpenAIModel(
        name="gpt-fake",
        base_url=server.base_url,
        api_key=KEY,
        params=params or {},
        timeout_s=timeout_s,
    )


def call_error(model: OpenAIModel, tools: list[dict[str, Any]] | None = None) -> ModelCallError:
    with pytest.raises(ModelCallError) as info:
        model.complete(MESSAGES, tools or [])
    assert KEY not in info.value.message
    assert KEY not in str(info.value)
    return info.value


# --- replies -----------------------------------------------------------------------------


def test_reply_with_content(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply(
        "Hello!", usage={"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    )

    reply = model_for(fake_openai).complete(MESSAGES, [])

    assert reply == ModelReply(
        model="gpt-fake",
        content="Hello!",
        tool_calls=[],
        finish_reason="stop",
        usage=Usage(prompt_tokens=12, completion_tokens=3, total_tokens=15),
    )


def test_model_id_is_the_one_that_answered(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply("hi", model="gpt-fake-2025-01-01")

    assert model_for(fake_openai).complete(MESSAGES, []).model == "gpt-fake-2025-01-01"


def test_parallel_tool_calls_keep_raw_arguments_and_ids(fake_openai: FakeOpenAI) -> None:
    first = '{"path":"a.txt",   "content": "x"}'  # odd spacing must survive untouched
    second = '{"path": "b.txt"}'
    fake_openai.reply(
        tool_calls=[
            {"name": "write_file", "arguments": first, "id": "call_A"},
            {"name": "read_file", "arguments": second, "id": "call_B"},
        ]
    )

    reply = model_for(fake_openai).complete(MESSAGES, TOOLS)

    assert reply.content is None
    assert reply.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("call_A", "write_file", first),
        ("call_B", "read_file", second),
    ]


def test_malformed_tool_call_json_passes_through_raw(fake_openai: FakeOpenAI) -> None:
    broken = '{"path": "a.txt", "content": '
    fake_openai.reply(tool_calls=[{"name": "write_file", "arguments": broken}])

    reply = model_for(fake_openai).complete(MESSAGES, TOOLS)

    assert reply.tool_calls[0].arguments == broken


def test_missing_usage_is_estimated_and_says_so(fake_openai: FakeOpenAI) -> None:
    """Some local servers send no usage: counted as zero, token budgets would never trip."""
    fake_openai.reply("hi", usage=None)

    reply = model_for(fake_openai).complete(MESSAGES, [])

    prompt = estimate_prompt_tokens(MESSAGES, [])
    assert reply.usage == Usage(prompt_tokens=prompt, completion_tokens=1, total_tokens=prompt + 1)
    assert reply.estimated_usage


def test_an_empty_choice_list_is_a_retryable_model_error(fake_openai: FakeOpenAI) -> None:
    fake_openai.malformed('{"object": "chat.completion", "model": "m", "choices": []}')

    error = call_error(model_for(fake_openai))

    assert (error.retryable, error.failure_class) == (True, "model_error")
    assert "no choices" in error.message


def test_missing_tool_call_id_gets_a_stable_one(fake_openai: FakeOpenAI) -> None:
    body = (
        '{"model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": '
        '{"role": "assistant", "content": null, "tool_calls": [{"type": "function", '
        '"function": {"name": "write_file", "arguments": "{}"}}]}}]}'
    )
    fake_openai.malformed(body)

    assert model_for(fake_openai).complete(MESSAGES, TOOLS).tool_calls[0].id == "call_0"


# --- requests ------------------------------------------------------------------------------


def test_request_carries_messages_tools_params_and_model(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply("ok")
    params = {"temperature": 0.2, "max_tokens": 64, "seed": 7, "parallel_tool_calls": True}

    model_for(fake_openai, params=params).complete(MESSAGES, TOOLS)

    request = fake_openai.last_request
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.json == {"model": "gpt-fake", "messages": MESSAGES, "tools": TOOLS, **params}


def test_without_tools_no_tools_or_parallel_flag_are_sent(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply("ok")

    model_for(fake_openai, params={"parallel_tool_calls": False}).complete(MESSAGES, [])

    assert "tools" not in fake_openai.last_request.json
    assert "parallel_tool_calls" not in fake_openai.last_request.json


def test_params_the_client_does_not_know_are_sent_in_the_body(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply("ok")

    model_for(fake_openai, params={"top_k": 40}).complete(MESSAGES, [])

    assert fake_openai.last_request.json["top_k"] == 40


def test_reserved_params_are_refused() -> None:
    with pytest.raises(GovrunError, match="stream"):
        OpenAIModel(
            name="m",
            base_url="http://127.0.0.1:9/v1",
            api_key=None,
            params={"stream": True},
            timeout_s=1,
        )


def test_exactly_one_attempt_per_call(fake_openai: FakeOpenAI) -> None:
    fake_openai.error(500).reply("would succeed on a retry")

    assert call_error(model_for(fake_openai)).retryable
    assert len(fake_openai.requests) == 1
    assert fake_openai.pending == 1


# --- keys ----------------------------------------------------------------------------------


def test_key_from_env_goes_in_authorization_and_never_in_errors(fake_openai: FakeOpenAI) -> None:
    config = ModelConfig(
        provider="openai", name="gpt-fake", base_url=fake_openai.base_url, api_key_env="FAKE_KEY"
    )
    model = build_model(config, base_dir=HERE, env={"FAKE_KEY": KEY})
    fake_openai.reply("ok")
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}.", "code": "invalid_api_key"}}
    fake_openai.error(401, body=echo)
    fake_openai.error(400, body={"error": {"message": f"bad request from {KEY}"}})

    model.complete(MESSAGES, [])
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {KEY}"
    unauthorized, bad_request = call_error(model), call_error(model)

    assert "FAKE_KEY" in unauthorized.message
    assert "***" in bad_request.message
    assert KEY not in repr(model)


def test_local_server_without_key_gets_a_placeholder(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply("ok")
    model = OpenAIModel(
        name="llama3", base_url=fake_openai.base_url, api_key=None, params={}, timeout_s=5
    )

    model.complete(MESSAGES, [])

    assert fake_openai.last_request.headers["authorization"] == f"Bearer {PLACEHOLDER_KEY}"


@pytest.mark.parametrize("base_url", [None, "https://api.openai.com/v1"])
def test_official_api_without_key_names_the_env_var(base_url: str | None) -> None:
    config = ModelConfig(
        provider="openai", name="gpt-4o-mini", base_url=base_url, api_key_env="MY_OPENAI_KEY"
    )

    with pytest.raises(GovrunError, match="MY_OPENAI_KEY"):
        build_model(config, base_dir=HERE, env={})


# --- transient errors: retryable ---------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"retry-after": "1.5"}, 1.5), ({"retry-after-ms": "250"}, 0.25), ({}, None)],
)
def test_429_is_retryable_with_retry_after(
    fake_openai: FakeOpenAI, headers: dict[str, str], expected: float | None
) -> None:
    fake_openai.error(429, headers=headers)

    error = call_error(model_for(fake_openai))

    assert (error.retryable, error.status, error.retry_after_s) == (True, 429, expected)
    assert error.failure_class == "model_error"
    assert "rate limited" in error.message


def test_429_insufficient_quota_is_not_retryable(fake_openai: FakeOpenAI) -> None:
    body = {"error": {"message": "You exceeded your quota.", "code": "insufficient_quota"}}
    fake_openai.error(429, body=body)

    error = call_error(model_for(fake_openai))

    assert not error.retryable
    assert "billing" in error.message


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retryable(fake_openai: FakeOpenAI, status: int) -> None:
    fake_openai.error(status, body="upstream exploded")

    error = call_error(model_for(fake_openai))

    assert (error.retryable, error.status, error.failure_class) == (True, status, "model_error")
    assert "upstream exploded" in error.message


def test_hang_longer_than_timeout_is_a_retryable_timeout(fake_openai: FakeOpenAI) -> None:
    fake_openai.hang(10)
    model = model_for(fake_openai, timeout_s=0.3)

    started = time.monotonic()
    error = call_error(model)
    elapsed = time.monotonic() - started

    assert (error.retryable, error.failure_class) == (True, "timeout")
    assert "0.3s" in error.message
    assert elapsed < 0.6


def test_hang_shorter_than_timeout_still_answers(fake_openai: FakeOpenAI) -> None:
    fake_openai.hang(0.05, content="slow but fine")

    assert model_for(fake_openai, timeout_s=2).complete(MESSAGES, []).content == "slow but fine"


def test_unreachable_server_is_retryable() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = OpenAIModel(
        name="m", base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, params={}, timeout_s=2
    )

    error = call_error(model)

    assert (error.retryable, error.failure_class) == (True, "model_error")
    assert "cannot reach" in error.message


def test_empty_script_answers_a_clear_500(fake_openai: FakeOpenAI) -> None:
    error = call_error(model_for(fake_openai))

    assert error.status == 500
    assert NO_RESPONSE_LEFT in error.message


# --- our mistakes: not retryable, say what to do -------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "check the env var named by model.api_key_env"),
        (403, "permission denied"),
        (404, "model 'gpt-fake' not found at http://127.0.0.1:"),
        (400, "check model.params and the tool schemas"),
        (422, "check model.params and the tool schemas"),
    ],
)
def test_client_errors_are_not_retryable_and_helpful(
    fake_openai: FakeOpenAI, status: int, expected: str
) -> None:
    fake_openai.error(status)

    error = call_error(model_for(fake_openai))

    assert (error.retryable, error.status, error.failure_class) == (False, status, "model_error")
    assert expected in error.message


@pytest.mark.parametrize(
    ("body", "content_type", "why"),
    [
        ("{}", "application/json", "no choices"),
        ('{"choices": [{"index": 0}]}', "application/json", "no message"),
        ('{"choices": [{"message": {"content": 5}}]}', "application/json", "content"),
        ("this is not json", "application/json", "not valid JSON"),
        ("<html>gateway</html>", "text/html", "not a JSON chat.completion"),
    ],
)
def test_malformed_body_is_a_non_retryable_model_error(
    fake_openai: FakeOpenAI, body: str, content_type: str, why: str
) -> None:
    fake_openai.malformed(body, content_type=content_type)

    error = call_error(model_for(fake_openai))

    assert (error.retryable, error.failure_class) == (False, "model_error")
    assert "malformed reply" in error.message
    assert why in error.message


# --- building and pricing ------------------------------------------------------------------


def test_build_model_from_the_manifest_section(fake_openai: FakeOpenAI) -> None:
    config = ModelConfig.model_validate(
        {
            "provider": "openai",
            "name": "gpt-fake",
            "base_url": fake_openai.base_url,
            "params": {"temperature": 0, "stop": "END"},
            "timeout_s": 3,
        }
    )
    fake_openai.reply("ok")

    model = build_model(config, base_dir=HERE, env={"OPENAI_API_KEY": KEY})
    model.complete(MESSAGES, [])

    assert isinstance(model, Model)
    sent = fake_openai.last_request.json
    assert (sent["temperature"], sent["stop"]) == (0, ["END"])
    assert "top_p" not in sent  # unset params are not sent


@dataclass(frozen=True)
class Settings:
    provider: str
    name: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    script: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 5
    max_retries: int = 0
    pricing: Pricing | None = None
    tool_schema: str = "full"


def test_unknown_provider_lists_the_available_ones() -> None:
    with pytest.raises(GovrunError) as info:
        build_model(Settings(provider="opneai"), base_dir=HERE, env={})

    assert "Did you mean 'openai'?" in info.value.message
    assert "openai, scripted" in info.value.message


def test_cost_from_per_million_token_prices() -> None:
    usage = Usage(prompt_tokens=2_000, completion_tokens=500, total_tokens=2_500)
    pricing = Pricing(input_per_mtok=0.15, output_per_mtok=0.60, cached_input_per_mtok=0.075)

    assert cost_usd(usage, None) == 0.0
    assert cost_usd(usage, pricing) == pytest.approx(2_000 * 0.15e-6 + 500 * 0.60e-6)
    assert cost_usd(usage, pricing, cached_prompt_tokens=1_000) == pytest.approx(
        1_000 * 0.15e-6 + 1_000 * 0.075e-6 + 500 * 0.60e-6
    )


def test_cost_of_a_live_reply(fake_openai: FakeOpenAI) -> None:
    fake_openai.reply(
        "ok", usage={"prompt_tokens": 1_000_000, "completion_tokens": 0, "total_tokens": 1_000_000}
    )
    reply = model_for(fake_openai).complete(MESSAGES, [])

    assert cost_usd(reply.usage, Pricing(input_per_mtok=2.5, output_per_mtok=10)) == 2.5


# --- the fake server itself -----------------------------------------------------------------


def test_fake_server_lists_models_to_the_real_client(fake_openai: FakeOpenAI) -> None:
    client = openai.OpenAI(base_url=fake_openai.base_url, api_key=KEY, max_retries=0)

    assert [m.id for m in client.models.list()] == ["gpt-fake"]


def test_closing_the_fake_server_does_not_wait_for_a_hang() -> None:
    server = FakeOpenAI().start()
    server.hang(30)
    model = model_for(server, timeout_s=0.2)
    with pytest.raises(ModelCallError):
        model.complete(MESSAGES, [])

    started = time.monotonic()
    server.close()

    assert time.monotonic() - started < 1
