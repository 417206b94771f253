"""The inspector's screen as plain text, for assertions and README captures."""

from __future__ import annotations

import asyncio
import functools
import io
import time
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec

from rich.console import Console
from textual.app import App
from textual.pilot import Pilot

P = ParamSpec("P")


def screen_text(app: App[object]) -> str:
    """What the terminal shows right now, one line per row, without colours."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return "\n".join(line.rstrip() for line in console.export_text(styles=False).splitlines())


def notices(app: App[object]) -> list[str]:
    """The messages of the notifications (toasts) the app is showing."""
    return [n.message for n in app._notifications]


def asynced(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an ``async def`` test with ``asyncio.run``: Pilot tests without a pytest plugin."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


async def wait_for(
    pilot: Pilot[object], condition: Callable[[], bool], timeout: float = 5.0
) -> None:
    """Let the app run until ``condition()`` holds (a worker finished, a poll saw new events)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the app did not get there in time")
        await pilot.pause(0.02)
