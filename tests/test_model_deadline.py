"""The OpenAI adapter's ``timeout_s`` bounds a whole attempt, however slowly the bytes come.

The real ``openai`` client against :class:`TrickleServer` on 127.0.0.1: a server that trickles
its body, its head, says nothing, or sends a chunked body that never ends. Each attempt ends
as a retryable ``timeout`` within ``timeout_s`` (plus a little), leaves no thread or socket
behind, and the next attempt connects afresh.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from govrun.runtime.models.openai_model import OpenAIModel
from govrun.runtime.ports import ModelCallError
from tests.support.trickle_server import Mode, TrickleServer, trickling

MESSAGES = [{"role": "user", "content": "hi"}]
SLACK_S = 0.5


def model_for(server: TrickleServer, timeout_s: float) -> OpenAIModel:
    return OpenAIModel(
        name="gpt-fake", base_url=server.base_url, api_key=None, params={}, timeout_s=timeout_s
    )


def timed_out(model: OpenAIModel) -> tuple[ModelCallError, float]:
    started = time.monotonic()
    with pytest.raises(ModelCallError) as info:
        model.complete(MESSAGES, [])
    return info.value, time.monotonic() - started


@pytest.mark.parametrize(
    ("mode", "progress"),
    [
        ("body", "HTTP 200 and "),
        ("head", "request sent; no complete response head came back"),
        ("silent", "request sent; no complete response head came back"),
        ("chunked", "HTTP 200 and "),
    ],
)
def test_a_trickling_server_is_a_retryable_timeout_within_timeout_s(
    mode: Mode, progress: str
) -> None:
    with trickling(mode, interval=0.5) as server:
        error, elapsed = timed_out(model_for(server, timeout_s=1))

    assert (error.failure_class, error.retryable) == ("timeout", True)
    assert 1 <= elapsed < 1 + SLACK_S
    assert error.message.startswith(f"no complete reply from {server.base_url} within 1s (")
    assert progress in error.message


def test_the_message_counts_the_bytes_that_came() -> None:
    with trickling("body", interval=0.4) as server:
        error, _ = timed_out(model_for(server, timeout_s=1))

    # one byte at once, then one per 0.4 s: 3 in the first second
    assert "(HTTP 200 and 3 body bytes came back)" in error.message


def test_timeouts_leave_no_thread_or_socket_behind() -> None:
    with trickling("body", "head", "silent", "chunked", interval=0.1) as server:
        model = model_for(server, timeout_s=0.5)
        threads, fds = _threads(), _open_fds()

        for _ in range(4):
            error, elapsed = timed_out(model)
            assert error.failure_class == "timeout" and elapsed < 0.5 + SLACK_S

        assert server.wait_idle(), "a cut connection is still open"
        assert not [t for t in threading.enumerate() if t.name == "govrun-deadline"]
        assert (_threads(), _open_fds()) == (threads, fds)
        assert server.connections == 4


def test_the_next_attempt_connects_afresh_and_succeeds() -> None:
    with trickling("body", "fast", interval=0.2) as server:
        model = model_for(server, timeout_s=0.5)
        error, _ = timed_out(model)
        reply = model.complete(MESSAGES, [])

    assert error.failure_class == "timeout"
    assert reply.content == "slow hello"
    assert server.connections == 2


def test_ordinary_calls_share_one_connection() -> None:
    with trickling("fast") as server:
        model = model_for(server, timeout_s=5)
        replies = [model.complete(MESSAGES, []).content for _ in range(3)]

    assert replies == ["slow hello"] * 3
    assert server.connections == 1


def _threads() -> int:
    """Threads of this process, the test server's own left out."""
    return sum(not t.name.startswith("trickle") for t in threading.enumerate())


def _open_fds() -> int:
    return len(os.listdir("/dev/fd"))
