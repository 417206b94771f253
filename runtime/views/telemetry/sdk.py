"""The OpenTelemetry SDK side: span plans as SDK spans, OTLP exporters, and an exporter
wrapper that counts what left and says once why something did not.

Everything OpenTelemetry is imported here, only when a command or run asks for export: the
packages are the optional extra ``govrun[otel]``, and without them :func:`require_otel`
says how to install it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from govrun.runtime import __version__
from govrun.runtime.errors import GovrunError
from govrun.runtime.views.telemetry.destination import Destination
from govrun.runtime.views.telemetry.spans import SpanPlan

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

INSTALL = "pip install 'govrun[otel]'"
SCOPE = "govrun"
_SDK_LOGGERS = ("opentelemetry.exporter.otlp", "opentelemetry.sdk._shared_internal")
"""Loggers of the exporters and the batch processor: they log every failed batch and retry;
govrun says it once itself (:class:`Reporting`)."""

Say = Callable[[str], None]


def require_otel(protocol: str = "http") -> None:
    """Import the SDK and the protocol's exporter, or say how to install them."""
    try:
        import opentelemetry.sdk.trace

        if protocol == "grpc":
            import opentelemetry.exporter.otlp.proto.grpc.trace_exporter
        else:
            import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
    except ImportError as exc:
        missing = exc.name or "opentelemetry"
        raise GovrunError(
            f"OpenTelemetry export needs the optional extra govrun[otel] ({missing} is not "
            "installed).",
            hint=f"Install it: {INSTALL}",
        ) from None


def resource(env: Mapping[str, str]) -> Resource:
    """The ``service.*`` resource: govrun, unless OTEL_SERVICE_NAME or
    OTEL_RESOURCE_ATTRIBUTES name the service (the SDK reads both)."""
    from opentelemetry.sdk.resources import Resource

    named = "OTEL_SERVICE_NAME" in env or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    base = {"service.version": __version__, **({} if named else {"service.name": "govrun"})}
    return Resource.create(base)


class Converter:
    """Span plans to SDK ``ReadableSpan`` s (what every SDK exporter takes)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self._resource = resource(env)
        self._scope = InstrumentationScope(SCOPE, __version__)

    def __call__(self, plan: SpanPlan) -> ReadableSpan:
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags
        from opentelemetry.trace.status import Status, StatusCode

        sampled = TraceFlags(TraceFlags.SAMPLED)

        def context(trace: int, span: int, *, remote: bool = False) -> SpanContext:
            return SpanContext(trace, span, is_remote=remote, trace_flags=sampled)

        code = {"ok": StatusCode.OK, "error": StatusCode.ERROR}.get(plan.status, StatusCode.UNSET)
        return ReadableSpan(
            name=plan.name,
            context=context(plan.trace_id, plan.span_id),
            parent=context(plan.trace_id, plan.parent_id) if plan.parent_id else None,
            resource=self._resource,
            # sequences as the SDK's tracer records them (the plan's values are already valid)
            attributes={
                k: tuple(v) if isinstance(v, list) else v for k, v in plan.attributes.items()
            },
            events=[Event(e.name, e.attributes, e.time_ns) for e in plan.events],
            links=[
                Link(context(link.trace_id, link.span_id, remote=True), link.attributes)
                for link in plan.links
            ],
            kind=SpanKind.CLIENT if plan.kind == "client" else SpanKind.INTERNAL,
            status=Status(code, plan.description if code is StatusCode.ERROR else None),
            start_time=plan.start_ns,
            end_time=plan.end_ns,
            instrumentation_scope=self._scope,
        )


def otlp_exporter(destination: Destination) -> SpanExporter:
    """The SDK's OTLP exporter for ``destination``."""
    require_otel(destination.protocol)
    if destination.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(
            endpoint=destination.endpoint,
            headers=destination.headers or None,
            timeout=destination.timeout_s,
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(
        endpoint=destination.endpoint,
        headers=destination.headers or None,
        timeout=destination.timeout_s,
    )


class _Heard(logging.Handler):
    """Keeps the first warning the SDK's exporters logged since :func:`reporting`'s export
    began a batch: the reason behind a failure (later ones say it gave up)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.first = ""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING and not self.first:
            self.first = record.getMessage()


_HEARD = _Heard()
_QUIET = threading.Lock()


def quiet_sdk_logs() -> _Heard:
    """Route the exporters' per-batch warnings to govrun (which says the first one) instead
    of stderr, where they would repeat for every batch and break a live view. Process-wide
    and idempotent: these loggers belong to exporting, which govrun is then doing."""
    with _QUIET:
        for name in _SDK_LOGGERS:
            logger = logging.getLogger(name)
            if _HEARD not in logger.handlers:
                logger.addHandler(_HEARD)
            logger.propagate = False
    return _HEARD


def reporting(inner: SpanExporter, *, where: str, say: Say) -> Any:
    """``inner`` wrapped to count spans sent and lost, and to say the first failure once
    (an unreachable collector would otherwise be reported for every batch). The result is
    a SpanExporter with ``sent`` and ``lost`` (span counts) and ``problem`` (the first
    failure, or None)."""
    return _reporting_class()(inner, where=where, say=say)


_REPORTING: type[Any] | None = None


_CAUSES = (
    ("Connection refused", "connection refused: is a collector listening there?"),
    ("Name or service not known", "the host name does not resolve"),
    ("nodename nor servname", "the host name does not resolve"),
    ("Temporary failure in name resolution", "the host name does not resolve"),
    ("CERTIFICATE_VERIFY_FAILED", "the collector's TLS certificate is not trusted"),
    ("timed out", "no answer within the export timeout"),
)
"""What the exporters' transport errors mean, by the text they carry (the HTTP and gRPC
exporters word the same failure differently)."""
_RETRY = re.compile(
    r",? retrying in [0-9.]+s\.?|encountered while exporting (spans batch|traces to \S+)"
)


def _plain(logged: str) -> str:
    """The exporter's first complaint in a few words: what it means when it is a known
    transport failure, else its text without the retry chatter."""
    if not logged:
        return "the exporter reported a failure"
    if "due to timeout, max retries or shutdown" in logged:
        return "no answer within the export timeout: is a collector listening there?"
    for needle, meaning in _CAUSES:
        if needle in logged:
            return meaning
    return " ".join(_RETRY.sub("", logged).split())


def _reporting_class() -> type[Any]:
    """The wrapper class, made on first use so that this module imports without the SDK."""
    global _REPORTING
    if _REPORTING is not None:
        return _REPORTING
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class _Reporting(SpanExporter):
        def __init__(self, inner: SpanExporter, *, where: str, say: Say) -> None:
            self.inner, self.where, self._say = inner, where, say
            self.sent = self.lost = 0
            self.problem: str | None = None
            self._heard = quiet_sdk_logs()

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            self._heard.first = ""
            try:
                result = self.inner.export(spans)
            except Exception as exc:  # an exporter bug must not reach the run: count, say
                result, self._heard.first = SpanExportResult.FAILURE, str(exc)
            if result is SpanExportResult.SUCCESS:
                self.sent += len(spans)
                return result
            self.lost += len(spans)
            if self.problem is None:
                self.problem = _plain(self._heard.first)
                self._say(f"telemetry: could not export spans to {self.where} ({self.problem})")
            return result

        def shutdown(self) -> None:
            self.inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return bool(self.inner.force_flush(timeout_millis))

    _REPORTING = _Reporting
    return _Reporting
