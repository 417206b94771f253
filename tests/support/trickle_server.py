"""A raw-socket HTTP/1.1 server on 127.0.0.1 that answers too slowly, in chosen ways.

Deadlines are tested against it: each request takes the next of the server's ``modes`` (the
last one repeats), and answers with a chat.completion (or ``body``) —

- ``fast``: at once, keep-alive;
- ``body``: the head at once, then the body one byte per ``interval``;
- ``head``: the status line and headers one byte per ``interval``;
- ``silent``: nothing, until the client goes away;
- ``chunked``: the head at once, then a chunked body that never ends, a chunk per
  ``interval``.

With ``tls`` (a server-side ``ssl.SSLContext``, see :func:`tls_pair`) it speaks HTTPS. A slow
answer ends only when the client closes its end (or the server closes), so once
:meth:`TrickleServer.wait_idle` returns True every connection a client opened is closed.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Mode = Literal["fast", "body", "head", "silent", "chunked"]

CHAT_BODY = json.dumps(
    {
        "id": "chatcmpl-trickle",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "slow hello"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
).encode()


class TrickleServer:
    """Serves ``modes`` in turn, one per request; counts connections and requests."""

    def __init__(
        self,
        *modes: Mode,
        interval: float = 0.5,
        body: bytes = CHAT_BODY,
        path: str = "/v1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.modes = list(modes or ("body",))
        self.tls = tls
        self.interval = interval
        self.body = body
        self.path = path
        self.connections = 0
        self.requests = 0
        self._open = 0
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, name="trickle-accept", daemon=True)

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}{self.path}"

    def wait_idle(self, within: float = 3.0) -> bool:
        """True once no connection is open (every client has closed its end)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._open == 0, timeout=within)

    def start(self) -> TrickleServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()
        self.wait_idle(within=2)

    # --- serving ---------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._changed:
                self.connections += 1
                self._open += 1
            threading.Thread(
                target=self._serve, args=(conn,), name="trickle-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn.settimeout(5)
                conn = self.tls.wrap_socket(conn, server_side=True)
            conn.settimeout(0.05)
            while self._read_request(conn):
                with self._changed:
                    mode = self.modes[min(self.requests, len(self.modes) - 1)]
                    self.requests += 1
                if not self._answer(conn, mode):
                    break
        except OSError:  # the client went away (reset, broken pipe)
            pass
        finally:
            conn.close()
            with self._changed:
                self._open -= 1
                self._changed.notify_all()

    def _read_request(self, conn: socket.socket) -> bool:
        """Read one request (head and Content-Length body); False when the client closed."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self._recv(conn)
            if not chunk:
                return False
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = self._recv(conn)
            if not chunk:
                return False
            rest += chunk
        return True

    def _recv(self, conn: socket.socket) -> bytes:
        """Bytes from the client; b"" once it closed or the server stops."""
        while not self._stop.is_set():
            try:
                return conn.recv(65536)
            except TimeoutError:
                continue
        return b""

    def _answer(self, conn: socket.socket, mode: Mode) -> bool:
        """Answer one request; False when the connection is done."""
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + (
                b"Transfer-Encoding: chunked\r\n"
                if mode == "chunked"
                else f"Content-Length: {len(self.body)}\r\n".encode()
            )
            + b"\r\n"
        )
        if mode == "fast":
            conn.sendall(head + self.body)
            return True
        if mode == "silent":
            self._recv(conn)  # returns once the client leaves
            return False
        if mode == "head":
            return self._trickle(conn, head) and self._send(conn, self.body)
        conn.sendall(head)
        if mode == "body":
            return self._trickle(conn, self.body)
        while self._send(conn, b'1\r\n"\r\n'):  # chunked: forever, one byte at a time
            if self._stop.wait(self.interval):
                return False
        return False

    def _trickle(self, conn: socket.socket, data: bytes) -> bool:
        for i in range(len(data)):
            if not self._send(conn, data[i : i + 1]) or self._stop.wait(self.interval):
                return False
        return True

    @staticmethod
    def _send(conn: socket.socket, data: bytes) -> bool:
        try:
            conn.sendall(data)
        except OSError:
            return False
        return True


@contextmanager
def trickling(
    *modes: Mode,
    interval: float = 0.5,
    body: bytes = CHAT_BODY,
    path: str = "/v1",
    tls: ssl.SSLContext | None = None,
) -> Iterator[TrickleServer]:
    """A running :class:`TrickleServer` for the block's duration."""
    server = TrickleServer(*modes, interval=interval, body=body, path=path, tls=tls).start()
    try:
        yield server
    finally:
        server.close()


def tls_pair(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) TLS contexts for 127.0.0.1: a fresh self-signed certificate in
    ``folder`` that the client context trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return server, ssl.create_default_context(cafile=cert_file)
