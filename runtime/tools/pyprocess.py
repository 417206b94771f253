"""A Python tool's worker process, seen from govrun: ``isolation: process``.

A function running inside govrun cannot be stopped for sure: the interval timer raises in
it, and a function that catches ``BaseException`` carries on. So such a tool runs in a warm
worker process of its own (started on its first call, one per tool) and a call that overruns
kills the worker's whole process group; the next call starts a fresh worker.

The two sides talk over two pipes made for the purpose, in frames (a 4-byte length, then
orjson), never over the worker's stdout: what the tool prints is read from its stdout and
stderr pipes, kept within bounds, and returned as evidence, so it can neither corrupt the
protocol nor reach govrun's own stdout (``--json`` promises JSON lines only there).

Worker side: :mod:`govrun.runtime.tools.pyworker`.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from govrun.runtime.tools.base import ToolTimeout, clip

HEADER = struct.Struct(">I")
"""Each frame's length, before its orjson body."""

START_TIMEOUT_S = 30.0
"""How long a worker may take to start and import its module: not charged to the first
call's ``timeout_s`` (govrun imported the same module before the run), but bounded."""

GRACE_S = 0.5
"""How long ``close`` waits for a worker to leave on its own, then after SIGTERM."""

LAST_WORDS_S = 0.2
"""How long to read a dead worker's pipes for what it printed last."""

STDERR_TAIL = 1024
"""Bytes of a dead worker's stderr quoted in the error (where Python says why it died)."""

_CHUNK = 1 << 16

_BOOT = (
    "import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
    "from govrun.runtime.tools.pyworker import main; sys.exit(main(sys.argv[2:]))"
)
"""The worker's entry: govrun's own ``sys.path`` first, so ``runtime`` and the tool's module
import exactly as they did in govrun (``-m`` would put the current folder first, where a
project's own ``runtime`` package could stand in for govrun's)."""


def frame(message: dict[str, Any]) -> bytes:
    """One message as a frame: length, then orjson."""
    body = orjson.dumps(message)
    return HEADER.pack(len(body)) + body


