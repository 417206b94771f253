"""Functions for worker-pool tests: importable by spawned worker processes."""

from __future__ import annotations

import os
import signal

WARMED = False


def warm_up() -> None:
    global WARMED
    WARMED = True


def die_on_three(item: int) -> int:
    """Ten times ``item``; item 3 kills its own process, as the kernel's OOM killer would.
    A worker that was not warmed first fails instead."""
    if not WARMED:
        raise RuntimeError("not warmed")
    if item == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return item * 10
