"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests: no mocks, the real client.

Tests push scripted behaviours (a reply, an HTTP error, a hang, a malformed body); each
``POST /v1/chat/completions`` consumes the next one, and every request is recorded so a test
can assert exactly what the client sent. Use it as a context manager or through the
``fake_openai`` fixture.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

CREATED = 1_700_000_000
"""Fixed ``created`` timestamp: responses are deterministic."""

DEFAULT_USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
NO_RESPONSE_LEFT = "fake server: no scripted response left"

_AUTO: Any = object()


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    """Header names lower-cased."""
    json: Any
    """The parsed JSON body, or None when there was no (valid JSON) body."""


@dataclass(frozen=True)
class _Reply:
    content: str | None
    tool_calls: list[dict[str, Any]]
    usage: dict[str, Any] | None
    finish_reason: str | None
    model: str | None


@dataclass(frozen=True)
class _Error:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass(frozen=True)
class _Malformed:
    raw: bytes
    status: int
    content_type: str


@dataclass(frozen=True)
class _Hang:
    seconds: float
    then: _Reply


Behaviour = _Reply | _Error | _Malformed | _Hang


@dataclass
class _State:
    queue: deque[Behaviour] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    models: tuple[str, ...] = ()


class FakeOpenAI:
    """An OpenAI-compatible chat completions server driven by a queue of behaviours."""

    def __init__(self, *, models: tuple[str, ...] = ("gpt-fake",)) -> None:
        self._state = _State(models=models)
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.state = self._state
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; wakes any hanging handler so shutdown is quick."""
        self._state.stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- addresses and records -----------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url`` to an OpenAI client."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Requests received so far, oldest first (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def last_request(self) -> RecordedRequest:
        requests = self.requests
        assert requests, "fake server: no request received"
        return requests[-1]

    @property
    def pending(self) -> int:
        """Scripted behaviours not consumed yet."""
        with self._state.lock:
            return len(self._state.queue)

    # --- scripting -----------------------------------------------------------------------

    def reply(
        self,
        content: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        usage: dict[str, Any] | None = _AUTO,
        finish_reason: str | None = _AUTO,
        model: str | None = None,
    ) -> FakeOpenAI:
        """Queue a successful chat.completion.

        ``tool_calls`` items are ``{"name", "arguments": dict | raw str, "id"?}``; a dict is
        JSON-encoded, a string is sent exactly as given (malformed JSON included).
        ``usage=None`` omits usage, as some local servers do. ``model`` defaults to the
        requested model.
        """
        self._push(_reply(content, tool_calls, usage, finish_reason, model))
        return self

    def error(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> FakeOpenAI:
        """Queue an HTTP error. ``body`` defaults to an OpenAI-shaped error object; a dict is
        sent as JSON, a str or bytes as plain text."""
        self._push(_Error(status, body if body is not None else _error_body(status), headers or {}))
        return self

    def hang(self, seconds: float, **then: Any) -> FakeOpenAI:
        """Queue a response that waits ``seconds`` first (then replies with ``then`` kwargs,
        as for :meth:`reply`). Closing the server cuts the wait short."""
        then.setdefault("content", "late reply")
        self._push(_Hang(seconds, _reply(**then)))
        return self

    def malformed(
        self, raw_body: str | bytes, *, status: int = 200, content_type: str = "application/json"
    ) -> FakeOpenAI:
        """Queue a response whose body is sent verbatim (e.g. not JSON, or JSON without
        ``choices``)."""
        raw = raw_body.encode() if isinstance(raw_body, str) else raw_body
        self._push(_Malformed(raw, status, content_type))
        return self

    def _push(self, behaviour: Behaviour) -> None:
        with self._state.lock:
            self._state.queue.append(behaviour)


# --- building bodies ---------------------------------------------------------------------


def _reply(
    content: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = _AUTO,
    finish_reason: str | None = _AUTO,
    model: str | None = None,
) -> _Reply:
    calls = list(tool_calls or [])
    if finish_reason is _AUTO:
        finish_reason = "tool_calls" if calls else "stop"
    return _Reply(content, calls, DEFAULT_USAGE if usage is _AUTO else usage, finish_reason, model)


def completion_body(reply: _Reply, *, number: int, requested_model: str | None) -> dict[str, Any]:
    """A chat.completion object as the OpenAI API returns it."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [_tool_call(call, i) for i, call in enumerate(reply.tool_calls)]
    body: dict[str, Any] = {
        "id": f"chatcmpl-fake-{number}",
        "object": "chat.completion",
        "created": CREATED,
        "model": reply.model or requested_model or "gpt-fake",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": reply.finish_reason,
                "logprobs": None,
            }
        ],
        "system_fingerprint": None,
    }
    if reply.usage is not None:
        body["usage"] = reply.usage
    return body


