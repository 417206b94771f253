"""The live model adapter: any OpenAI-compatible chat completions server.

One ``complete()`` is exactly one HTTP attempt (the client's own retries are off): the loop
retries, so every attempt is recorded and replay reproduces it. ``timeout_s`` bounds the whole
attempt, however slowly the bytes arrive (a :class:`ConnectionGuard` cuts the connection at the
deadline). Replies are mapped without post-processing (tool-call arguments stay the raw string
the server sent), and every failure becomes a :class:`ModelCallError` that says whether
retrying can help.
"""

from __future__ import annotations

import inspect
import time
import weakref
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlparse

import openai
from pydantic import ValidationError

from govrun.runtime.errors import GovrunError
from govrun.runtime.models.estimate import estimate_prompt_tokens, tokens
from govrun.runtime.ports import Model, ModelCallError, ModelReply, ToolCallRequest, Usage
from govrun.runtime.tools.deadline import ConnectionGuard, Exchange
from govrun.runtime.tools.definitions import minimal_definitions

OPENAI_BASE_URL = "https://api.openai.com/v1"
PLACEHOLDER_KEY = "not-needed"
"""Sent to local servers (Ollama, llama.cpp, vLLM) that ignore the key but whose client needs
one."""

RESERVED_PARAMS = frozenset({"model", "messages", "tools", "stream"})
"""Request fields the adapter owns; ``stream`` would change the reply shape."""

RETRYABLE_STATUSES = frozenset({408, 409})
"""Besides 429 (unless the quota is used up) and 5xx: statuses the openai client would retry."""

_DETAIL_LIMIT = 300

ClientFactory = Callable[..., Any]
"""Called with ``base_url, api_key, timeout, max_retries, http_client``; returns an
``openai.OpenAI``-like client that sends through ``http_client`` (the deadline needs it)."""


