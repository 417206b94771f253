"""Where spans go: an OTLP endpoint, protocol, headers and timeout, from the command line or
the manifest first and the standard ``OTEL_EXPORTER_OTLP_*`` environment variables after,
resolved once so that what govrun says ("exporting to …") is where the exporter sends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from govrun.runtime.errors import GovrunError

Protocol = Literal["http", "grpc"]
TRACES_PATH = "/v1/traces"
DEFAULTS: dict[str, str] = {"http": "http://localhost:4318", "grpc": "http://localhost:4317"}
_PROTOCOLS: dict[str, Protocol] = {"http/protobuf": "http", "http": "http", "grpc": "grpc"}


@dataclass(frozen=True)
class Destination:
    """A resolved OTLP destination."""

    endpoint: str
    protocol: Protocol
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    """Per export request; None: the exporter's (OTEL_EXPORTER_OTLP_TIMEOUT, else 10 s)."""

    def describe(self) -> str:
        return f"{self.endpoint} (OTLP/{'gRPC' if self.protocol == 'grpc' else 'HTTP'})"


def resolve(
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    env: Mapping[str, str],
) -> Destination:
    """The destination the given settings and the environment name. Header values given
    here are added to those of ``OTEL_EXPORTER_OTLP_(TRACES_)HEADERS`` (the exporters read
    those themselves; gRPC's is merged here, since it would otherwise replace them)."""
    chosen = protocol or env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    chosen = chosen or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http"
    kind = _PROTOCOLS.get(chosen.strip().lower())
    if kind is None:
        raise GovrunError(
            f"OTLP protocol {chosen!r} is not one govrun exports with.",
            hint="Use http (OTLP/HTTP protobuf, the default) or grpc.",
        )
    url = endpoint or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if url is None:  # the base URL: OTLP/HTTP adds the signal's path to it
        url = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULTS[kind]
        url = _with_traces_path(url) if kind == "http" else url
    elif endpoint is not None and kind == "http":
        url = _with_traces_path(url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise GovrunError(
            f"OTLP endpoint {url!r} is not an http(s) URL.",
            hint="Give the collector's URL, e.g. http://127.0.0.1:4318 (HTTP) or "
            "http://127.0.0.1:4317 (gRPC).",
        )
    merged = dict(headers or {})
    if kind == "grpc":
        merged = {**_env_headers(env), **merged}
    return Destination(url, kind, merged, timeout_s)


def _with_traces_path(url: str) -> str:
    """A collector's base URL with the OTLP/HTTP traces path (kept if already there)."""
    trimmed = url.rstrip("/")
    return trimmed if trimmed.endswith(TRACES_PATH) else trimmed + TRACES_PATH


def _env_headers(env: Mapping[str, str]) -> dict[str, str]:
    text = env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS")
    pairs = (item.split("=", 1) for item in (text or "").split(",") if "=" in item)
    return {key.strip().lower(): value.strip() for key, value in pairs if key.strip()}


def parse_headers(items: list[str]) -> dict[str, str]:
    """``K=V`` strings from the command line as headers."""
    headers: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise GovrunError(
                f"--headers {item!r} is not KEY=VALUE.",
                hint="e.g. --headers 'x-honeycomb-team=YOUR_KEY' (repeat for more).",
            )
        headers[key.strip()] = value.strip()
    return headers
