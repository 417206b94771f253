"""Span ids and times from the record itself, never from a random generator or the clock:
exporting a trace twice gives the same ids (a backend dedupes), and a replayed, forked or
rolled-back run can point at its parent's root span knowing only the parent's run id."""

from __future__ import annotations

import hashlib
from datetime import datetime

ROOT_SEQ = 0
"""The root span is ``run_started``'s (seq 0)."""


def trace_id(run_id: str) -> int:
    """The 128-bit trace id of a run: the first 16 bytes of SHA-256(``govrun/trace/RUN``)."""
    return _nonzero(hashlib.sha256(f"govrun/trace/{run_id}".encode()).digest()[:16])


def span_id(run_id: str, seq: int) -> int:
    """The 64-bit span id of the span opened by event ``seq`` of a run."""
    return _nonzero(hashlib.sha256(f"govrun/span/{run_id}/{seq}".encode()).digest()[:8])


def _nonzero(digest: bytes) -> int:
    """An all-zero id is invalid in OpenTelemetry; SHA-256 makes one vanishingly unlikely,
    but an id must never be invalid."""
    return int.from_bytes(digest, "big") or 1


class Times:
    """ISO 8601 trace timestamps as Unix nanoseconds. Events written together share one
    timestamp, so the last conversion is remembered."""

    def __init__(self) -> None:
        self._last: tuple[str, int] = ("", 0)

    def ns(self, ts: str) -> int:
        if ts == self._last[0]:
            return self._last[1]
        try:
            value = int(datetime.fromisoformat(ts).timestamp() * 1_000_000) * 1000
        except ValueError:
            value = self._last[1]  # a damaged stamp: keep the timeline where it was
        self._last = (ts, value)
        return value