class OpenAIModel(Model):
    """Chat completions over HTTP via the ``openai`` client, one attempt per call."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str | None,
        api_key: str | None,
        params: Mapping[str, Any],
        timeout_s: float,
        client_factory: ClientFactory | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        tool_schema: str = "full",
    ) -> None:
        self.name = name
        self._minimal = tool_schema == "minimal"
        # An explicit default URL: otherwise the client would read OPENAI_BASE_URL itself.
        self.base_url = base_url or OPENAI_BASE_URL
        self.timeout_s = timeout_s
        self._api_key_env = api_key_env
        self._secret = api_key or None
        key = _resolve_key(api_key, self.base_url, api_key_env)
        self._guard = ConnectionGuard()
        http_client = openai.DefaultHttpxClient(event_hooks=self._guard.event_hooks)
        weakref.finalize(self, http_client.close)  # as the SDK closes the client it makes
        factory = client_factory or openai.OpenAI
        self._client = factory(
            base_url=self.base_url,
            api_key=key,
            timeout=timeout_s,  # per phase: the backstop while a connect has no socket yet
            max_retries=0,
            # The SDK's defaults (limits, redirects, proxies from the environment) + the guard.
            http_client=http_client,
        )
        self._params, self._extra_body = _split_params(params, self._client.chat.completions.create)

    def __repr__(self) -> str:
        return f"OpenAIModel(name={self.name!r}, base_url={self.base_url!r})"

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
        """One attempt, done within ``timeout_s``: the reply, or a :class:`ModelCallError`."""
        with self._guard.deadline(self.timeout_s) as exchange:
            try:
                completion = self._client.chat.completions.create(**self._request(messages, tools))
            except openai.APIError as exc:
                raise self._call_error(exc, exchange) from exc
            except ValueError as exc:  # a JSON content type with a body that is not JSON
                raise self._malformed("the body is not valid JSON") from exc
        return self._reply(completion, messages, tools)

    # --- request -------------------------------------------------------------------------

    def _request(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> dict[str, Any]:
        request: dict[str, Any] = {**self._params, "model": self.name, "messages": messages}
        if tools:
            request["tools"] = minimal_definitions(tools) if self._minimal else tools
        else:
            # OpenAI rejects parallel_tool_calls and tool_choice without tools (400).
            request.pop("parallel_tool_calls", None)
            request.pop("tool_choice", None)
        if self._extra_body:
            request["extra_body"] = self._extra_body
        return request

    # --- reply ---------------------------------------------------------------------------

    def _reply(
        self, completion: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> ModelReply:
        # The client builds replies without validation: missing fields arrive as None.
        if isinstance(completion, str):
            raise self._malformed("the body is not a JSON chat.completion")
        try:
            if completion.choices == []:  # servers do this under load or after a filter
                raise self._error(
                    f"the model server at {self.base_url} answered with no choices (an empty "
                    "reply)",
                    retryable=True,
                )
            reply = _to_reply(completion, self.name)
        except _Unmappable as exc:
            raise self._malformed(str(exc)) from exc
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise self._malformed(f"{where}: {error['msg']}") from exc
        except (AttributeError, TypeError, ValueError) as exc:
            raise self._malformed(f"unexpected structure ({type(exc).__name__})") from exc
        if completion.usage is not None:
            return reply
        # No usage (some local servers): estimated, so token budgets still hold.
        prompt = estimate_prompt_tokens(messages, tools)
        text = (reply.content or "") + "".join(c.arguments for c in reply.tool_calls)
        done = tokens(len(text.encode("utf-8", "surrogatepass")))
        usage = Usage(prompt_tokens=prompt, completion_tokens=done, total_tokens=prompt + done)
        return reply.model_copy(update={"usage": usage, "estimated_usage": True})

    # --- errors --------------------------------------------------------------------------

    def _call_error(self, exc: openai.APIError, exchange: Exchange) -> ModelCallError:
        # A cut connection surfaces as a connection error; the guard knows it was the deadline.
        if isinstance(exc, openai.APITimeoutError) or (
            exchange.expired and isinstance(exc, openai.APIConnectionError)
        ):
            return self._error(
                f"no complete reply from {self.base_url} within {self.timeout_s:g}s "
                f"({exchange.progress()})",
                retryable=True,
                failure_class="timeout",
            )
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return self._error(
                f"cannot reach the model server at {self.base_url} ({cause}); is it running?",
                retryable=True,
            )
        if isinstance(exc, openai.APIResponseValidationError):
            return self._malformed("it does not match the chat.completion schema")
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc)
        return self._error(f"model call failed: {exc}", retryable=False)

    def _status_error(self, exc: openai.APIStatusError) -> ModelCallError:
        status = exc.status_code
        detail = _server_detail(exc)
        if status == 429 and _error_code(exc) != "insufficient_quota":
            retry_after = _retry_after_s(exc.response.headers)
            return self._error(
                f"rate limited by {self.base_url} (429): {detail}",
                retryable=True,
                status=status,
                retry_after_s=retry_after,
            )
        if status >= 500 or status in RETRYABLE_STATUSES:
            return self._error(
                f"model server error ({status}) at {self.base_url}: {detail}",
                retryable=True,
                status=status,
            )
        message = self._client_error_message(status, detail)
        return self._error(message, retryable=False, status=status)

    def _client_error_message(self, status: int, detail: str) -> str:
        """What went wrong on our side, and what to change."""
        env = f" ({self._api_key_env})" if self._api_key_env else ""
        if status == 401:
            return (
                f"the model server at {self.base_url} rejected the API key (401); "
                f"check the env var named by model.api_key_env{env}"
            )
        if status == 403:
            return (
                f"permission denied (403) for model '{self.name}' at {self.base_url}: {detail}; "
                f"check that the key in model.api_key_env{env} may use this model"
            )
        if status == 404:
            return (
                f"model '{self.name}' not found at {self.base_url} (404): {detail}; check "
                "model.name, and that model.base_url is the API root (often ending in /v1)"
            )
        if status == 429:
            return (
                f"quota exhausted at {self.base_url} (429 insufficient_quota): {detail}; "
                "check the account's plan and billing"
            )
        if status in (400, 422):
            return (
                f"the model server refused the request ({status}): {detail}; "
                "check model.params and the tool schemas"
            )
        return f"the model server answered HTTP {status}: {detail}"

    def _malformed(self, why: str) -> ModelCallError:
        return self._error(
            f"malformed reply from {self.base_url}: {why}; is it an OpenAI-compatible server?",
            retryable=False,
        )

    def _error(self, message: str, **kwargs: Any) -> ModelCallError:
        """Every error message passes here, so the API key can never leak through one."""
        if self._secret:
            message = message.replace(self._secret, "***")
        return ModelCallError(message, **kwargs)


# --- helpers -------------------------------------------------------------------------------


def is_official_openai(base_url: str) -> bool:
    return urlparse(base_url).hostname == "api.openai.com"


def _resolve_key(api_key: str | None, base_url: str, api_key_env: str | None) -> str:
    if api_key:
        return api_key
    if not is_official_openai(base_url):
        return PLACEHOLDER_KEY
    env = api_key_env or "OPENAI_API_KEY"
    raise GovrunError(
        f"no API key for {base_url}: the environment variable {env} is not set",
        hint=f"Set it (export {env}=...), or point model.base_url at a local "
        "OpenAI-compatible server such as Ollama (http://localhost:11434/v1).",
    )


def _split_params(
    params: Mapping[str, Any], create: Callable[..., Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Params the client knows go as arguments; others (e.g. Ollama's ``top_k``) are merged
    into the JSON body as-is, instead of failing with a TypeError mid-run."""
    reserved = sorted(RESERVED_PARAMS.intersection(params))
    if reserved:
        raise GovrunError(
            f"model.params may not set {', '.join(reserved)}: the runtime sets those itself"
        )
    given = dict(params)
    explicit = dict(given.pop("extra_body", None) or {})  # `model.params.extra_body`
    try:
        known = set(inspect.signature(create).parameters) - {"extra_body"}
    except (TypeError, ValueError):  # an exotic client: send everything as arguments
        return given, explicit
    direct = {k: v for k, v in given.items() if k in known}
    extra = {k: v for k, v in given.items() if k not in known}
    return direct, {**extra, **explicit}


