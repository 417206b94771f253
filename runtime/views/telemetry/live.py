"""Live export: a run's observer that turns each event into the spans it ends and hands
them to the SDK's batch processor, which exports from its own thread.

Nothing here can slow, fail or alter the run: the observer only appends the event to a
queue; a thread of its own maps events to spans and hands them to the SDK's batch
processor, which exports from its thread and drops spans rather than block when its queue
is full; an unreachable or hanging collector is said once; any error in mapping stops the
export, never the run. The end of the run waits at most the destination's timeout for the
last spans to leave.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from govrun.runtime.manifest.telemetry import Telemetry
from govrun.runtime.trace.events import Event
from govrun.runtime.trace.writer import Observer
from govrun.runtime.views.telemetry.destination import Destination, resolve
from govrun.runtime.views.telemetry.mapping import SpanMapper
from govrun.runtime.views.telemetry.sdk import (
    Converter,
    Say,
    otlp_exporter,
    reporting,
    require_otel,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

_QUEUE = 65_536
"""Spans the batch processor holds before it drops (its default, 2,048, is a few hundred
steps of a fast agent)."""
_WAKE_AT = 256
"""Events queued before the mapping thread is woken early."""
_MAP_EVERY_S = 0.2
"""How often the mapping thread looks at the queue otherwise."""

DEFAULT_WAIT_S = 10.0
"""How long the end of a run waits for its last spans without a configured timeout."""

_log = logging.getLogger("govrun.runtime.views.telemetry")


def destination_of(telemetry: Telemetry, env: Mapping[str, str]) -> Destination:
    """Where a manifest's `telemetry.otlp` sends, environment variables filling the gaps."""
    otlp = telemetry.otlp
    return resolve(
        endpoint=otlp.endpoint,
        protocol=otlp.protocol,
        headers=otlp.headers,
        timeout_s=otlp.timeout_s,
        env=env,
    )


class LiveExport:
    """An observer (``run_agent(observers=[...])``) exporting the run as it goes."""

    def __init__(
        self,
        telemetry: Telemetry,
        *,
        trace_path: str | Path,
        env: Mapping[str, str],
        say: Say | None = None,
        exporter: SpanExporter | None = None,
    ) -> None:
        """Refuses (GovrunError) before the run starts if the extra is missing or the
        destination is not a URL; ``exporter`` replaces the OTLP one (tests, embedders)."""
        self.destination = destination_of(telemetry, env)
        require_otel(self.destination.protocol)
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self._say = _Once(say or _log.warning)
        inner = exporter if exporter is not None else otlp_exporter(self.destination)
        self.exporter: Any = reporting(inner, where=self.destination.describe(), say=self._say)
        self._processor = BatchSpanProcessor(
            self.exporter, max_queue_size=_QUEUE, schedule_delay_millis=1000
        )
        self._mapper = SpanMapper(trace_path=str(trace_path), content=telemetry.capture_content)
        self._convert = Converter(env)
        self._wait_s = telemetry.otlp.timeout_s or DEFAULT_WAIT_S
        self._stopped = False
        self._queue: deque[Event | None] = deque()
        self._wake = threading.Event()
        self._mapping = threading.Thread(target=self._map, name="govrun-otel-map", daemon=True)
        self._mapping.start()

    def __call__(self, event: Event) -> None:
        """The observer: O(1) on the loop's thread."""
        self._queue.append(event)
        if len(self._queue) >= _WAKE_AT:
            self._wake.set()

    def close(self) -> None:
        """End what is still open (a run that halted) and let the last spans leave, waiting
        at most the destination's timeout."""
        self._queue.append(None)
        self._wake.set()
        started = time.monotonic()
        self._mapping.join(self._wait_s)
        wait = max(0.0, self._wait_s - (time.monotonic() - started))
        # the processor's own shutdown may wait 30 s on a hanging collector: bound it
        ending = threading.Thread(target=self._processor.shutdown, name="govrun-otel-end")
        ending.daemon = True
        ending.start()
        ending.join(wait)
        if ending.is_alive():
            self._say(
                f"telemetry: {self.destination.describe()} did not take the last spans "
                f"within {self._wait_s:g}s; they are dropped"
            )

    def _map(self) -> None:
        """The mapping thread: events to spans to the batch processor, until the run ends
        (None) or mapping fails (then the export stops; the run goes on)."""
        while True:
            self._wake.wait(_MAP_EVERY_S)
            self._wake.clear()
            while self._queue:
                event = self._queue.popleft()
                if event is None:
                    self._end()
                    return
                self._feed(event)

    def _feed(self, event: Event) -> None:
        if self._stopped:
            return
        try:
            for plan in self._mapper.feed(event):
                self._processor.on_end(self._convert(plan))
        except Exception as exc:  # telemetry must never reach the run: stop, say
            self._stopped = True
            self._say(f"telemetry stopped: could not map event {event.seq} ({exc})")

    def _end(self) -> None:
        if self._stopped:
            return
        try:
            for plan in self._mapper.close():
                self._processor.on_end(self._convert(plan))
        except Exception as exc:  # as in _map
            self._say(f"telemetry stopped: could not end the run's spans ({exc})")
        self._stopped = True


@contextlib.contextmanager
def watching(
    telemetry: Telemetry | None, *, trace_path: str | Path, env: Mapping[str, str], say: Say
) -> Iterator[list[Observer]]:
    """Observers (none, or a :class:`LiveExport`) for a live run, closed when it ends: for
    runs that do not go through :func:`govrun.runtime.run.run_agent` (fork, resume)."""
    if telemetry is None:
        yield []
        return
    live = LiveExport(telemetry, trace_path=trace_path, env=env, say=say)
    try:
        yield [live]
    finally:
        live.close()


class _Once:
    """Says the first thing only: an unreachable collector is one message per run, whether
    the exporter's thread or the end of the run notices first."""

    def __init__(self, say: Say) -> None:
        self._say = say
        self._lock = threading.Lock()
        self._said = False

    def __call__(self, text: str) -> None:
        with self._lock:
            if self._said:
                return
            self._said = True
        self._say(text)
