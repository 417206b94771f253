"""A real HTTP server on a loopback address that records every request it receives.

Tests assert on ``requests`` to prove a denied call never reached a server — not merely
that the tool said "denied".
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BIG_BODY = b"x" * 100_000


class RecordingServer(ThreadingHTTPServer):
    """``requests`` holds the raw request path of every request, in order."""

    daemon_threads = True

    def __init__(self, host: str) -> None:
        super().__init__((host, 0), _Handler)
        self.requests: list[str] = []
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: RecordingServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests.append(self.path)
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        route = parts.path
        if route == "/redirect":
            self._send(302, b"", location=query["to"][0])
        elif route == "/loop":
            self._send(302, b"", location="/loop")
        elif route == "/big":
            self._send(200, BIG_BODY)
        elif route.startswith("/status/"):
            self._send(int(route.rsplit("/", 1)[1]), b"status body")
        elif route == "/slow":
            time.sleep(3)
            self._send(200, b"late")
        else:
            self._send(200, f"hello from {self.server.base}{route}".encode())

    def _send(self, status: int, body: bytes, *, location: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if location is not None:
            self.send_header("Location", location)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client stopped early
            self.wfile.write(body)


@contextmanager
def serve(host: str) -> Iterator[RecordingServer]:
    """Run a ``RecordingServer`` on ``host`` (an ephemeral port) for the block's duration."""
    server = RecordingServer(host)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
