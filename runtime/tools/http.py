"""http.get: fetch one URL from an allowlisted host, following redirects by hand.

The URL is parsed with the HTTP client's own parser (``httpx.URL``), so the host we check
is the host the client connects to — no parser differential. Anything ambiguous is
denied rather than interpreted: userinfo, backslashes, IPv4 spelled in decimal, octal, hex
or short form, IPv4-mapped IPv6, unlisted ports. Redirects are never followed by the
client: each hop's target is checked against the allowlist *before* connecting.
"""

from __future__ import annotations

import codecs
import hashlib
import ipaddress
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any

from pydantic import Field

from govrun.runtime.tools.base import (
    ArgsModel,
    BaseTool,
    Canonical,
    Kinds,
    ScopeViolation,
    ToolConfigError,
    ToolResult,
    ToolTimeout,
)
from govrun.runtime.tools.deadline import ConnectionGuard, Exchange


def _import_httpx() -> ModuleType:
    try:
        import httpx
    except ImportError:  # openai>=3 depends on the fork, which keeps httpx's API
        import httpx2 as httpx  # type: ignore[no-redef]
    return httpx


class _Httpx:
    """The HTTP client, imported on first use: policies import this module for its host
    rules, and every command would otherwise pay for the client (~35 ms) it never uses."""

    def __getattr__(self, name: str) -> Any:
        module = _import_httpx()
        globals()["httpx"] = module  # from now on, the module itself
        return getattr(module, name)


if TYPE_CHECKING:
    import httpx
else:
    httpx = _Httpx()

MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")
_ENTRY_PORT = re.compile(r"(.+):([0-9]{1,5})")
_BRACKETED = re.compile(r"\[([0-9a-f:.]+)\](?::([0-9]{1,5}))?")


@dataclass(frozen=True)
class HostRule:
    """One allowlist entry: an exact host (name or canonical IP), or ``*.suffix`` for
    subdomains only; ``port`` None means the scheme's default port only."""

    host: str
    wildcard: bool
    port: int | None

    def matches(self, host: str, port: int | None, scheme: str) -> bool:
        host_ok = host.endswith("." + self.host) if self.wildcard else host == self.host
        if self.port is None:
            return host_ok and port is None
        return host_ok and (port or _DEFAULT_PORTS[scheme]) == self.port


def parse_host_rule(entry: str) -> HostRule:
    """Parse ``api.github.com``, ``*.example.org``, ``127.0.0.1:8080`` or ``[::1]:8080``."""
    text = entry.strip().lower()
    wildcard = text.startswith("*.")
    if wildcard:
        text = text[2:]
    port: int | None = None
    if m := _BRACKETED.fullmatch(text):
        host, port = _canonical_ipv6(m.group(1), entry), _port(m.group(2), entry)
    else:
        if m := _ENTRY_PORT.fullmatch(text):
            text, port = m.group(1), _port(m.group(2), entry)
        host = _canonical_name(text, entry)
    if wildcard and _ip(host) is not None:
        raise ToolConfigError(f"host entry {entry!r}: wildcards apply to names, not IPs")
    return HostRule(host=host, wildcard=wildcard, port=port)


def _port(text: str | None, entry: str) -> int | None:
    if text is None:
        return None
    port = int(text)
    if not 0 < port < 65536:
        raise ToolConfigError(f"host entry {entry!r}: port {port} out of range")
    return port


def _canonical_name(text: str, entry: str) -> str:
    """Lower-case, IDNA-encoded, without trailing dot: the form ``check_url`` compares."""
    try:
        host = httpx.URL(f"http://{text}/").raw_host.decode("ascii").rstrip(".")
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise ToolConfigError(f"host entry {entry!r} is not a valid host: {exc}") from None
    if not host or "*" in host:
        raise ToolConfigError(f"host entry {entry!r} is not a valid host")
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        ip = _ip(host)
        if ip is None or str(ip) != host:
            raise ToolConfigError(f"host entry {entry!r}: IPs must be canonical dotted quads")
    return host


def _canonical_ipv6(text: str, entry: str) -> str:
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError as exc:
        raise ToolConfigError(f"host entry {entry!r}: {exc}") from None


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class UrlArgs(ArgsModel):
    url: str = Field(max_length=8192, description="An http(s) URL on an allowed host.")