def _tool_call(call: dict[str, Any], index: int) -> dict[str, Any]:
    arguments = call.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return {
        "id": call.get("id") or f"call_fake_{index}",
        "type": "function",
        "function": {"name": call["name"], "arguments": arguments},
    }


def _error_body(status: int, message: str | None = None) -> dict[str, Any]:
    kinds = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        404: "invalid_request_error",
        429: "rate_limit_exceeded",
    }
    return {
        "error": {
            "message": message or f"fake server error {status}",
            "type": kinds.get(status, "server_error"),
            "param": None,
            "code": None,
        }
    }


# --- the HTTP side -------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    # Daemon handler threads: a hanging handler never holds up interpreter exit or close().
    daemon_threads = True
    state: _State


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        self._record(None)
        if self.path.rstrip("/") == "/v1/models":
            data = [
                {"id": m, "object": "model", "created": CREATED, "owned_by": "fake"}
                for m in self.server.state.models
            ]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_json(404, _error_body(404, f"fake server: no route GET {self.path}"))

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        number = self._record(body)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(404, _error_body(404, f"fake server: no route POST {self.path}"))
            return
        behaviour = self._next()
        if behaviour is None:
            self._send_json(500, _error_body(500, NO_RESPONSE_LEFT))
            return
        model = body.get("model") if isinstance(body, dict) else None
        self._perform(behaviour, number=number, model=model)

    def _perform(self, behaviour: Behaviour, *, number: int, model: str | None) -> None:
        try:
            if isinstance(behaviour, _Hang):
                if self.server.state.stopping.wait(behaviour.seconds):
                    return  # shutting down: drop the connection without answering
                behaviour = behaviour.then
            if isinstance(behaviour, _Reply):
                body = completion_body(behaviour, number=number, requested_model=model)
                self._send_json(200, body)
            elif isinstance(behaviour, _Error):
                self._send_json(behaviour.status, behaviour.body, behaviour.headers)
            else:
                self._send(behaviour.status, behaviour.raw, behaviour.content_type, {})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout fired): nothing to answer

    def _record(self, body: Any) -> int:
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            json=body,
        )
        with self.server.state.lock:
            self.server.state.requests.append(request)
            return len(self.server.state.requests)

    def _next(self) -> Behaviour | None:
        with self.server.state.lock:
            queue = self.server.state.queue
            return queue.popleft() if queue else None

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """JSON for data; a str or bytes body is sent as plain text, verbatim."""
        if isinstance(body, str | bytes):
            raw = body.encode() if isinstance(body, str) else body
            self._send(status, raw, "text/plain", headers or {})
        else:
            self._send(status, json.dumps(body).encode(), "application/json", headers or {})

    def _send(self, status: int, raw: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture(name="fake_openai")
def fake_openai_fixture() -> Iterator[FakeOpenAI]:
    """A running :class:`FakeOpenAI`, closed after the test. Registered as ``fake_openai``:
    import ``fake_openai_fixture`` into a test module, or list this module in a conftest's
    ``pytest_plugins``."""
    with FakeOpenAI() as server:
        yield server
