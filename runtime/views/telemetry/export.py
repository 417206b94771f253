"""Export finished (or crashed) traces after the fact: read each as schema 2, map it to
spans, and hand them to an exporter in batches, counting what left.

A schema-1 trace is read through :class:`~govrun.runtime.trace.record.Record`, which shows
it as the schema-2 events of the same run; span ids use the file's own seq, so they do not
depend on how the reader shapes the events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from govrun.runtime.errors import TraceError
from govrun.runtime.trace.canonical import blob_dir
from govrun.runtime.trace.events import parse_event
from govrun.runtime.trace.record import Record
from govrun.runtime.views.telemetry.mapping import SpanMapper
from govrun.runtime.views.telemetry.sdk import Converter, Say, reporting
from govrun.runtime.views.telemetry.spans import SpanPlan

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

BATCH = 512
"""Spans per export request (the SDK batch processor's default batch)."""


@dataclass(frozen=True)
class Exported:
    """What one trace's export did."""

    trace: str
    run_id: str
    spans: int
    sent: int
    lost: int
    problem: str | None


def trace_spans(path: str | Path, *, content: bool = False) -> list[SpanPlan]:
    """Every span of the run in ``path``; message content and tool arguments and results
    only with ``content`` (as redacted as the trace holds them)."""
    record = Record.load(path)
    mapper = SpanMapper(trace_path=str(path), content=content)
    spans: list[SpanPlan] = []
    blobs = blob_dir(path).is_dir()  # without a sidecar folder, no event refers to one
    for seq, stored in enumerate(record.events):
        data = (
            stored if not blobs else record.resolved(stored) if content else _without_blobs(stored)
        )
        if record.origins is not None:
            data = {**data, "seq": record.origins[seq][0][0]}
        try:
            event = parse_event(data)
        except ValidationError as exc:
            where = f"{path}: event {data.get('seq')} ({data.get('type')})"
            raise TraceError(f"{where} is not a valid govrun event: {_first(exc)}") from None
        spans += mapper.feed(event)
    return spans + mapper.close()


def export_traces(
    paths: Sequence[str | Path],
    exporter: SpanExporter,
    *,
    where: str,
    say: Say,
    content: bool = False,
    env: Mapping[str, str],
) -> list[Exported]:
    """Export each trace's spans through ``exporter`` (shut down at the end). Every trace is
    read before anything is sent, so a bad one exports nothing."""
    planned = [(str(path), trace_spans(path, content=content)) for path in paths]
    convert = Converter(env)
    counted = reporting(exporter, where=where, say=say)
    results: list[Exported] = []
    try:
        for path, spans in planned:
            sent, lost = counted.sent, counted.lost
            for start in range(0, len(spans), BATCH):
                counted.export([convert(plan) for plan in spans[start : start + BATCH]])
            run_id = spans[-1].attributes.get("govrun.run_id", "") if spans else ""
            results.append(
                Exported(
                    path,
                    str(run_id),
                    len(spans),
                    counted.sent - sent,
                    counted.lost - lost,
                    counted.problem if counted.lost > lost else None,
                )
            )
    finally:
        counted.shutdown()
    return results


def _without_blobs(value: Any) -> Any:
    """A stored payload with its sidecar references as short placeholders: without
    ``--content`` no large string is exported, so none is read."""
    if isinstance(value, dict):
        if "$blob" in value and len(value) == 2 and "size" in value:
            return f"[{value['size']} bytes in the trace's blob folder]"
        return {key: _without_blobs(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_blobs(item) for item in value]
    return value


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
