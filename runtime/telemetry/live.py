"""Live export: a run's observer that turns each event into the spans it ends and hands
them to the SDK's batch processor, which exports from its own thread.

Nothing here can slow, fail or alter the run: the observer only maps an event and queues
finished spans (the batch processor drops spans rather than block when its queue is full);
export happens on the processor's thread; an unreachable or hanging collector is said once;
and any error in mapping stops the export, never the run. The end of the run waits at most
the destination's timeout for the last spans to leave.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from govrun.runtime.manifest.telemetry import Telemetry
from govrun.runtime.telemetry.destination import Destination, resolve
from govrun.runtime.telemetry.mapping import SpanMapper
from govrun.runtime.telemetry.sdk import Converter, Say, otlp_exporter, reporting
from govrun.runtime.trace.events import Event

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

DEFAULT_WAIT_S = 10.0
"""How long the end of a run waits for its last spans without a configured timeout."""

_log = logging.getLogger("govrun.runtime.telemetry")


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
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.destination = destination_of(telemetry, env)
        self._say = _Once(say or _log.warning)
        inner = exporter if exporter is not None else otlp_exporter(self.destination)
        self.exporter: Any = reporting(inner, where=self.destination.describe(), say=self._say)
        self._processor = BatchSpanProcessor(self.exporter, schedule_delay_millis=1000)
        self._mapper = SpanMapper(trace_path=str(trace_path), content=telemetry.capture_content)
        self._convert = Converter(env)
        self._wait_s = telemetry.otlp.timeout_s or DEFAULT_WAIT_S
        self._stopped = False

    def __call__(self, event: Event) -> None:
        if self._stopped:
            return
        try:
            for plan in self._mapper.feed(event):
                self._processor.on_end(self._convert(plan))
        except Exception as exc:  # telemetry must never reach the run: stop exporting, say so
            self._stop(f"telemetry stopped: could not map event {event.seq} ({exc})")

    def close(self) -> None:
        """End what is still open (a run that halted) and let the last spans leave, waiting
        at most the destination's timeout."""
        if not self._stopped:
            try:
                for plan in self._mapper.close():
                    self._processor.on_end(self._convert(plan))
            except Exception as exc:  # as in __call__
                self._say(f"telemetry stopped: could not end the run's spans ({exc})")
        self._stopped = True
        # the processor's own shutdown may wait 30 s on a hanging collector: bound it
        ending = threading.Thread(target=self._processor.shutdown, name="govrun-otel-end")
        ending.daemon = True
        ending.start()
        ending.join(self._wait_s)
        if ending.is_alive():
            self._say(
                f"telemetry: {self.destination.describe()} did not take the last spans "
                f"within {self._wait_s:g}s; they are dropped"
            )

    def _stop(self, message: str) -> None:
        self._stopped = True
        self._say(message)


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
