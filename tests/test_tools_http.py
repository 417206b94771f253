"""http.get against real servers on 127.0.0.1 (allowed) and 127.0.0.2 (forbidden).

The forbidden server records every request; each attack asserts it received none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from govrun.runtime.tools import ScopeViolation, ToolConfigError, ToolResult, parse_arguments
from govrun.runtime.tools.http import MAX_REDIRECTS, HttpGet, httpx, parse_host_rule
from tests.support.recording_server import BIG_BODY, RecordingServer, serve


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[RecordingServer, RecordingServer]]:
    with serve("127.0.0.1") as allowed, serve("127.0.0.2") as forbidden:
        yield allowed, forbidden


@pytest.fixture
def allowed(servers: tuple[RecordingServer, RecordingServer]) -> RecordingServer:
    servers[0].requests.clear()
    return servers[0]


@pytest.fixture
def forbidden(servers: tuple[RecordingServer, RecordingServer]) -> Iterator[RecordingServer]:
    servers[1].requests.clear()
    yield servers[1]
    assert servers[1].requests == [], "a denied call reached the forbidden server"


def fetcher(allowed: RecordingServer, **kw: Any) -> HttpGet:
    kw.setdefault("timeout_s", 5)
    return HttpGet(name="fetch", hosts=[f"127.0.0.1:{allowed.port}"], **kw)


def get(tool: HttpGet, url: str) -> ToolResult:
    return tool.run(parse_arguments(tool, {"url": url}))


def assert_denied(tool: HttpGet, url: str) -> ToolResult:
    with pytest.raises(ScopeViolation):
        tool.check(parse_arguments(tool, {"url": url}))
    r = get(tool, url)
    assert not r.ok and r.failure_class in ("policy_denied", "invalid_arguments"), r
    return r


def test_forbidden_server_is_really_reachable(forbidden: RecordingServer) -> None:
    """Without the tool, 127.0.0.2 answers: so 'no request recorded' below means blocked."""
    assert httpx.get(forbidden.base + "/probe", trust_env=False).status_code == 200
    assert forbidden.requests == ["/probe"]
    forbidden.requests.clear()


# --- allowed traffic ----------------------------------------------------------------------


def test_allowed_get_returns_body_and_evidence(allowed: RecordingServer) -> None:
    r = get(fetcher(allowed), allowed.base + "/hello")
    body = f"hello from {allowed.base}/hello".encode()
    assert r.ok and r.output == body.decode()
    assert r.data["status"] == 200
    assert r.evidence["final_url"] == allowed.base + "/hello"
    assert r.evidence["status"] == 200 and r.evidence["redirects"] == []
    assert r.evidence["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert allowed.requests == ["/hello"]


def test_same_host_redirect_is_followed_and_recorded(allowed: RecordingServer) -> None:
    r = get(fetcher(allowed), allowed.base + "/redirect?to=/landed")
    assert r.ok and r.output.endswith("/landed")
    assert r.evidence["redirects"] == [allowed.base + "/landed"]
    assert r.evidence["final_url"] == allowed.base + "/landed"
    assert allowed.requests == ["/redirect?to=/landed", "/landed"]


def test_redirect_loop_stops_after_max_hops(allowed: RecordingServer) -> None:
    r = get(fetcher(allowed), allowed.base + "/loop")
    assert r.failure_class == "tool_error" and "redirects" in r.error
    assert len(allowed.requests) == MAX_REDIRECTS + 1


def test_large_body_is_truncated(allowed: RecordingServer) -> None:
    r = get(fetcher(allowed, max_output_bytes=1000), allowed.base + "/big")
    assert r.ok and r.truncated and r.evidence["truncated"] is True
    assert r.output == "x" * 1000 + f"\n[truncated {len(BIG_BODY) - 1000} bytes]"
    assert r.evidence["body_bytes"] == 1000


def test_non_2xx_is_a_tool_error_with_status(allowed: RecordingServer) -> None:
    r = get(fetcher(allowed), allowed.base + "/status/404")
    assert not r.ok and r.failure_class == "tool_error"
    assert r.data["status"] == 404 and r.evidence["status"] == 404
    assert r.output.startswith("HTTP 404")


def test_slow_server_times_out(allowed: RecordingServer) -> None:
    r = get(fetcher(allowed, timeout_s=0.5), allowed.base + "/slow")
    assert r.failure_class == "timeout"


# --- attacks: the forbidden server must never see a request -------------------------------


def test_direct_request_to_unlisted_host_is_denied(
    allowed: RecordingServer, forbidden: RecordingServer
) -> None:
    assert_denied(fetcher(allowed), forbidden.base + "/")


@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{ap}@127.0.0.2:{fp}/",
        "http://127.0.0.1:{ap}:x@127.0.0.2:{fp}/",
        "http://user@127.0.0.2:{fp}/",
        "http://127.0.0.2:{fp}#@127.0.0.1:{ap}/",
        "http://127.0.0.2:{fp}?@127.0.0.1:{ap}/",
        "http://127.0.0.2:{fp}\\@127.0.0.1:{ap}/",
        "http://127.0.0.2:{fp}\\\\127.0.0.1:{ap}/",
        "http:\\\\127.0.0.2:{fp}/",
        "http://127.0.0.2:{fp}%2F@127.0.0.1:{ap}/",
    ],
)
def test_userinfo_and_backslash_tricks_are_denied(
    allowed: RecordingServer, forbidden: RecordingServer, template: str
) -> None:
    assert_denied(fetcher(allowed), template.format(ap=allowed.port, fp=forbidden.port))
    assert allowed.requests == []


@pytest.mark.parametrize(
    "host",
    [
        "2130706434",
        "0x7f000002",
        "0x7f.0.0.2",
        "0177.0.0.2",
        "127.2",
        "127.0.2",
        "[::ffff:127.0.0.2]",
        "[::ffff:7f00:2]",
        "[::127.0.0.2]",
        "127.0.0.2.",
    ],
)
def test_odd_spellings_of_the_forbidden_ip_are_denied(
    allowed: RecordingServer, forbidden: RecordingServer, host: str
) -> None:
    assert_denied(fetcher(allowed), f"http://{host}:{forbidden.port}/")


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",
        "0x7f000001",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "127.1",
        "127.0.1",
        "[::ffff:127.0.0.1]",
        "127.0.0.1.",
        "127.000.000.001",
    ],
)
def test_odd_spellings_of_the_allowed_ip_are_denied_too(
    allowed: RecordingServer, host: str
) -> None:
    """Only the canonical spelling is accepted, even for the address that is allowed."""
    assert_denied(fetcher(allowed), f"http://{host}:{allowed.port}/")
    assert allowed.requests == []


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{fp}/",
        "http://2130706434:{fp}/",
        "http://127.0.0.1:{ap}@127.0.0.2:{fp}/",
        "//127.0.0.2:{fp}/",
        "http://127.0.0.1:{other}/",
        "file:///etc/passwd",
    ],
)
def test_redirect_to_a_disallowed_target_is_never_followed(
    allowed: RecordingServer, forbidden: RecordingServer, target: str
) -> None:
    target = target.format(ap=allowed.port, fp=forbidden.port, other=forbidden.port)
    url = str(httpx.URL(allowed.base + "/redirect").copy_with(params={"to": target}))
    r = get(fetcher(allowed), url)
    assert not r.ok and r.failure_class == "policy_denied", r
    assert r.error.startswith("redirect from")
    assert r.evidence["status"] == 302 and len(r.evidence["redirects"]) == 1
    assert len(allowed.requests) == 1


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/",
        "gopher://127.0.0.1/",
        "//127.0.0.1/x",
        "javascript:alert(1)",
    ],
)
def test_non_http_schemes_are_denied(allowed: RecordingServer, url: str) -> None:
    assert_denied(fetcher(allowed), url)


def test_unlisted_port_and_default_port_are_denied(allowed: RecordingServer) -> None:
    tool = fetcher(allowed)
    assert_denied(tool, f"http://127.0.0.1:{allowed.port + 1}/")
    assert_denied(tool, "http://127.0.0.1/")


def test_whitespace_and_control_characters_are_invalid(allowed: RecordingServer) -> None:
    for url in (allowed.base + "/a b", allowed.base + "/\n", " " + allowed.base):
        assert assert_denied(fetcher(allowed), url).failure_class == "invalid_arguments"


# --- host rules (pure) ----------------------------------------------------------------------

NAMES = HttpGet(name="n", hosts=["api.github.com", "*.example.org", "bücher.de", "[::1]:8080"])


@pytest.mark.parametrize(
    "url",
    [
        "https://api.github.com/repos",
        "https://API.GitHub.COM./x",
        "http://a.example.org/",
        "https://a.b.example.org/",
        "https://xn--bcher-kva.de/",
        "https://bücher.de/",
        "http://[::1]:8080/",
        "https://api.github.com:443/",
    ],
)
def test_host_rules_allow(url: str) -> None:
    NAMES.check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/",
        "https://evilexample.org/",
        "https://example.org.evil.com/",
        "https://api.github.com.evil.com/",
        "https://api.github.com:8443/",
        "http://api.github.com:443/",
        "https://api.github.com@evil.com/",
        "http://[::1]/",
        "http://[0:0::1]:8080/",
        "https://github.com/",
        "https://a.example.org\u3002evil.com/",
    ],
)
def test_host_rules_deny(url: str) -> None:
    with pytest.raises(ScopeViolation):
        NAMES.check_url(url)


def test_host_rule_parsing() -> None:
    assert parse_host_rule("API.GitHub.com.") == parse_host_rule("api.github.com")
    rule = parse_host_rule("*.Example.org:8443")
    assert (rule.host, rule.wildcard, rule.port) == ("example.org", True, 8443)
    assert parse_host_rule("[::1]").host == "::1"
    for bad in ("0x7f.0.0.1", "127.1", "*.127.0.0.1", "host:99999", "*", "[nope]"):
        with pytest.raises(ToolConfigError):
            parse_host_rule(bad)
    with pytest.raises(ToolConfigError):
        HttpGet(name="n", hosts=[])
