"""Spans as plain data, before any OpenTelemetry object exists: what `--dry-run` prints and
what :mod:`govrun.runtime.views.telemetry.sdk` hands to the SDK."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

AttributeValue = str | bool | int | float | list[str] | list[int] | list[float] | list[bool]
Attributes = dict[str, AttributeValue]
Kind = Literal["internal", "client"]
StatusCode = Literal["unset", "ok", "error"]


@dataclass(frozen=True)
class SpanEvent:
    """Something that happened inside a span, at a recorded time."""

    name: str
    time_ns: int
    attributes: Attributes


@dataclass(frozen=True)
class SpanLink:
    """A pointer to another run's root span (the parent of a replay, fork or rollback)."""

    trace_id: int
    span_id: int
    attributes: Attributes


@dataclass
class SpanPlan:
    """One span, complete once ``end_ns`` is set."""

    name: str
    trace_id: int
    span_id: int
    parent_id: int | None
    kind: Kind
    start_ns: int
    end_ns: int = 0
    attributes: Attributes = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)
    links: list[SpanLink] = field(default_factory=list)
    status: StatusCode = "unset"
    description: str = ""

    def fail(self, description: str, error_type: str | None = None) -> None:
        """Mark the span failed; the first failure is the one it reports."""
        if self.status != "error":
            self.status, self.description = "error", description
            if error_type:
                self.attributes["error.type"] = error_type

    def as_json(self) -> dict[str, Any]:
        """The span as JSON, ids in the hex form backends show."""
        return {
            "name": self.name,
            "trace_id": f"{self.trace_id:032x}",
            "span_id": f"{self.span_id:016x}",
            "parent_span_id": f"{self.parent_id:016x}" if self.parent_id else None,
            "kind": self.kind,
            "start_time": _iso(self.start_ns),
            "end_time": _iso(self.end_ns),
            "status": {"code": self.status, "description": self.description or None},
            "attributes": dict(sorted(self.attributes.items())),
            "events": [
                {"name": e.name, "time": _iso(e.time_ns), "attributes": e.attributes}
                for e in self.events
            ],
            "links": [
                {
                    "trace_id": f"{link.trace_id:032x}",
                    "span_id": f"{link.span_id:016x}",
                    "attributes": link.attributes,
                }
                for link in self.links
            ],
        }


def _iso(ns: int) -> str:
    moment = datetime.fromtimestamp(ns // 1000 / 1_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def clean(attributes: dict[str, Any]) -> Attributes:
    """Attributes without the unset ones (OpenTelemetry has no null)."""
    return {k: v for k, v in attributes.items() if v is not None and v != []}
