"""A deadline for a whole HTTP exchange: connect, send, response head and body.

httpx's timeouts (and those of its fork httpx2, which the ``openai`` client uses) bound each
phase and each socket read, so a server that sends a byte every half second never trips
them (encode/httpx#1450). A :class:`ConnectionGuard` closes that gap from outside: it learns
every socket its client opens (through httpcore's documented ``trace`` request extension,
attached by a request event hook), and when an exchange overruns its deadline a timer
thread shuts those sockets down. ``shutdown`` is the way to wake a thread blocked in
``recv`` or ``send`` on a socket it owns: the blocked call returns, httpx raises a transport
error, and the owning thread closes the socket as after any failed request, so the pool
never reuses it. The client's own per-phase timeouts stay as a backstop: a connect still in
progress has no socket to shut down yet. Name resolution cannot be interrupted.

The guard never imports httpx, so one implementation serves the ``openai`` client's httpx2
and ``http.get``'s httpx. Exchanges through one guard run one at a time: a cut shuts down
every socket of the client, so two at once could cut each other.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_NEW_SOCKET = ("connect_tcp.complete", "connect_unix_socket.complete", "start_tls.complete")
"""httpcore trace events whose ``return_value`` is a network stream on a new socket."""
_NO_SOCKET_YET = ("connect_tcp.started", "connect_unix_socket.started", "start_tls.started")
"""Calls the timer cannot cut: the socket they work on is not handed out until they return."""
_MIN_TIMEOUT_S = 0.001


class Exchange:
    """One exchange under a deadline: whether it ran out, and how far it got."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self.expired = False
        """Set (before any socket is cut) once the deadline passed."""
        self.phase = "connecting"
        """connecting, sending, waiting (for the response head) or receiving (the body)."""
        self.status: int | None = None
        self._response: Any = None

    @property
    def body_bytes(self) -> int:
        """Body bytes received so far, as sent (before any decoding)."""
        return 0 if self._response is None else int(self._response.num_bytes_downloaded)

    def progress(self) -> str:
        """How far the exchange got: what a timeout message tells about the server."""
        if self.phase == "receiving":
            return f"HTTP {self.status} and {self.body_bytes} body bytes came back"
        return {
            "connecting": "could not connect",
            "sending": "connected, but could not send the request",
            "waiting": "request sent; no complete response head came back",
        }[self.phase]

    def remaining(self) -> float:
        """Seconds left (negative once the deadline has passed)."""
        return self.ends - time.monotonic()

    def _request_started(self) -> None:
        """A new request (the first, or a redirect's next hop)."""
        self.phase, self.status, self._response = "connecting", None, None


class ConnectionGuard:
    """Learns the sockets of one httpx client; cuts them when an exchange overruns.

    Build the client with ``event_hooks=guard.event_hooks`` and run each exchange inside
    ``with guard.deadline(seconds) as exchange:``; when a request fails, ``exchange.expired``
    says whether the deadline cut it.
    """

    def __init__(self) -> None:
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._one_at_a_time = threading.Lock()
        self._exchange: Exchange | None = None

    @property
    def event_hooks(self) -> dict[str, list[Callable[[Any], None]]]:
        return {"request": [self._on_request], "response": [self._on_response]}

    @contextmanager
    def deadline(self, seconds: float) -> Iterator[Exchange]:
        """Run one exchange that must finish within ``seconds`` (counted once an exchange
        already running through this guard is done). The timer thread is cancelled and
        joined on the way out: none outlives the exchange."""
        with self._one_at_a_time:
            exchange = Exchange(seconds)
            timer = threading.Timer(seconds, self._expire, args=(exchange,))
            timer.name = "govrun-deadline"
            timer.daemon = True
            self._exchange = exchange
            timer.start()
            try:
                yield exchange
            finally:
                timer.cancel()
                timer.join()
                self._exchange = None

    # --- hooks, in the requesting thread -------------------------------------------------

    def _on_request(self, request: Any) -> None:
        request.extensions["trace"] = self._trace
        if self._exchange is not None:
            self._exchange._request_started()

    def _on_response(self, response: Any) -> None:
        if self._exchange is not None:
            self._exchange._response = response

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith(_NEW_SOCKET):
            sock = _socket_of(info.get("return_value"))
            if sock is not None:
                with self._lock:
                    self._sockets.add(sock)
        exchange = self._exchange
        if exchange is None:
            return
        if event.endswith(_NO_SOCKET_YET):
            _clamp_timeout(info, exchange.remaining())
        elif event.endswith("send_request_headers.started"):
            exchange.phase = "sending"
        elif event.endswith("send_request_body.complete"):
            exchange.phase = "waiting"
        elif event.endswith("receive_response_headers.complete"):
            exchange.phase, exchange.status = "receiving", _status_of(info.get("return_value"))
        if exchange.expired:  # nothing new starts after the deadline (say, a late connect)
            self._cut()

    # --- the deadline, in the timer thread -----------------------------------------------

    def _expire(self, exchange: Exchange) -> None:
        exchange.expired = True
        self._cut()

    def _cut(self) -> None:
        """Shut down every socket the client still has. Idle pooled ones go too: the pool
        then finds them closed and connects afresh."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            # Already closed, or detached when TLS wrapped it: nothing to do.
            with contextlib.suppress(OSError):
                # The plain socket's method: SSLSocket.shutdown would drop its SSL object.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _clamp_timeout(info: dict[str, Any], remaining: float) -> None:
    """End a connect or TLS handshake at the deadline, not a full timeout after it started.

    httpcore hands the traced call the very ``kwargs`` it traces, so lowering ``timeout``
    here lowers the call's own (a TLS handshake's timeout bounds it as a whole). Were that
    ever to change, the client's per-phase timeout would still bound the call.
    """
    timeout = info.get("timeout")
    if timeout is None or isinstance(timeout, int | float):
        limit = max(remaining, _MIN_TIMEOUT_S)
        info["timeout"] = limit if timeout is None else min(timeout, limit)


def _socket_of(stream: Any) -> socket.socket | None:
    get = getattr(stream, "get_extra_info", None)
    sock = get("socket") if callable(get) else None
    return sock if isinstance(sock, socket.socket) else None


def _status_of(head: Any) -> int | None:
    """The status in httpcore's ``(http_version, status, reason, headers)``."""
    if isinstance(head, tuple) and len(head) > 1 and isinstance(head[1], int):
        return head[1]
    return None