class HttpGet(BaseTool):
    """GET one URL from an allowlisted host; the body is size-limited."""

    args_model = UrlArgs
    kinds: Kinds = MappingProxyType({"url": frozenset({"url"})})
    default_description = "Fetch a URL with HTTP GET from an allowed host."

    def __init__(
        self,
        *,
        name: str,
        hosts: list[str],
        description: str | None = None,
        timeout_s: float = 30.0,
        max_output_bytes: int = 65536,
    ) -> None:
        super().__init__(
            name=name,
            description=description,
            timeout_s=timeout_s,
            max_output_bytes=max_output_bytes,
        )
        if not hosts:
            raise ToolConfigError(f"tool {name!r}: http.get needs at least one scope.hosts entry")
        self.rules = [parse_host_rule(h) for h in hosts]
        if self.description == self.default_description:
            self.description += " Allowed hosts: " + ", ".join(hosts) + "."

    @classmethod
    def from_scope(
        cls,
        *,
        name: str,
        description: str | None,
        roots: list[Path],
        commands: dict[str, Any],
        hosts: list[str],
        cwd: Path | None,
        timeout_s: float,
        max_output_bytes: int,
    ) -> HttpGet:
        if roots or commands or cwd is not None:
            raise ToolConfigError(f"tool {name!r}: http.get takes only scope.hosts")
        return cls(
            name=name,
            hosts=hosts,
            description=description,
            timeout_s=timeout_s,
            max_output_bytes=max_output_bytes,
        )

    # --- the canonical call -------------------------------------------------------------

    def _canonical(self, args: UrlArgs) -> Canonical:
        """The URL as the client will send it (scheme and host lower-cased, IDNA, default
        port dropped, path escaped), checked against the allowlist."""
        url = _as_sent(self.check_url(args.url))
        return Canonical({"url": str(url)}, url)

    def _plan(self, arguments: Mapping[str, Any]) -> httpx.URL:
        return self.check_url(UrlArgs.model_validate(dict(arguments)).url)

    def check_url(self, raw: str) -> httpx.URL:
        """Parse ``raw`` exactly as the client will and require an allowlisted target."""
        _vet_text(raw)
        try:
            url = httpx.URL(raw)
        except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
            raise ScopeViolation(
                f"URL {raw!r} is not valid: {exc}", failure_class="invalid_arguments"
            ) from None
        if url.scheme not in _DEFAULT_PORTS:
            raise ScopeViolation(f"URL {raw!r}: scheme {url.scheme!r} is not http or https")
        if url.userinfo or "@" in _authority(raw):
            raise ScopeViolation(f"URL {raw!r} contains userinfo ('@' before the host)")
        host = _canonical_host(raw, url.raw_host.decode("ascii"))
        if not any(rule.matches(host, url.port, url.scheme) for rule in self.rules):
            port = f" port {url.port}" if url.port is not None else ""
            raise ScopeViolation(f"URL {raw!r}: host {host!r}{port} is not in the allowlist")
        return url

    # --- execution ----------------------------------------------------------------------

    def _execute(self, plan: httpx.URL) -> ToolResult:
        url = self.check_url(str(plan))  # the allowlist again, as the call runs
        redirects: list[str] = []
        guard = ConnectionGuard()  # timeout_s bounds the whole call, redirects included
        with self._client(guard) as client, guard.deadline(self.timeout_s) as exchange:
            try:
                return self._follow(client, url, redirects, exchange)
            except httpx.TransportError as exc:
                if exchange.expired or isinstance(exc, httpx.TimeoutException):
                    raise _timeout(exchange) from None
                raise

    def _client(self, guard: ConnectionGuard) -> httpx.Client:
        """No automatic redirects, no proxies, netrc or certificates from the environment."""
        return httpx.Client(
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(self.timeout_s),
            headers={"Accept-Encoding": "identity", "User-Agent": "govrun"},
            event_hooks=guard.event_hooks,
        )

    def _follow(
        self, client: httpx.Client, url: httpx.URL, redirects: list[str], exchange: Exchange
    ) -> ToolResult:
        for _hop in range(MAX_REDIRECTS + 1):
            _check_deadline(exchange)
            with client.stream("GET", url) as resp:
                location = resp.headers.get("location") if resp.is_redirect else None
                if location is None:
                    body, complete = _read_limited(resp, self.max_output_bytes, exchange)
                    return self._result(resp, body, complete, redirects)
            target = str(url.join(location))
            redirects.append(target)
            try:
                url = self.check_url(target)
            except ScopeViolation as exc:
                return ToolResult.failure(
                    "policy_denied",
                    f"redirect from {resp.url} denied: {exc.message}",
                    data={"status": resp.status_code},
                    evidence=_evidence(resp.url, resp.status_code, None, redirects),
                )
        return ToolResult.failure(
            "tool_error",
            f"more than {MAX_REDIRECTS} redirects",
            evidence=_evidence(url, None, None, redirects),
        )

    def _result(
        self, resp: httpx.Response, body: bytes, complete: bool, redirects: list[str]
    ) -> ToolResult:
        text = body.decode(_encoding(resp), errors="replace")
        unread = 0 if complete else _unread(resp, len(body))
        text, truncated = self._clip(text, already_dropped=unread)
        if not complete and not truncated:
            text, truncated = text + "\n[truncated: body exceeded the size limit]", True
        evidence = _evidence(resp.url, resp.status_code, body, redirects)
        evidence["truncated"] = not complete
        data = {"status": resp.status_code, "content_type": resp.headers.get("content-type")}
        if not resp.is_success:
            return ToolResult.failure(
                "tool_error",
                f"HTTP {resp.status_code} from {resp.url}",
                output=f"HTTP {resp.status_code}\n{text}",
                data=data,
                evidence=evidence,
                truncated=truncated,
            )
        return ToolResult(ok=True, output=text, data=data, evidence=evidence, truncated=truncated)


