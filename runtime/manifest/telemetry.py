"""The manifest's `telemetry:` section: where a run's OpenTelemetry spans go while it runs.

Telemetry is where a run is *watched*, not what it does: the section is validated and used
by every live run, but it is left out of the manifest snapshot recorded in the trace, so a
run exported live writes the same trace (and manifest hash) as the same run without it, and
header values (collector API keys) never reach a trace.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from govrun.runtime.manifest.fields import PositiveNumber, Section, Text, Url

Protocol = Literal["http", "grpc"]


class Otlp(Section):
    """An OTLP collector or backend (Jaeger, Tempo, Honeycomb, Phoenix, ...)."""

    endpoint: Url | None = Field(
        None,
        description="The collector's URL, e.g. http://127.0.0.1:4318 (OTLP/HTTP: /v1/traces "
        "is added unless the URL ends in it) or http://127.0.0.1:4317 (gRPC); default "
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, else the "
        "protocol's localhost port.",
    )
    protocol: Protocol | None = Field(
        None,
        description="http (OTLP/HTTP protobuf) or grpc; default OTEL_EXPORTER_OTLP_PROTOCOL "
        "(http/protobuf or grpc), else http.",
    )
    headers: dict[Text, str] = Field(
        default_factory=dict,
        description="Headers sent with every export, e.g. an API key as ${ENV}; added to "
        "OTEL_EXPORTER_OTLP_HEADERS. Never recorded in the trace.",
    )
    timeout_s: PositiveNumber = Field(
        10.0,
        description="Bounds each export request, and how long the end of a run waits for "
        "its last spans to leave. An unreachable or hanging collector never slows the run.",
    )


class Telemetry(Section):
    """Export the run as OpenTelemetry spans (GenAI semantic conventions) while it runs.
    Needs the optional extra: pip install 'govrun[otel]'."""

    otlp: Otlp = Field(description="Where the spans go.")
    capture_content: bool = Field(
        False,
        description="Also export message content and tool arguments and results (as "
        "redacted as the trace holds them). Off by default: content may hold personal data.",
    )