class _Unmappable(Exception):
    """The reply lacks something a ModelReply needs."""


def _to_reply(completion: Any, fallback_model: str) -> ModelReply:
    if not completion.choices:
        raise _Unmappable("no choices")
    choice = completion.choices[0]
    message = choice.message
    if message is None:
        raise _Unmappable("choices[0] has no message")
    calls = [_tool_call(call, i) for i, call in enumerate(message.tool_calls or [])]
    return ModelReply(
        model=completion.model or fallback_model,
        content=message.content,
        tool_calls=calls,
        finish_reason=choice.finish_reason,
        refusal=_text(getattr(message, "refusal", None)),
        usage=_usage(completion.usage),
    )


def _text(value: Any) -> str | None:
    """A non-empty string, else None (servers send null, "" or leave the field out)."""
    return value if isinstance(value, str) and value else None


def _tool_call(call: Any, index: int) -> ToolCallRequest:
    """Arguments stay the raw string; a missing id (some local servers) gets a stable one."""
    function = getattr(call, "function", None)
    if function is None or not function.name:
        raise _Unmappable(f"tool call {index} has no function name")
    return ToolCallRequest(
        id=call.id or f"call_{index}", name=function.name, arguments=function.arguments
    )


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    prompt = usage.prompt_tokens or 0
    completion = usage.completion_tokens or 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=usage.total_tokens or prompt + completion,
    )


def _server_detail(exc: openai.APIStatusError) -> str:
    """The server's own error message, shortened."""
    body = exc.body
    error = body.get("error", body) if isinstance(body, dict) else None
    text = error.get("message") if isinstance(error, dict) else None
    if not isinstance(text, str) or not text:
        text = body if isinstance(body, str) and body else exc.message
    text = " ".join(str(text).split())
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 3] + "..."


def _error_code(exc: openai.APIStatusError) -> str | None:
    code = exc.code if isinstance(exc.code, str) else None
    return code or (exc.type if isinstance(exc.type, str) else None)


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 and value != float("inf") else None