def _as_sent(url: httpx.URL) -> httpx.URL:
    """The URL the client requests: no fragment (it is never sent), in the spelling that
    parsing leaves unchanged (one pass may still drop a default port it kept the first
    time, as for ``HTTP://host:80/``)."""
    url = url.copy_with(fragment=None)
    for _ in range(3):
        again = httpx.URL(str(url))
        if str(again) == str(url):
            break
        url = again
    return url


def _vet_text(raw: str) -> None:
    if "\\" in raw:
        raise ScopeViolation(f"URL {raw!r} contains a backslash")
    for ch in raw:
        if unicodedata.category(ch)[0] in "CZ":
            raise ScopeViolation(
                f"URL {raw!r} contains whitespace or control character U+{ord(ch):04X}",
                failure_class="invalid_arguments",
            )


def _authority(raw: str) -> str:
    """The raw text between ``scheme://`` and the first ``/``, ``?`` or ``#``."""
    rest = raw.split("://", 1)[-1]
    return re.split(r"[/?#]", rest, maxsplit=1)[0]


def _canonical_host(raw: str, host: str) -> str:
    """Lower-case host without trailing dot; IPs only in their one canonical spelling."""
    spelled = host.lower()
    host = spelled.rstrip(".")
    if not host or "%" in host:
        raise ScopeViolation(f"URL {raw!r} has no usable host")
    if ":" in host:
        ip6 = _ip(host)
        if isinstance(ip6, ipaddress.IPv6Address) and (
            ip6.ipv4_mapped or ip6.sixtofour or ip6.teredo
        ):
            raise ScopeViolation(f"URL {raw!r}: IPv6 address {host!r} embeds an IPv4 address")
        if ip6 is None or ip6.compressed != spelled:
            raise ScopeViolation(
                f"URL {raw!r}: host {host!r} is not a canonical (compressed) IPv6 address"
            )
        return host
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        ip4 = _ip(host)
        if ip4 is None or str(ip4) != spelled:
            raise ScopeViolation(
                f"URL {raw!r}: host {host!r} is an unusual IP address spelling; "
                "only canonical dotted quads are accepted"
            )
    return host


def _check_deadline(exchange: Exchange) -> None:
    """Between hops and chunks: stop at once rather than at the next (cut) read."""
    if exchange.expired:
        raise _timeout(exchange)


def _timeout(exchange: Exchange) -> ToolTimeout:
    return ToolTimeout(
        f"GET got no complete response within {exchange.seconds:g}s ({exchange.progress()})"
    )


def _read_limited(resp: httpx.Response, limit: int, exchange: Exchange) -> tuple[bytes, bool]:
    """Read at most ``limit`` body bytes, then stop; returns (body, complete)."""
    buf = bytearray()
    for chunk in resp.iter_bytes():
        _check_deadline(exchange)
        buf += chunk
        if len(buf) > limit:
            return bytes(buf[:limit]), False
    return bytes(buf), True


def _unread(resp: httpx.Response, read: int) -> int:
    """Bytes the model did not see, when the server declared a length."""
    try:
        return max(int(resp.headers.get("content-length", "")) - read, 0)
    except ValueError:
        return 0


def _encoding(resp: httpx.Response) -> str:
    name = resp.charset_encoding or "utf-8"
    try:
        codecs.lookup(name)
    except LookupError:
        return "utf-8"
    return name


def _evidence(
    url: httpx.URL, status: int | None, body: bytes | None, redirects: list[str]
) -> dict[str, Any]:
    return {
        "final_url": str(url),
        "status": status,
        "body_sha256": None if body is None else hashlib.sha256(body).hexdigest(),
        "body_bytes": None if body is None else len(body),
        "redirects": list(redirects),
    }
