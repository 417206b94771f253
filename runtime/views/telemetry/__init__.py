"""OpenTelemetry export: a run as GenAI-convention spans, with its governance on them.

Three layers, so that the kernel needs no OpenTelemetry package to run or to plan spans:
:mod:`.mapping` turns trace events into :class:`.spans.SpanPlan` s (pure: ids from the run
id and event seq, times from recorded timestamps), :mod:`.sdk` hands plans to the
OpenTelemetry SDK and its OTLP exporters (the optional extra ``govrun[otel]``), and
:mod:`.export` / :mod:`.live` drive it after the fact or from a run's observer callback.
"""
