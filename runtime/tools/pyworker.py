"""The worker process of a Python tool under ``isolation: process`` (started by
:mod:`govrun.runtime.tools.pyprocess`, which explains why).

It imports the callable as an inline tool does (same arguments model, same call, same
serialization), says it is ready, then answers one framed call at a time until its request
pipe closes. It dies with govrun: SIGKILL on Linux when govrun goes (even in the middle of
a call, when nobody reads the pipe), EOF on the pipe elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from typing import Any

import orjson

from govrun.runtime.tools.base import ToolConfigError, parse_arguments
from govrun.runtime.tools.pycall import PythonTool, _awaitable, _serialize, load_python_tool
from govrun.runtime.tools.pyprocess import GARBLED, Frames, frame

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    """``SPEC TOOL REQUEST_FD REPLY_FD PARENT_PID``: serve calls until EOF."""
    spec, tool_name, requests, replies, parent = argv[0], argv[1], *map(int, argv[2:5])
    die_with_parent(parent)
    for fd in (requests, replies):
        os.set_inheritable(fd, False)  # not for the tool's own subprocesses
    try:
        tool = load_python_tool(spec, name=tool_name)
    except ToolConfigError as exc:
        _send(replies, frame({"error": str(exc)}))
        return 1
    except BaseException as exc:  # a module that exits or is interrupted while importing
        _send(replies, frame({"error": f"importing {spec} raised {type(exc).__name__}"}))
        return 1
    _send(replies, frame({"ready": os.getpid()}))
    frames = Frames()
    try:
        while (request := _receive(requests, frames)) is not None:
            _send(replies, reply(tool, request.get("arguments")))
    except BrokenPipeError:  # govrun is gone
        pass
    return 0


def die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when govrun dies, and leave at once if it already
    has. (Linux counts the *thread* that started the worker as its parent: a worker started
    from a thread that then ends is killed too, and the next call starts another.)"""
    if sys.platform.startswith("linux"):
        # Without it, the request pipe's EOF still ends an idle worker.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def reply(tool: PythonTool, arguments: Any) -> bytes:
    """The framed answer to one call; a result orjson cannot write (an int beyond 64 bits)
    is an error here rather than a broken pipe."""
    try:
        return frame(answer(tool, arguments))
    except orjson.JSONEncodeError as exc:
        return frame({"error": f"TypeError: the result cannot be sent back from the worker: {exc}"})


def answer(tool: PythonTool, arguments: Any) -> dict[str, Any]:
    """One call, as the inline tool makes it: validated by the same arguments model,
    called the same way, serialized by the same function. An exception becomes ``Type:
    message`` (never a traceback); a ``TimeoutError`` is a timeout, as inline."""
    try:
        args = parse_arguments(tool, arguments)
        positional, keyword = tool._call_args(args)
        value = tool.func(*positional, **keyword)
        if _awaitable(value):
            value = asyncio.run(value)
        text, jsonable = _serialize(value)
        text.encode("utf-8")  # an unencodable result fails here, as it does inline
        return {"ok": True, "text": text, "jsonable": jsonable}
    except TimeoutError as exc:
        return {"timeout": f"the tool raised TimeoutError: {exc}"}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    except BaseException as exc:  # SystemExit and the like end the call, not the worker
        return {"error": f"RuntimeError: the tool raised {type(exc).__name__}"}
    finally:
        _flush()


def _flush() -> None:
    """Push what the call printed into the pipes before the reply, so it is read with it."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a tool may have replaced or closed them
            stream.flush()


def _receive(fd: int, frames: Frames) -> dict[str, Any] | None:
    """The next request, or None when govrun closed the pipe (or went away) or sent
    something that is not a request."""
    while (message := frames.next()) is None:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return None
        frames.feed(chunk)
    return None if message is GARBLED else message


def _send(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
