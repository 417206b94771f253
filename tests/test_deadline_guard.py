"""The ConnectionGuard on its own: a deadline for a whole exchange over real sockets.

Both HTTP stacks govrun meets are tested — httpx (``http.get``) and httpx2 (the ``openai``
client's fork) — against :class:`TrickleServer` on 127.0.0.1, in plain HTTP and over TLS.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from govrun.runtime.tools.deadline import ConnectionGuard
from tests.support.trickle_server import Mode, tls_pair, trickling

STACKS = [name for name in ("httpx", "httpx2") if importlib.util.find_spec(name)]
SLACK_S = 0.5
"""How far past its deadline an exchange may end (it ends within milliseconds here)."""


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(request.param)


def client(stack: ModuleType, guard: ConnectionGuard, **kw: Any) -> Any:
    """Per-phase timeouts far longer than the deadlines: only the guard can end an exchange."""
    return stack.Client(event_hooks=guard.event_hooks, timeout=30, **kw)


@pytest.mark.parametrize("mode", ["body", "head", "silent", "chunked"])
def test_a_slow_exchange_is_cut_at_its_deadline(stack: ModuleType, mode: Mode) -> None:
    guard = ConnectionGuard()
    with trickling(mode, interval=0.1) as server, client(stack, guard) as http:
        started = time.monotonic()
        with guard.deadline(0.5) as exchange, pytest.raises(stack.TransportError):
            http.get(server.base_url)
        elapsed = time.monotonic() - started

        assert exchange.expired and 0.5 <= elapsed < 0.5 + SLACK_S
        assert server.wait_idle(), "the cut connection is still open"
    if mode in ("body", "chunked"):
        assert exchange.progress().startswith("HTTP 200 and ")
        assert exchange.body_bytes > 0
    else:
        assert exchange.progress() == "request sent; no complete response head came back"


def test_over_tls_too(stack: ModuleType, tmp_path: Path) -> None:
    server_tls, client_tls = tls_pair(tmp_path)
    guard = ConnectionGuard()
    with (
        trickling("fast", "body", interval=0.1, tls=server_tls) as server,
        client(stack, guard, verify=client_tls) as http,
    ):
        with guard.deadline(5):
            assert http.get(server.base_url).status_code == 200  # TLS itself works
        started = time.monotonic()
        with guard.deadline(0.5) as exchange, pytest.raises(stack.TransportError):
            http.get(server.base_url)

        assert exchange.expired and time.monotonic() - started < 0.5 + SLACK_S
        assert exchange.progress().startswith("HTTP 200 and ")
        assert server.wait_idle()


def test_a_tls_handshake_that_starts_late_ends_at_the_deadline(
    stack: ModuleType, tmp_path: Path
) -> None:
    """The handshake's socket is out of the timer's reach until it completes; its own
    timeout is lowered to the time left instead (30 s per phase would otherwise apply)."""
    _, client_tls = tls_pair(tmp_path)
    guard = ConnectionGuard()
    with trickling("silent") as server, client(stack, guard, verify=client_tls) as http:
        url = server.base_url.replace("http://", "https://")  # it never answers a ClientHello
        started = time.monotonic()
        with guard.deadline(0.6) as exchange, pytest.raises(stack.TransportError):
            time.sleep(0.3)  # half the time is gone before the handshake starts
            http.get(url)

        assert time.monotonic() - started < 0.6 + SLACK_S
        assert exchange.progress() == "could not connect"


def test_an_exchange_in_time_is_untouched_and_keeps_its_connection(stack: ModuleType) -> None:
    guard = ConnectionGuard()
    with trickling("fast") as server, client(stack, guard) as http:
        for _ in range(3):
            with guard.deadline(5) as exchange:
                assert http.get(server.base_url).status_code == 200
            assert not exchange.expired
        assert server.connections == 1  # keep-alive: one connection for all three


def test_the_next_exchange_connects_afresh_after_a_cut(stack: ModuleType) -> None:
    guard = ConnectionGuard()
    with trickling("fast", "body", "fast", interval=0.2) as server, client(stack, guard) as http:
        with guard.deadline(5):
            http.get(server.base_url)
        with guard.deadline(0.5), pytest.raises(stack.TransportError):
            http.get(server.base_url)  # reuses the first connection, and is cut
        with guard.deadline(5) as exchange:
            assert http.get(server.base_url).status_code == 200

        assert not exchange.expired
        assert server.connections == 2
