"""Which stream carries what while a run goes.

A rich console without a file looks ``sys.stdout`` up at every write, and while an inline
Python tool runs that is the tool's capture (:mod:`govrun.runtime.tools.printed`): the
live view's refresh thread, or the Ctrl-C notice printed by the signal handler, would be
recorded as the tool's output instead of shown. So for as long as a run goes, govrun's
consoles are bound to the streams it started with (:func:`bound_consoles`).

With ``--json`` standard output carries JSON lines and nothing else (:func:`json_channel`):
the events go to the stream govrun started with, and everything else headed for stdout —
a tool's thread that outlived its call, a library, a C extension or a child process writing
to file descriptor 1 — lands on standard error instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TextIO

from govrun.cli.console import err, out


@contextlib.contextmanager
def bound_consoles() -> Iterator[None]:
    """``out`` and ``err`` write to the streams ``sys.stdout`` and ``sys.stderr`` are now,
    whatever those names are bound to later, until the block ends."""
    saved = out._file, err._file  # None unless a file was given
    out.file, err.file = sys.stdout, sys.stderr
    try:
        yield
    finally:
        out._file, err._file = saved  # None: look the stream up at each write again


@contextlib.contextmanager
def json_channel() -> Iterator[TextIO]:
    """Standard output for JSON lines alone while the block runs: yields the stream to
    write them to, and sends everything else headed for stdout to stderr, both the Python
    stream and, when stdout is a real file descriptor, the descriptor itself."""
    stdout, stderr = sys.stdout, sys.stderr
    events: TextIO = stdout
    moved = _move_descriptor(stdout, stderr)
    if moved is not None:
        kept, _ = moved
        events = open(  # noqa: SIM115 - closed below, after the descriptor is put back
            kept, "w", encoding=stdout.encoding or "utf-8", errors=stdout.errors, closefd=False
        )
    sys.stdout = stderr
    try:
        yield events
    finally:
        sys.stdout = stdout
        if moved is not None:
            kept, fd = moved
            with contextlib.suppress(OSError, ValueError):
                events.flush()
                events.close()
            with contextlib.suppress(OSError, ValueError):
                stdout.flush()  # what C code or a stray thread left in its buffer: stderr's
            os.dup2(kept, fd)
            os.close(kept)


def _move_descriptor(stdout: TextIO, stderr: TextIO) -> tuple[int, int] | None:
    """Point stdout's descriptor at stderr's and keep a copy of the old one: (copy, fd).
    None when either stream has no descriptor (a test's in-memory streams)."""
    try:
        fd, target = stdout.fileno(), stderr.fileno()
        stdout.flush()
        kept = os.dup(fd)  # not inherited by child processes
    except (AttributeError, ValueError, OSError):
        return None
    try:
        os.dup2(target, fd)
    except OSError:
        os.close(kept)
        return None
    return kept, fd
