"""What an inline Python tool prints: evidence of its call, never govrun's own output.

A tool is operator code and may print (progress, a debug line, a library's chatter), but
govrun's stdout is not the tool's: ``govrun run --json`` promises JSON lines there and
nothing else. So while an inline call runs, ``sys.stdout`` and ``sys.stderr`` are routers
that hand every write, from any thread, to the call's :class:`Printed`: the first
``max_output_bytes`` of each stream are kept and the rest only counted, so a tool that
prints 100 MB holds no more memory than one that prints a line. The loop records it as
``evidence.printed``, exactly as ``isolation: process`` does.

One pair of routers serves every call in flight: put in place when the first call starts
and taken away when the last one ends, so calls in several threads never restore each
other's streams out of order. A write from a thread running a call belongs to that call;
a write from any other thread (one the tool started) to the call started last.

Only Python-level writes are seen. A C extension or a child process writing to file
descriptor 1 or 2 itself is not captured inline: ``isolation: process`` captures those too.
Anything else that resolves ``sys.stdout`` at write time while a call runs would be
captured as well, which is why govrun's own consoles are bound to their streams.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from _thread import get_ident
from collections.abc import Iterator
from typing import Any, TextIO

from govrun.runtime.tools.base import clip

_SLICE = 1 << 20
"""Characters encoded at a time to count a long non-ASCII write, so counting it costs
bounded memory too."""


class _Kept:
    """One stream of one call: its first ``limit`` bytes in UTF-8, and how many it wrote."""

    __slots__ = ("head", "limit", "total")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.head = bytearray()
        self.total = 0

    def add(self, text: str) -> None:
        room = self.limit - len(self.head)
        if room > 0:  # at most `room` characters: never more than 4 * room bytes encoded
            self.head += text[:room].encode("utf-8", "replace")[:room]
        self.total += _utf8_size(text)

    def text(self) -> str:
        """The head, clipped as tool output is, with the count of bytes left out (what
        ``isolation: process`` records for the same output)."""
        kept = self.head.decode("utf-8", errors="replace")
        return clip(kept, self.limit, already_dropped=self.total - len(self.head))[0]


def _utf8_size(text: str) -> int:
    if text.isascii():
        return len(text)
    return sum(
        len(text[i : i + _SLICE].encode("utf-8", "replace")) for i in range(0, len(text), _SLICE)
    )


class Printed:
    """What one call wrote to ``sys.stdout`` and ``sys.stderr``, within bounds. A stream's
    buffer is made on its first write (most calls print nothing, and a call costs µs);
    writes may come from several threads at once (the tool's own), so they take a lock."""

    __slots__ = ("limit", "stderr", "stdout")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stdout: _Kept | None = None
        self.stderr: _Kept | None = None

    def add(self, stream: str, text: str) -> None:
        with _writing:
            if stream == "stdout":
                kept = self.stdout = self.stdout or _Kept(self.limit)
            else:
                kept = self.stderr = self.stderr or _Kept(self.limit)
            kept.add(text)

    def evidence(self) -> dict[str, Any] | None:
        """``{stdout, stderr, bytes}``, each stream clipped like tool output; None when the
        call printed nothing."""
        if self.stdout is None and self.stderr is None:
            return None
        with _writing:
            out, err = self.stdout or _Kept(self.limit), self.stderr or _Kept(self.limit)
            if not out.total and not err.total:
                return None
            return {"stdout": out.text(), "stderr": err.text(), "bytes": out.total + err.total}


_writing = threading.Lock()
"""Held while a write is added to a call's buffers, or they are read."""


# --- the routers --------------------------------------------------------------------------

_lock = threading.Lock()
"""Held while calls start and end: the streams are swapped under it."""
_in_flight: list[Printed] = []
"""Calls running now, the latest last."""
_by_thread: dict[int, Printed] = {}
"""Thread id -> the call that thread is running."""
_saved: tuple[TextIO, TextIO] | None = None
"""The streams the routers stand in for while any call runs."""


def _owner() -> Printed | None:
    """The call a write from this thread belongs to (no lock: reading one dict entry and
    the last list item are atomic, and a call that just ended may still take a write)."""
    owner = _by_thread.get(get_ident())
    if owner is not None:
        return owner
    try:
        return _in_flight[-1]
    except IndexError:
        return None


class _Router(io.TextIOBase):
    """Stands in for ``sys.stdout`` or ``sys.stderr`` while calls run: a text stream that
    is not a terminal and has no file descriptor, whose writes go to a call's capture."""

    def __init__(self, stream: str) -> None:
        super().__init__()
        self._stream = stream

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "replace"

    @property
    def buffer(self) -> _BinaryRouter:
        """For tools that write bytes (``sys.stdout.buffer.write``)."""
        return _BinaryRouter(self)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        owner = _owner()
        if owner is not None:
            owner.add(self._stream, text)
            return len(text)
        elsewhere = self._elsewhere()
        return elsewhere.write(text) if elsewhere is not None else len(text)

    def _elsewhere(self) -> TextIO | None:
        """Where a write goes when no call runs: the last call is ending, or a handler or
        thread made during a call kept this stream and writes after it."""
        out = self._stream == "stdout"
        if _saved is not None:
            return _saved[0] if out else _saved[1]
        current = sys.stdout if out else sys.stderr
        return current if current is not self else (sys.__stdout__ if out else sys.__stderr__)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        """Nothing: a tool closing ``sys.stdout`` must not close it for every later call."""


class _BinaryRouter(io.RawIOBase):
    """``buffer`` of a router: bytes are decoded (invalid ones replaced) and routed."""

    def __init__(self, text: _Router) -> None:
        super().__init__()
        self._text = text

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._text.write(bytes(view).decode("utf-8", "replace"))
        return view.nbytes


_STDOUT, _STDERR = _Router("stdout"), _Router("stderr")


def start(printed: Printed) -> Printed | None:
    """From now on what any thread prints goes to ``printed`` (see the module); returns
    what :func:`end` needs. Plain functions rather than a context manager: a call costs
    a few µs, and a generator-based one would add one more."""
    global _saved
    thread = get_ident()
    with _lock:
        if not _in_flight:
            _saved = (sys.stdout, sys.stderr)
            sys.stdout, sys.stderr = _STDOUT, _STDERR
        _in_flight.append(printed)
        outer = _by_thread.get(thread)  # a tool calling another tool inline
        _by_thread[thread] = printed
    return outer


def end(printed: Printed, outer: Printed | None) -> None:
    """The call ended: its thread's writes go back to ``outer`` (or nowhere special), and
    the streams come back once no call runs."""
    global _saved
    thread = get_ident()
    with _lock:
        _in_flight.remove(printed)
        if outer is None:
            _by_thread.pop(thread, None)
        else:
            _by_thread[thread] = outer
        if not _in_flight and _saved is not None:
            sys.stdout, sys.stderr = _saved
            _saved = None


@contextlib.contextmanager
def attributed(printed: Printed) -> Iterator[None]:
    """Writes from this thread belong to ``printed``: for the thread a call runs in when
    that is not the thread that started it (see :func:`start`)."""
    thread = get_ident()
    with _lock:
        outer = _by_thread.get(thread)
        _by_thread[thread] = printed
    try:
        yield
    finally:
        with _lock:
            if outer is None:
                _by_thread.pop(thread, None)
            else:
                _by_thread[thread] = outer