class Frames:
    """Reassembles frames from pipe reads of any size."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk

    def next(self) -> dict[str, Any] | None:
        """The next complete message, or None until more bytes arrive."""
        if len(self._buffer) < HEADER.size:
            return None
        (size,) = HEADER.unpack_from(self._buffer)
        end = HEADER.size + size
        if len(self._buffer) < end:
            return None
        body = memoryview(self._buffer)[HEADER.size : end]
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            message = None
        body.release()
        del self._buffer[:end]
        return message if isinstance(message, dict) else GARBLED


GARBLED: dict[str, Any] = {"garbled": True}
"""A frame that is not a JSON object: the worker is no longer to be trusted to answer."""


@dataclass
class Capture:
    """One output stream of a call: its first ``limit`` bytes, its last ``STDERR_TAIL``, and
    how many there were, so a tool that prints without end costs bounded memory."""

    limit: int
    head: bytearray = field(default_factory=bytearray)
    tail: bytes = b""
    total: int = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
        self.tail = (self.tail + chunk[-STDERR_TAIL:])[-STDERR_TAIL:]

    def text(self) -> str:
        """The head, clipped as tool output is, with the count of bytes left out."""
        kept = self.head.decode("utf-8", errors="replace")
        return clip(kept, self.limit, already_dropped=self.total - len(self.head))[0]


class WorkerFailure(Exception):
    """A call in a worker that did not return a result. ``str()`` is the whole message;
    ``printed`` what the call printed (see :meth:`ProcessCaller.printed`)."""

    def __init__(self, message: str, printed: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.printed = printed


class WorkerError(WorkerFailure):
    """The function raised (``ValueError: bad input``, as inline), or the worker could not
    start, or it died in the middle of the call: a ``tool_error``."""


class WorkerTimeout(WorkerFailure, ToolTimeout):
    """The call overran and its worker was killed: a ``timeout``."""


class _Worker:
    """One running worker process and govrun's ends of its pipes."""

    def __init__(self, spec: str, tool: str, path: list[str]) -> None:
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        fds = (str(request_r), str(reply_w), str(os.getpid()))
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, orjson.dumps(path).decode(), spec, tool, *fds],
                stdin=subprocess.DEVNULL,  # a tool's input() must not read govrun's terminal
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(request_r, reply_w),
                start_new_session=True,  # its own process group, killed as a whole
            )
        except BaseException:
            os.close(request_w)
            os.close(reply_r)
            raise
        finally:
            os.close(request_r)
            os.close(reply_w)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        os.set_blocking(request_w, False)  # written as the pipe takes it, within the deadline
        # File objects, so that a worker whose owner is dropped unclosed still sees EOF.
        self.requests = open(request_w, "wb", buffering=0)  # noqa: SIM115
        self.replies = open(reply_r, "rb", buffering=0)  # noqa: SIM115
        self.pidfd = os.pidfd_open(self.proc.pid)
        self.frames = Frames()
        self.streams = {self.proc.stdout.fileno(): "stdout", self.proc.stderr.fileno(): "stderr"}
        self.selector = selectors.DefaultSelector()
        for fd in (self.replies.fileno(), self.pidfd, *self.streams):
            self.selector.register(fd, selectors.EVENT_READ)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def exchange(
        self, outgoing: bytes, deadline: float, captures: dict[str, Capture]
    ) -> dict[str, Any] | None:
        """Send ``outgoing``, then read until a reply arrives (returned), the worker exits
        (``EXITED``, once what it printed last is read) or the deadline passes (None). What
        it prints on the way goes to ``captures``. The request is written as the pipe takes
        it, so a worker that stops reading cannot hold govrun past the deadline."""
        requests = self.requests.fileno()
        pending = self._write_some(memoryview(outgoing))
        if pending:  # most requests fit in the pipe at once
            self.selector.register(requests, selectors.EVENT_WRITE)
        exited = False
        try:
            while (message := self.frames.next()) is None:
                if exited and not self._open_pipes():
                    return EXITED
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return EXITED if exited else None
                for key, _ in self.selector.select(remaining):
                    if key.fd == requests:
                        pending = self._write_some(pending)
                        if not pending:
                            self.selector.unregister(requests)
                    elif key.fd == self.pidfd or not self._read(key.fd, captures):
                        # Gone: read what is left in its pipes, briefly (a child it started
                        # may hold them open), then say so.
                        self.selector.unregister(key.fd)
                        if not exited:
                            exited = True
                            deadline = min(deadline, time.monotonic() + LAST_WORDS_S)
            return message
        finally:
            with contextlib.suppress(KeyError):
                self.selector.unregister(requests)

    def _write_some(self, data: memoryview) -> memoryview:
        """What is left of ``data`` after one write. Nothing, if the worker is gone: its
        exit is noticed on the pipes it leaves."""
        try:
            return data[os.write(self.requests.fileno(), data) :] if data else data
        except BlockingIOError:
            return data
        except BrokenPipeError:
            return data[:0]

    def _read(self, fd: int, captures: dict[str, Capture]) -> bool:
        """Read one ready pipe; False when it is closed."""
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            return False
        if fd == self.replies.fileno():
            self.frames.feed(chunk)
        else:
            captures[self.streams[fd]].feed(chunk)
        return True

    def _open_pipes(self) -> bool:
        registered = self.selector.get_map()
        return any(fd in registered for fd in (self.replies.fileno(), *self.streams))

    def status(self) -> str:
        """How the worker ended, for people: ``exit status 3``, ``killed by SIGSEGV``."""
        code = self.proc.wait()
        if code >= 0:
            return f"exit status {code}"
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"

    def kill(self) -> None:
        """SIGKILL the whole process group (the tool's own children too), then reap. The
        leader is reaped only after the kill, so its pid cannot have been reused."""
        _signal_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._close_fds()

    def stop(self) -> None:
        """End politely: EOF on its request pipe (an idle worker leaves at once), SIGTERM
        after a grace, then SIGKILL for the group and anything it left behind; reap."""
        self.requests.close()
        if not _readable(self.pidfd, GRACE_S):
            _signal_group(self.proc.pid, signal.SIGTERM)
            _readable(self.pidfd, GRACE_S)
        self.kill()

    def _close_fds(self) -> None:
        self.selector.close()
        for stream in (self.requests, self.replies, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        with contextlib.suppress(OSError):
            os.close(self.pidfd)


EXITED: dict[str, Any] = {"exited": True}
"""What :meth:`_Worker.exchange` returns when the worker is gone without a reply."""


def _readable(fd: int, timeout: float = 0) -> bool:
    with selectors.DefaultSelector() as one:
        one.register(fd, selectors.EVENT_READ)
        return bool(one.select(timeout))


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


class ProcessCaller:
    """Calls one Python tool in its worker process, one call at a time.

    The worker imports ``spec`` with the ``sys.path`` govrun has now (the manifest folder
    included), in govrun's folder and environment: the callable is trusted operator code,
    only its arguments are not.
    """

    def __init__(self, spec: str, *, tool: str, timeout_s: float, max_output_bytes: int) -> None:
        self.spec = spec
        self.tool = tool
        self.timeout_s = timeout_s
        self.max_output_bytes = max_output_bytes
        self._path = list(sys.path)
        self._worker: _Worker | None = None
        self._captures = self._fresh_captures()
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The running worker's process id (None before the first call and after a kill)."""
        return self._worker.proc.pid if self._worker is not None else None

    def printed(self) -> dict[str, Any] | None:
        """What the last call printed: ``{stdout, stderr, bytes}``, each stream clipped to
        ``max_output_bytes`` like tool output; None when it printed nothing."""
        out, err = self._captures["stdout"], self._captures["stderr"]
        if not out.total and not err.total:
            return None
        return {"stdout": out.text(), "stderr": err.text(), "bytes": out.total + err.total}

    def call(self, arguments: dict[str, Any]) -> tuple[str, Any]:
        """Run one call with JSON-able ``arguments`` (keyed by parameter name): the result
        as text for the model and as a JSON-able value, exactly as an inline call makes them.

        Raises :class:`WorkerTimeout` when the call overruns (the worker is killed) and
        :class:`WorkerError` when the function raised or the worker died or cannot start.
        Calls from several threads take turns.
        """
        with self._lock:
            self._captures = self._fresh_captures()
            worker = self._ready_worker()
            deadline = time.monotonic() + self.timeout_s
            try:
                reply = worker.exchange(frame({"arguments": arguments}), deadline, self._captures)
            except BaseException:  # e.g. Ctrl-C in govrun: its reply must not answer the next
                self._discard(worker)
                raise
            if reply is None:
                self._discard(worker)
                raise WorkerTimeout(
                    f"Python tool did not return within {self.timeout_s:g}s; its worker "
                    "process was killed",
                    self.printed(),
                )
            if reply is EXITED or reply is GARBLED:
                status = self._discard(worker)
                what = "died during the call" if reply is EXITED else "sent an unreadable reply"
                raise WorkerError(
                    f"the worker process {what} ({status}){self._stderr_tail()}", self.printed()
                )
            if "timeout" in reply:
                raise WorkerTimeout(str(reply["timeout"]), self.printed())
            if "error" in reply:
                raise WorkerError(str(reply["error"]), self.printed())
            return str(reply["text"]), reply.get("jsonable")

    def close(self) -> None:
        """Stop the worker, if one runs, and reap it (and whatever it left in its group)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()

    def _ready_worker(self) -> _Worker:
        """The warm worker; a new one if there is none or it left between calls (e.g. a
        thread that started it ended, see ``pyworker.die_with_parent``)."""
        if self._worker is not None and self._worker.alive:
            return self._worker
        self.close()
        try:
            worker = _Worker(self.spec, self.tool, self._path)
        except OSError as exc:
            raise WorkerError(f"cannot start a worker process for {self.tool}: {exc}") from None
        started = worker.exchange(b"", time.monotonic() + START_TIMEOUT_S, self._captures)
        if started is None:
            worker.kill()
            raise WorkerTimeout(
                f"the worker process of {self.tool} did not start within {START_TIMEOUT_S:g}s "
                f"(importing {self.spec.partition(':')[0]})",
                self.printed(),
            )
        if "ready" not in started:
            status = self._discard(worker)
            why = started.get("error") or f"it exited ({status}){self._stderr_tail()}"
            raise WorkerError(f"the worker process of {self.tool} could not start: {why}")
        self._worker = worker
        return worker

    def _discard(self, worker: _Worker) -> str:
        """Kill a worker that overran, died or misbehaved; how it ended."""
        if self._worker is worker:
            self._worker = None
        worker.kill()
        return worker.status()

    def _stderr_tail(self) -> str:
        tail = self._captures["stderr"].tail.decode("utf-8", errors="replace").strip()
        return f"; its stderr ends: {tail}" if tail else ""

    def _fresh_captures(self) -> dict[str, Capture]:
        return {name: Capture(self.max_output_bytes) for name in ("stdout", "stderr")}
