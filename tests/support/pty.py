"""Driving a real process on a pseudo-terminal: what the person at the terminal sees."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pexpect
import pytest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|\x1b[=>78]")
WAIT_S = 15.0
"""Generous for one screen or one prompt; every wait is bounded by it."""


class Screen:
    """One process on a pseudo-terminal and everything it has shown so far."""

    def __init__(self, argv: list[str], *, rows: int, cols: int, cwd: Path | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
        env.update(TERM="xterm", COLUMNS=str(cols), LINES=str(rows))
        self.child = pexpect.spawn(
            argv[0],
            argv[1:],
            cwd=str(cwd) if cwd else None,
            env=env,
            dimensions=(rows, cols),
            encoding="utf-8",
            codec_errors="replace",
            timeout=WAIT_S,
        )
        self.raw = ""
        self.eof = False

    @property
    def screen(self) -> str:
        """Everything shown so far, without escape sequences or carriage returns."""
        return ANSI.sub("", self.raw).replace("\r", "")

    def _read(self, timeout: float) -> None:
        try:
            self.raw += self.child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            pass
        except pexpect.EOF:
            self.eof = True

    def wait_for(self, text: str, *, after: int = 0, timeout: float = WAIT_S) -> int:
        """Wait until ``text`` is on screen (after position ``after``); return where."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.screen.find(text, after)
            if found >= 0:
                return found
            if self.eof or time.monotonic() > deadline:
                why = "the process ended" if self.eof else f"{timeout:.0f} s passed"
                pytest.fail(f"{text!r} never appeared ({why}); screen:\n{self.screen[-3000:]}")
            self._read(0.1)
