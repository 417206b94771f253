"""Functions loaded as Python tools by ``tests/test_tools_pycall.py`` and, under
``isolation: process``, by ``tests/test_tools_pyproc.py``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel


class Point(BaseModel):
    x: int
    y: int


def add(a: int, b: int = 2) -> int:
    """Add two integers.

    The second paragraph is detail the model does not need.
    """
    return a + b


def greet(name: str) -> str:
    """Say hello."""
    return f"hello {name}"


def untyped(value, times=2):  # no annotations on purpose
    return [value] * times


def shadowing(json: str, copy: int = 0) -> dict[str, Any]:
    """Parameters named like BaseModel attributes."""
    return {"json": json, "copy": copy}


def move(p: Point, dx: int) -> Point:
    """Return a moved point."""
    return Point(x=p.x + dx, y=p.y)


def positional(a: int, /, b: int) -> list[int]:
    return [a, b]


def fails(message: str) -> None:
    """Always raises."""
    raise ValueError(f"bad input: {message}")


def exits() -> None:
    raise SystemExit(3)


def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "finished"


def nap(seconds: float) -> str:
    """Sleep, so that a run's steps take long enough to be steered from outside."""
    time.sleep(seconds)
    return f"napped {seconds}s"


async def aslow(seconds: float) -> str:
    """An async tool."""
    await asyncio.sleep(seconds)
    return "async finished"


def opaque() -> object:
    return object()


def long_text(n: int) -> str:
    return "y" * n


def star_args(*values: int) -> int:
    return sum(values)


def star_kwargs(**options: str) -> int:
    return len(options)


NOT_CALLABLE = 42


def write_or_crash(path: str, text: str) -> str:
    """Write ``text`` to ``path``, except the first time: then the process dies in the middle
    of the call (leaving ``path.crashed``), as a crash while a tool runs would."""
    import os
    from pathlib import Path

    marker = Path(path + ".crashed")
    if not marker.exists():
        marker.write_text("")
        os._exit(137)
    Path(path).write_text(text)
    return f"wrote {len(text)} characters to {Path(path).name}"


def transfer(amount: int, to: str) -> str:
    """Move money (a test stand-in: it only says what it would do)."""
    return f"sent {amount} to {to}"


# --- for isolation: process ----------------------------------------------------------------


def whoami() -> int:
    """The process the call ran in."""
    return os.getpid()


def stubborn(pidfile: str) -> str:
    """Note its process id, then never return: every interrupt is caught and ignored."""
    Path(pidfile).write_text(str(os.getpid()))
    while True:
        try:  # noqa: SIM105  (spelled out: this is the pattern that defeats inline timeouts)
            time.sleep(0.1)
        except BaseException:
            pass


def stubborn_parent(pidfile: str) -> str:
    """Start a child that sleeps for a minute, note the child's id, then never return."""
    child = subprocess.Popen(["sleep", "60"])
    Path(pidfile).write_text(str(child.pid))
    return stubborn(pidfile + ".self")


def chatty(stdout_bytes: int, stderr_text: str) -> str:
    """Print a lot to stdout and a line to stderr."""
    sys.stdout.write("x" * stdout_bytes)
    print(stderr_text, file=sys.stderr)
    return "printed"


def crashes(status: int, last_words: str) -> None:
    """Say something on stderr, then end the process without unwinding."""
    sys.stderr.write(last_words + "\n")
    sys.stderr.flush()
    os._exit(status)


def segfaults() -> None:
    """Read address 0."""
    import ctypes

    ctypes.string_at(0)


def asks() -> str:
    """Read a line from standard input."""
    return input()


def chatty_threads(threads: int, lines: int) -> str:
    """Print ``lines`` lines from each of ``threads`` threads of its own, and wait for them."""
    import threading

    def talk(n: int) -> None:
        for i in range(lines):
            print(f"thread {n} line {i}")

    workers = [threading.Thread(target=talk, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return "talked"


def chatty_then_fails(text: str) -> None:
    """Print, then raise."""
    print(text)
    raise ValueError("it went wrong")


def writes_bytes(data: str) -> str:
    """Write through ``sys.stdout.buffer``, as some libraries do."""
    sys.stdout.buffer.write(data.encode() + b"\xff\n")
    return "wrote"


def slow_talker(name: str, lines: int, pause_s: float) -> str:
    """Print ``lines`` numbered lines, pausing between them (calls overlap in time)."""
    for i in range(lines):
        print(f"{name} {i}")
        time.sleep(pause_s)
    return name


def talk_and_nap(seconds: float) -> str:
    """Say something, then nap: a call that prints and takes a while (the live view and
    Ctrl-C go on meanwhile)."""
    print("the tool says hi")
    time.sleep(seconds)
    return "rested"


def flood(megabytes: int) -> str:
    """Print ``megabytes`` MiB to stdout, a MiB a line, then one line to stderr."""
    line = "z" * ((1 << 20) - 1)
    for _ in range(megabytes):
        print(line)
    print("flooded", file=sys.stderr)
    return f"printed {megabytes} MiB"


def beside_python() -> str:
    """Write where an inline capture cannot see — file descriptor 1 itself, and a child
    process that inherits it — and through the channels it can: a warning, a log record."""
    import logging
    import warnings

    os.write(1, b"written to fd 1 directly\n")
    subprocess.run(["echo", "a child process on fd 1"], check=True)
    warnings.warn("a warning from the tool", stacklevel=1)
    logging.getLogger("tests.tool").warning("a log record from the tool")
    return "wrote beside"
