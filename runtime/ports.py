"""The ports: everything non-deterministic the kernel needs crosses one of these.

Live adapters and replay adapters implement the same protocols, so replay runs the same
loop code. Nothing in the deterministic core reads a clock, a random source or the
environment directly.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Wall time for timestamps and monotonic time for durations and budgets."""

    def now(self) -> str:
        """Current UTC time as ISO 8601 with microseconds and a trailing ``Z``."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; only differences mean anything."""
        ...


class SystemClock:
    """The live clock. Formats timestamps from a per-second cached prefix: every event asks
    for one, and ``strftime`` alone would cost more than the rest of a trace write."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        second, micros = divmod(time.time_ns() // 1000, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{micros:06d}Z"

    def monotonic(self) -> float:
        return time.monotonic()


class FixedClock:
    """A clock that ticks a fixed amount per reading: deterministic traces for tests and
    golden fixtures."""

    def __init__(self, start: float = 1_790_000_000.0, tick: float = 0.001) -> None:
        self._t = start
        self._tick = tick

    def now(self) -> str:
        self._t += self._tick
        return datetime.fromtimestamp(self._t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def monotonic(self) -> float:
        self._t += self._tick
        return self._t
