"""`govrun export otel`: runs as OpenTelemetry traces in the observability stack operators
already have (Jaeger, Tempo, Honeycomb, Datadog, LangSmith, Phoenix: anything OTLP).

After the fact, any number of traces, finished or crashed, schema 1 or 2; the same trace
exported twice gives the same trace and span ids, so a backend keeps one copy.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.markup import escape

from govrun.cli.console import err, handle_errors, out

export_app = typer.Typer(
    help="Send runs elsewhere: `govrun export otel` exports traces over OTLP.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class OtlpProtocol(StrEnum):
    http = "http"
    grpc = "grpc"


@export_app.command()
@handle_errors
def otel(
    traces: Annotated[
        list[Path], typer.Argument(help="govrun traces (JSONL).", metavar="TRACE.jsonl...")
    ],
    endpoint: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="The collector, e.g. http://127.0.0.1:4318 (OTLP/HTTP; /v1/traces is added) "
            "or http://127.0.0.1:4317 (gRPC). Default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or "
            "OTEL_EXPORTER_OTLP_ENDPOINT, else localhost.",
            show_default=False,
        ),
    ] = None,
    protocol: Annotated[
        OtlpProtocol | None,
        typer.Option(
            help="http (protobuf) or grpc. Default: OTEL_EXPORTER_OTLP_PROTOCOL, else http.",
            show_default=False,
        ),
    ] = None,
    headers: Annotated[
        list[str] | None,
        typer.Option(
            "--headers",
            metavar="K=V",
            help="A header for every request, e.g. an API key (repeat for more); added to "
            "OTEL_EXPORTER_OTLP_HEADERS.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            metavar="S",
            min=0.001,
            help="Seconds per export request (default: OTEL_EXPORTER_OTLP_TIMEOUT, else 10).",
            show_default=False,
        ),
    ] = None,
    content: Annotated[
        bool,
        typer.Option(
            "--content",
            help="Also export messages, tool arguments and results, as redacted as the trace "
            "holds them. Off by default: content may hold personal data.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print the spans as JSON instead of sending them (needs no extra)."
        ),
    ] = False,
) -> None:
    """Export traces as OpenTelemetry spans (GenAI semantic conventions, with govrun's
    policy decisions, approvals, checks and hash-chain head as attributes). Exit 0 when
    every span was taken, 1 when some could not be sent, 2 for bad input or without the
    `govrun[otel]` extra."""
    from govrun.cli.render.integrity import check_integrity
    from govrun.runtime.views.telemetry.destination import parse_headers, resolve
    from govrun.runtime.views.telemetry.export import trace_spans

    for trace in traces:  # a crashed or altered trace still exports, and the person is told
        check_integrity(trace, doing="export", refuse_altered=False)
    if dry_run:
        plans = [plan for path in traces for plan in trace_spans(path, content=content)]
        plans.sort(key=lambda plan: (plan.trace_id, plan.parent_id is not None, plan.start_ns))
        spans = [plan.as_json() for plan in plans]
        sys.stdout.write(orjson.dumps(spans, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    from govrun.runtime.views.telemetry.export import export_traces
    from govrun.runtime.views.telemetry.sdk import otlp_exporter

    env = os.environ
    destination = resolve(
        endpoint=endpoint,
        protocol=protocol.value if protocol else None,
        headers=parse_headers(headers or []),
        timeout_s=timeout,
        env=env,
    )
    exporter = otlp_exporter(destination)
    where = destination.describe()
    results = export_traces(
        traces, exporter, where=where, say=lambda _said: None, content=content, env=env
    )
    lost = 0
    for result in results:
        name = escape(result.trace)
        if result.lost:
            lost += result.lost
            err.print(
                f"[red]✗[/] {name}: {result.lost} of {result.spans} spans not exported to "
                f"{escape(where)}: {escape(result.problem or 'the exporter failed')}"
            )
        else:
            out.print(
                f"[green]✓[/] {name}: {result.spans} spans of run {escape(result.run_id)} "
                f"exported to {escape(where)}"
            )
    raise typer.Exit(1 if lost else 0)
