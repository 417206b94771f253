"""The terminal while a prompt has it: shared by the approval and the pause prompts."""

from __future__ import annotations

import contextlib
import signal
import termios
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def prompt_mode(fd: int) -> Iterator[None]:
    """Line input with echo and Ctrl-C for the prompt, whatever mode the terminal was left
    in; typeahead is discarded, so keys pressed before the prompt appeared never answer it.
    Ctrl-C raises ``KeyboardInterrupt`` here even when the run has its own handler: at a
    prompt it is an answer (stop), never a request to pause."""
    saved = termios.tcgetattr(fd)
    wanted = list(saved)
    wanted[3] |= termios.ICANON | termios.ECHO | termios.ISIG
    if wanted != saved:
        termios.tcsetattr(fd, termios.TCSANOW, wanted)
    termios.tcflush(fd, termios.TCIFLUSH)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler) if in_main else None
    try:
        yield
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
        if wanted != saved:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
