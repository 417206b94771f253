"""Policy: real manifests in tmp folders with real directories and symlinks, no mocks.

Every fail-closed case is checked twice: the undecidable value must never make an allow
rule match, and must always make a deny (or ask) rule that tests it match.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from govrun.cli.commands.policy import policy_app
from govrun.runtime.govern.policy import Decision, PolicyEngine
from govrun.runtime.manifest.schema import Manifest, load_manifest
from govrun.runtime.manifest.sections import BUILTIN_RISK, tool_risk
from govrun.runtime.tools.base import ScopeViolation
from govrun.runtime.tools.fs import Confinement

MODEL = {"provider": "openai", "name": "gpt-4o-mini"}
TOOLS: list[dict[str, Any]] = [
    {"name": "read_file", "uses": "fs.read", "scope": {"roots": ["ws"]}},
    {"name": "write_file", "uses": "fs.write", "scope": {"roots": ["ws", "tmp"]}},
    {"name": "list_dir", "uses": "fs.list", "scope": {"roots": ["ws"]}},
    {"name": "delete_file", "uses": "fs.delete", "scope": {"roots": ["ws"]}},
    {"name": "sh", "uses": "shell", "scope": {"roots": ["ws"], "commands": {"ls": {}}}},
    {"name": "fetch", "uses": "http.get", "scope": {"hosts": ["example.org"]}},
    {"name": "add", "python": "tests.support.pytools:add"},
    {"name": "greet", "python": "tests.support.pytools:greet", "risk": "high"},
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A manifest folder: ws/ (with a subfolder, a file, and symlinks in and out), tmp/,
    a sibling ws-evil/ that shares ws's string prefix, and outside/ with a secret."""
    for name in ("ws/sub", "tmp", "ws-evil", "outside"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "ws/notes.txt").write_text("hi")
    (tmp_path / "outside/secret.txt").write_text("secret")
    (tmp_path / "ws/escape").symlink_to(tmp_path / "outside")
    (tmp_path / "ws/alias").symlink_to(tmp_path / "ws/sub")
    return tmp_path


def manifest(folder: Path, rules: list[dict[str, Any]], default: str | None = None) -> Manifest:
    policy: dict[str, Any] = {"rules": rules}
    if default is not None:
        policy["default"] = default
    doc = {"name": "policy-test", "model": MODEL, "tools": TOOLS, "policy": policy}
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return load_manifest(path, env={})


def engine(folder: Path, rules: list[dict[str, Any]], default: str | None = None) -> PolicyEngine:
    return PolicyEngine(manifest(folder, rules, default))


def rule(id: str, effect: str, tools: str | list[str] = "*", **extra: Any) -> dict[str, Any]:
    return {"id": id, "tools": tools, "effect": effect, **extra}


def both(folder: Path, tools: str, arg: str, **predicate: Any) -> tuple[PolicyEngine, PolicyEngine]:
    """One allow-rule engine and one deny-rule engine testing the same predicate; the
    default is ask, so 'not matched' is visible as ask."""
    engines = tuple(
        engine(folder, [rule("r", effect, tools, when={arg: predicate})], default="ask")
        for effect in ("allow", "deny")
    )
    return engines[0], engines[1]


def effects(pair: tuple[PolicyEngine, PolicyEngine], tool: str, args: dict[str, Any]) -> tuple:
    """(allow-rule engine's effect, deny-rule engine's effect) for one call."""
    return tuple(e.decide(tool, args).effect for e in pair)


HOLDS = ("allow", "deny")
"""The predicate held: each rule matched."""
FAILS = ("ask", "ask")
"""The predicate was false: neither rule matched, the default (ask) decided."""
FAIL_CLOSED = ("ask", "deny")
"""Undecidable: the allow rule did not match, the deny rule did."""


# --- ordering and defaults -------------------------------------------------------------


def test_first_matching_rule_wins(folder: Path) -> None:
    rules = [
        rule("no-delete", "deny", "delete_file"),
        rule("fs-ask", "ask", "fs.*"),
        rule("everything", "allow"),
    ]
    pe = engine(folder, rules)
    assert pe.decide("delete_file", {"path": "x"}).rule == "no-delete"
    assert pe.decide("read_file", {"path": "x"}) == Decision(
        "ask", "fs-ask", "approval required by rule fs-ask (tool read_file matches 'fs.*')", "low"
    )
    assert pe.decide("add", {"a": 1}).rule == "everything"
    reordered = engine(folder, [rules[2], rules[0], rules[1]])
    assert reordered.decide("delete_file", {"path": "x"}).effect == "allow"


@pytest.mark.parametrize("default", ["allow", "deny", "ask"])
def test_no_match_falls_to_the_default(folder: Path, default: str) -> None:
    pe = engine(folder, [rule("shell-only", "allow", "sh")], default=default)
    assert pe.decide("read_file", {"path": "x"}) == Decision(
        default, None, f"no rule matched; default is {default}", "low"
    )


def test_default_is_deny_when_unset(folder: Path) -> None:
    d = engine(folder, []).decide("add", {"a": 1})
    assert (d.effect, d.rule, d.reason) == ("deny", None, "no rule matched; default is deny")


def test_unknown_tool_fails_closed_even_under_allow_everything(folder: Path) -> None:
    d = engine(folder, [rule("all", "allow")], default="allow").decide("rm_rf", {})
    assert (d.effect, d.rule, d.risk) == ("deny", None, "high")
    assert "unknown tool" in d.reason


def test_arguments_that_are_not_an_object_are_denied(folder: Path) -> None:
    d = engine(folder, [rule("all", "allow")]).decide("add", ["a", 1])  # type: ignore[arg-type]
    assert (d.effect, d.rule) == ("deny", None)


def test_reason_uses_the_rules_own_text_when_it_has_one(folder: Path) -> None:
    pe = engine(
        folder,
        [
            rule(
                "no-writes-outside-tmp",
                "deny",
                "write_file",
                when={"path": {"not_inside": ["tmp"]}},
                reason="writes only under tmp/",
            ),
            rule("reads", "allow", "read_file", when={"path": {"inside": ["ws"]}}),
        ],
    )
    assert pe.decide("write_file", {"path": "/etc/x"}).reason == (
        "denied by rule no-writes-outside-tmp: writes only under tmp/"
    )
    assert pe.decide("read_file", {"path": "notes.txt"}).reason == (
        "allowed by rule reads (path inside ws)"
    )


# --- tools and risk --------------------------------------------------------------------


def test_tool_globs_match_name_or_builtin(folder: Path) -> None:
    pe = engine(folder, [rule("fs", "allow", "fs.*"), rule("by-name", "ask", "fet*")])
    assert [pe.decide(t, {}).effect for t in ("read_file", "delete_file", "fetch", "sh")] == [
        "allow",
        "allow",
        "ask",
        "deny",
    ]


@pytest.mark.parametrize(
    ("tool", "risk"),
    [
        ("read_file", "low"),
        ("list_dir", "low"),
        ("write_file", "medium"),
        ("delete_file", "high"),
        ("sh", "high"),
        ("fetch", "medium"),
        ("add", "medium"),
        ("greet", "high"),  # declared risk wins over the python default
    ],
)
def test_tool_risk_defaults_and_overrides(folder: Path, tool: str, risk: str) -> None:
    spec = manifest(folder, []).tool(tool)
    assert spec is not None
    assert tool_risk(spec) == risk
    assert engine(folder, []).decide(tool, {}).risk == risk


def test_every_builtin_has_a_default_risk() -> None:
    from govrun.runtime.manifest.schema import SUPPORTED_BUILTINS

    assert set(BUILTIN_RISK) == set(SUPPORTED_BUILTINS)


def test_risk_list_matches_only_listed_risks(folder: Path) -> None:
    pe = engine(folder, [rule("risky", "ask", risk=["high"]), rule("rest", "allow")])
    assert pe.decide("delete_file", {}).rule == "risky"
    assert pe.decide("greet", {}).rule == "risky"
    assert pe.decide("read_file", {}).rule == "rest"
    trace = pe.explain("read_file", {})[0]
    assert trace.why == "risk: 'low' is not in ['high']"


# --- value predicates --------------------------------------------------------------------


def test_glob_predicate(folder: Path) -> None:
    pair = both(folder, "greet", "name", glob="ls *")
    assert effects(pair, "greet", {"name": "ls -l"}) == HOLDS


def test_glob_is_case_sensitive(folder: Path) -> None:
    pair = both(folder, "greet", "name", glob="ls*")
    assert effects(pair, "greet", {"name": "LS"}) == FAILS


def test_regex_predicate_searches(folder: Path) -> None:
    pair = both(folder, "greet", "name", regex=r"\brm\b")
    assert effects(pair, "greet", {"name": "echo x && rm -r y"}) == HOLDS
    assert effects(pair, "greet", {"name": "echo firmware"}) == FAILS
    assert effects(pair, "greet", {"name": 7}) == FAIL_CLOSED


def test_command_predicates_test_each_word_safely_for_the_rule(folder: Path) -> None:
    """A command is its argv: a glob or regex holds for a deny rule when any word matches
    and for an allow rule only when every word does."""
    pair = both(folder, "sh", "command", regex=r"^rm$")
    argv = {"command": ["echo", "x", "&&", "rm", "-r", "y"], "paths": []}
    assert effects(pair, "sh", argv) == ("ask", "deny")
    assert effects(pair, "sh", {"command": ["rm"], "paths": []}) == HOLDS
    assert effects(pair, "sh", {"command": ["echo", "firmware"], "paths": []}) == FAILS
    assert effects(pair, "sh", {"command": "rm -r y"}) == FAIL_CLOSED  # not an argv


def test_equals_predicate_is_json_equality(folder: Path) -> None:
    pair = both(folder, "add", "a", equals=1)
    assert effects(pair, "add", {"a": 1}) == HOLDS
    assert effects(pair, "add", {"a": 1.0}) == HOLDS
    assert effects(pair, "add", {"a": 2}) == FAILS
    assert effects(pair, "add", {"a": True}) == FAILS  # true is not 1
    assert effects(pair, "add", {"a": "1"}) == FAILS


def test_equals_compares_structures(folder: Path) -> None:
    pair = both(folder, "add", "a", equals={"k": [1, True]})
    assert effects(pair, "add", {"a": {"k": [1, True]}}) == HOLDS
    assert effects(pair, "add", {"a": {"k": [1, 1]}}) == FAILS
    assert effects(pair, "add", {"a": {"k": [1, True], "x": 0}}) == FAILS


def test_one_of_predicate(folder: Path) -> None:
    pair = both(folder, "greet", "name", one_of=["ada", "alan"])
    assert effects(pair, "greet", {"name": "alan"}) == HOLDS
    assert effects(pair, "greet", {"name": "eve"}) == FAILS
    assert effects(pair, "greet", {"name": ["ada"]}) == FAILS


def test_min_max_predicates(folder: Path) -> None:
    pair = both(folder, "add", "a", min=0, max=10)
    assert effects(pair, "add", {"a": 0}) == HOLDS
    assert effects(pair, "add", {"a": 10.0}) == HOLDS
    assert effects(pair, "add", {"a": 11}) == FAILS
    assert effects(pair, "add", {"a": -0.5}) == FAILS
    assert effects(pair, "add", {"a": 10**400}) == FAILS  # bigger than any float


@pytest.mark.parametrize("value", [True, False, "5", None, [5], float("nan")])
def test_min_max_on_a_non_number_fail_closed(folder: Path, value: Any) -> None:
    pair = both(folder, "add", "a", max=10)
    assert effects(pair, "add", {"a": value}) == FAIL_CLOSED


def test_max_bytes_counts_utf8_json(folder: Path) -> None:
    pair = both(folder, "greet", "name", max_bytes=6)
    assert effects(pair, "greet", {"name": "abcd"}) == HOLDS  # "abcd" is 6 bytes with quotes
    assert effects(pair, "greet", {"name": "abcde"}) == FAILS
    assert effects(pair, "greet", {"name": "éé"}) == HOLDS  # 2 + 2×2 bytes
    assert effects(pair, "greet", {"name": "ééé"}) == FAILS
    assert effects(pair, "greet", {"name": [1, 2]}) == HOLDS  # any JSON value: [1,2]


def test_all_keys_of_a_predicate_must_hold(folder: Path) -> None:
    pair = both(folder, "greet", "name", glob="ls*", max_bytes=8)
    assert effects(pair, "greet", {"name": "ls -l"}) == HOLDS
    assert effects(pair, "greet", {"name": "ls -la /home"}) == FAILS
    # a definite failure wins over an undecidable key: the rule just does not apply
    pair = both(folder, "sh", "command", glob="ls*", min=3)
    assert effects(pair, "sh", {"command": ["cat"], "paths": []}) == FAILS


def test_every_argument_predicate_must_hold(folder: Path) -> None:
    pe = engine(
        folder, [rule("small-sums", "allow", "add", when={"a": {"max": 5}, "b": {"max": 5}})]
    )
    assert pe.decide("add", {"a": 1, "b": 2}).effect == "allow"
    assert pe.decide("add", {"a": 1, "b": 9}).effect == "deny"


def test_a_missing_argument_never_satisfies_an_allow_rule(folder: Path) -> None:
    pe = engine(folder, [rule("reads", "allow", "read_file", when={"path": {"inside": ["ws"]}})])
    for args in ({}, {"other": "notes.txt"}):
        d = pe.decide("read_file", args)
        assert (d.effect, d.rule) == ("deny", None)
    assert pe.explain("read_file", {})[0].why == "when.path: argument missing"


def test_a_missing_argument_does_not_trigger_a_deny_rule(folder: Path) -> None:
    """Nothing is acted on, so a deny rule about that argument has nothing to deny."""
    pe = engine(
        folder,
        [rule("no-big", "deny", "greet", when={"name": {"glob": "*"}}), rule("rest", "allow")],
    )
    assert pe.decide("greet", {}).rule == "rest"


# --- inside / not_inside -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "inside"),
    [
        ("notes.txt", True),  # relative: against the tool's first root (ws)
        ("sub/../notes.txt", True),
        ("missing/new.txt", True),  # need not exist
        (".", True),
        ("../outside/secret.txt", False),
        ("sub/../../outside/secret.txt", False),
        ("../ws-evil/x", False),  # sibling sharing the string prefix
        ("escape/secret.txt", False),  # symlink inside ws pointing outside
        ("escape", False),
        ("alias/x", True),  # symlink inside ws pointing inside
        ("/etc/passwd", False),
    ],
)
def test_inside_resolves_like_the_fs_tools(folder: Path, path: str, inside: bool) -> None:
    pair = both(folder, "read_file", "path", inside=["ws"])
    assert effects(pair, "read_file", {"path": path}) == (HOLDS if inside else FAILS)
    # and the fs tool itself agrees
    confinement = Confinement([folder / "ws"])
    try:
        confinement.locate(path)
        tool_agrees = True
    except ScopeViolation:
        tool_agrees = False
    assert tool_agrees is inside


def test_inside_with_absolute_paths(folder: Path) -> None:
    pair = both(folder, "read_file", "path", inside=["ws"])
    assert effects(pair, "read_file", {"path": str(folder / "ws/notes.txt")}) == HOLDS
    assert effects(pair, "read_file", {"path": str(folder / "ws-evil/x")}) == FAILS
    assert effects(pair, "read_file", {"path": str(folder / "ws/../outside")}) == FAILS


def test_inside_roots_resolve_against_the_manifest_folder(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(folder / "outside")  # the current folder must not matter
    pair = both(folder, "read_file", "path", inside=["ws/sub"])
    assert effects(pair, "read_file", {"path": "sub/a"}) == HOLDS
    assert effects(pair, "read_file", {"path": "notes.txt"}) == FAILS


def test_relative_paths_resolve_against_the_tools_first_root(folder: Path) -> None:
    # write_file's roots are [ws, tmp]: 'x' means ws/x, never tmp/x
    pair = both(folder, "write_file", "path", inside=["tmp"])
    assert effects(pair, "write_file", {"path": "x"}) == FAILS
    assert effects(pair, "write_file", {"path": "../tmp/x"}) == HOLDS


def test_relative_paths_of_a_rootless_tool_resolve_against_the_manifest_folder(
    folder: Path,
) -> None:
    pair = both(folder, "greet", "name", inside=["ws"])
    assert effects(pair, "greet", {"name": "ws/notes.txt"}) == HOLDS
    assert effects(pair, "greet", {"name": "notes.txt"}) == FAILS


def test_inside_any_of_several_roots(folder: Path) -> None:
    pair = both(folder, "write_file", "path", inside=["tmp", "ws/sub"])
    assert effects(pair, "write_file", {"path": "sub/x"}) == HOLDS
    assert effects(pair, "write_file", {"path": "../tmp/x"}) == HOLDS
    assert effects(pair, "write_file", {"path": "notes.txt"}) == FAILS


def test_not_inside(folder: Path) -> None:
    pair = both(folder, "write_file", "path", not_inside=["tmp"])
    assert effects(pair, "write_file", {"path": "/etc/passwd"}) == HOLDS
    assert effects(pair, "write_file", {"path": str(folder / "tmp/a")}) == FAILS
    assert effects(pair, "write_file", {"path": "../tmp/../ws/a"}) == HOLDS


UNDECIDABLE_PATHS = [
    "notes.txt\x00../../outside/secret.txt",  # NUL
    "notes\n.txt",  # control character
    "ｎｏｔｅｓ.txt",  # fullwidth letters: NFKC differs
    "sub\u2215x",  # division slash looks like '/'
    "sub\u2024\u2024/x",  # one-dot leaders look like '..'
    "notes\u200b.txt",  # zero-width space
    "",  # empty
]


@pytest.mark.parametrize("path", UNDECIDABLE_PATHS)
@pytest.mark.parametrize("key", ["inside", "not_inside"])
def test_suspicious_paths_fail_closed(folder: Path, path: str, key: str) -> None:
    pair = both(folder, "read_file", "path", **{key: ["ws"]})
    assert effects(pair, "read_file", {"path": path}) == FAIL_CLOSED


@pytest.mark.parametrize("value", [None, 3, ["ws/notes.txt"], {"p": 1}])
def test_non_string_paths_fail_closed(folder: Path, value: Any) -> None:
    pair = both(folder, "read_file", "path", inside=["ws"])
    assert effects(pair, "read_file", {"path": value}) == FAIL_CLOSED


def test_a_symlink_loop_fails_closed(folder: Path) -> None:
    (folder / "ws/loop").symlink_to(folder / "ws/loop")
    pair = both(folder, "read_file", "path", inside=["ws"])
    # Python 3.11 raises on a loop (undecidable: fail closed); 3.13 leaves the link
    # unresolved inside ws, where the fs tool's O_NOFOLLOW walk refuses it
    assert effects(pair, "read_file", {"path": "loop"})[0] in ("allow", "ask")
    assert effects(pair, "read_file", {"path": "loop"})[1] == "deny"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PolicyEngine]:
    root = tmp_path_factory.mktemp("tree")
    for name in ("ws/sub", "ws-evil", "outside"):
        (root / name).mkdir(parents=True)
    (root / "ws/escape").symlink_to(root / "outside")
    (root / "ws/alias").symlink_to(root / "ws/sub")
    reads = rule("reads", "allow", "read_file", when={"path": {"inside": ["ws"]}})
    return root, engine(root, [reads])


PARTS = st.sampled_from(
    ["..", ".", "ws", "ws-evil", "sub", "escape", "alias", "outside", "a", "", "\x00", "ｗｓ"]
)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(PARTS, min_size=1, max_size=6), absolute=st.booleans())
def test_policy_inside_never_allows_what_the_fs_tool_refuses(
    tree: tuple[Path, PolicyEngine], parts: list[str], absolute: bool
) -> None:
    root, pe = tree
    path = (f"{root}/" if absolute else "") + "/".join(parts)
    if pe.decide("read_file", {"path": path}).effect == "allow":
        Confinement([root / "ws"]).locate(path)  # raises ScopeViolation if they disagree


# --- host_in -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.org/x", HOLDS),
        ("https://EXAMPLE.ORG/x", HOLDS),  # uppercase
        ("https://example.org./x", HOLDS),  # trailing dot
        ("http://example.org:80/", HOLDS),  # the default port spelled out
        ("https://api.github.com/", FAILS),
        ("https://example.org.evil.com/", FAILS),
        ("https://notexample.org/", FAILS),
        ("http://example.org@evil.com/", FAIL_CLOSED),  # userinfo
        ("http://evil.com@example.org/", FAIL_CLOSED),  # userinfo, even to a listed host
        ("http://user:pw@example.org/", FAIL_CLOSED),
        ("ftp://example.org/", FAIL_CLOSED),  # not http(s)
        ("example.org", FAIL_CLOSED),  # no scheme
        ("https://example.org:8443/", FAIL_CLOSED),  # listed host, unlisted port
        ("https://exam\u0440le.org/", FAILS),  # Cyrillic 'р': a different (punycode) host
        ("https://ｅｘａｍｐｌｅ.org/", FAIL_CLOSED),  # fullwidth: NFKC differs
        ("https://example.org\\@evil.com/", FAIL_CLOSED),  # backslash
        ("https://exa mple.org/", FAIL_CLOSED),  # whitespace
        ("http://2130706433/", FAIL_CLOSED),  # an IP spelled as a number
        ("http://[::ffff:127.0.0.1]/", FAIL_CLOSED),  # IPv4-mapped IPv6
        ("http://[::1]/", FAILS),  # a canonical IP: definitely not listed
        ("http://[/", FAIL_CLOSED),  # does not parse
    ],
)
def test_host_in(folder: Path, url: str, expected: tuple[str, str]) -> None:
    pair = both(folder, "fetch", "url", host_in=["example.org"])
    assert effects(pair, "fetch", {"url": url}) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.example.org/", HOLDS),
        ("https://a.b.example.org/", HOLDS),
        ("https://API.Example.Org./", HOLDS),
        ("https://example.org/", FAILS),  # '*.' means subdomains only
        ("https://evilexample.org/", FAILS),
        ("https://example.org.evil.com/", FAILS),
        ("https://api.example.org@evil.com/", FAIL_CLOSED),
    ],
)
def test_host_in_subdomain_wildcard(folder: Path, url: str, expected: tuple[str, str]) -> None:
    pair = both(folder, "fetch", "url", host_in=["*.example.org"])
    assert effects(pair, "fetch", {"url": url}) == expected


def test_host_in_with_a_port_entry(folder: Path) -> None:
    pair = both(folder, "fetch", "url", host_in=["Example.org:8443"])
    assert effects(pair, "fetch", {"url": "https://example.org:8443/"}) == HOLDS
    assert effects(pair, "fetch", {"url": "https://example.org/"}) == FAIL_CLOSED


@pytest.mark.parametrize("value", [None, 1, ["https://example.org/"]])
def test_host_in_on_a_non_string_fails_closed(folder: Path, value: Any) -> None:
    pair = both(folder, "fetch", "url", host_in=["example.org"])
    assert effects(pair, "fetch", {"url": value}) == FAIL_CLOSED


def test_ask_rules_fail_closed_like_deny_rules(folder: Path) -> None:
    pe = engine(folder, [rule("gate", "ask", "fetch", when={"url": {"host_in": ["evil.com"]}})])
    d = pe.decide("fetch", {"url": "http://example.org@evil.com/"})
    assert (d.effect, d.rule) == ("ask", "gate")
    assert "fail closed" in d.reason and "userinfo" in d.reason


# --- explain -------------------------------------------------------------------------------


def test_explain_lists_every_rule_with_why(folder: Path) -> None:
    pe = engine(
        folder,
        [
            rule("net", "ask", "fetch"),
            rule("reads", "allow", "read_file", when={"path": {"inside": ["ws"]}}),
            rule("fs-any", "deny", "fs.*"),
        ],
    )
    traces = pe.explain("read_file", {"path": "notes.txt"})
    assert [(t.rule, t.matched, t.decided) for t in traces] == [
        ("net", False, False),
        ("reads", True, True),
        ("fs-any", True, False),  # matched, but an earlier rule decided
    ]
    assert traces[0].why == "tools: 'read_file' (fs.read) does not match ['fetch']"
    assert traces[1].why == "path inside ws"
    assert traces[2].why == "tool read_file matches 'fs.*'"

    traces = pe.explain("read_file", {"path": "/etc/passwd"})
    assert traces[1].matched is False
    assert traces[1].why == "when.path: '/etc/passwd' is not inside ws"
    assert [t.decided for t in traces] == [False, False, True]


def test_explain_marks_fail_closed_outcomes(folder: Path) -> None:
    pe = engine(
        folder,
        [
            rule("reads", "allow", "read_file", when={"path": {"inside": ["ws"]}}),
            rule("secrets", "deny", "read_file", when={"path": {"inside": ["outside"]}}),
        ],
    )
    allow, deny = pe.explain("read_file", {"path": "notes\x00"})
    assert (allow.matched, allow.fail_closed) == (False, True)
    assert (deny.matched, deny.fail_closed, deny.decided) == (True, True, True)
    assert "U+0000" in deny.why and "fail closed" in deny.why


def test_explain_of_an_unknown_tool_matches_nothing(folder: Path) -> None:
    traces = engine(folder, [rule("all", "allow")]).explain("nope", {})
    assert [(t.matched, t.why) for t in traces] == [(False, "tool 'nope' is not declared")]


def test_decide_and_explain_agree(folder: Path) -> None:
    pe = engine(
        folder,
        [
            rule("w", "deny", "write_file", when={"path": {"not_inside": ["tmp"]}}),
            rule("r", "allow", "fs.*", when={"path": {"inside": ["ws"]}}),
        ],
    )
    for tool, args in [
        ("write_file", {"path": "../tmp/a"}),
        ("write_file", {"path": "a"}),
        ("read_file", {"path": "a"}),
        ("read_file", {"path": "/"}),
    ]:
        decided = [t.rule for t in pe.explain(tool, args) if t.decided]
        assert decided == ([r] if (r := pe.decide(tool, args).rule) else [])


# --- policy hash -----------------------------------------------------------------------------


def test_policy_hash_is_stable_and_tracks_rule_changes(folder: Path) -> None:
    rules = [rule("reads", "allow", "fs.read", when={"path": {"inside": ["ws"]}})]
    first = engine(folder, rules).policy_hash
    assert len(first) == 64 and int(first, 16) >= 0
    assert engine(folder, rules).policy_hash == first
    assert engine(folder, rules, default="deny").policy_hash == first  # the default, spelled out
    changed = [rule("reads", "ask", "fs.read", when={"path": {"inside": ["ws"]}})]
    assert engine(folder, changed).policy_hash != first
    widened = [rule("reads", "allow", "fs.read", when={"path": {"inside": ["ws", "tmp"]}})]
    assert engine(folder, widened).policy_hash != first
    assert engine(folder, rules, default="allow").policy_hash != first


def test_policy_hash_ignores_key_order_in_the_yaml(folder: Path) -> None:
    a = {"id": "r", "tools": "sh", "effect": "allow", "when": {"command": {"glob": "ls*"}}}
    b = {"when": {"command": {"glob": "ls*"}}, "effect": "allow", "tools": "sh", "id": "r"}
    assert engine(folder, [a]).policy_hash == engine(folder, [b]).policy_hash


# --- govrun policy explain -------------------------------------------------------------------

cli = typer.Typer()
cli.add_typer(policy_app, name="policy")
runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(cli, ["policy", "explain", *args], env={"COLUMNS": "200"})


@pytest.fixture
def agent(folder: Path) -> Path:
    manifest(
        folder,
        [
            rule("net", "ask", "fetch", reason="a person checks every fetch"),
            rule("reads", "allow", "fs.read", when={"path": {"inside": ["ws"]}}),
        ],
    )
    return folder / "agent.yaml"


def test_cli_explains_an_allowed_call(agent: Path) -> None:
    result = invoke(str(agent), "read_file", '{"path": "notes.txt"}')
    assert result.exit_code == 0, result.output
    out = result.output
    assert "ALLOW" in out and "read_file (fs.read), risk low" in out
    assert "allowed by rule reads (path inside ws)" in out
    assert "✓" in out and "✗" in out
    assert "tools: 'read_file' (fs.read) does not match ['fetch']" in out


def test_cli_explains_a_denied_call_and_still_exits_0(agent: Path) -> None:
    result = invoke(str(agent), "read_file", '{"path": "/etc/passwd"}')
    assert result.exit_code == 0, result.output
    assert "DENY" in result.output
    assert "when.path: '/etc/passwd' is not inside ws" in result.output
    # the loop checks the tool's scope before the rules, and explain says so
    assert "denied before the rules (outside the tool's scope)" in result.output
    assert "not consulted" in result.output


def test_cli_explains_a_default_deny(agent: Path) -> None:
    result = invoke(str(agent), "read_file", '{"path": "ws/../ws/notes.md", "extra": 1}')
    assert result.exit_code == 0, result.output
    assert "denied before the rules (invalid arguments)" in result.output


def test_cli_explains_an_ask_with_the_rules_reason(agent: Path) -> None:
    result = invoke(str(agent), "fetch", '{"url": "https://example.org/"}')
    assert result.exit_code == 0, result.output
    assert "ASK" in result.output
    assert "approval required by rule net: a person checks every fetch" in result.output
    assert "risk medium" in result.output


def test_cli_arguments_default_to_an_empty_object(agent: Path) -> None:
    result = invoke(str(agent), "read_file")
    assert result.exit_code == 0, result.output
    assert "when.path: argument missing" in result.output


@pytest.mark.parametrize("bad", ["{path: x}", "[1, 2]", '"x"', ""])
def test_cli_rejects_arguments_that_are_not_a_json_object(agent: Path, bad: str) -> None:
    result = invoke(str(agent), "read_file", bad)
    assert result.exit_code == 2
    assert "arguments must be a JSON object" in result.output
    assert "Traceback" not in result.output


def test_cli_rejects_an_unknown_tool_with_a_suggestion(agent: Path) -> None:
    result = invoke(str(agent), "read_fiel", "{}")
    assert result.exit_code == 2
    assert "unknown tool 'read_fiel'; declared tools: read_file, write_file" in result.output
    assert "Did you mean 'read_file'?" in result.output


def test_cli_reports_a_missing_manifest(tmp_path: Path) -> None:
    result = invoke(str(tmp_path / "nope.yaml"), "read_file", "{}")
    assert result.exit_code == 2
    assert "nope.yaml: no such manifest" in result.output
    assert "Traceback" not in result.output


def test_cli_prints_markup_in_values_literally(agent: Path) -> None:
    result = invoke(str(agent), "read_file", '{"path": "/[bold]x[/bold]"}')
    assert result.exit_code == 0, result.output
    assert "'/[bold]x[/bold]' is not inside ws" in result.output


def test_the_cli_does_not_depend_on_the_working_folder(
    agent: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(agent.parent / "outside")
    result = invoke(str(agent), "read_file", '{"path": "notes.txt"}')
    assert result.exit_code == 0, result.output
    assert "ALLOW" in result.output


def test_policy_hash_covers_per_tool_approval_gates(tmp_path: Path) -> None:
    from govrun.runtime.manifest.schema import parse_manifest

    (tmp_path / "s.yaml").write_text("- content: hi\n")
    (tmp_path / "ws").mkdir(exist_ok=True)

    def hash_with(approval: str) -> str:
        text = (
            "name: a\nmodel: {provider: scripted, script: s.yaml}\ntools:\n"
            f"  - {{name: w, uses: fs.write, scope: {{roots: [ws]}}, approval: {approval}}}\n"
            "policy: {rules: [{id: writes, tools: [w], effect: allow}]}\n"
        )
        return PolicyEngine(parse_manifest(text, base_dir=tmp_path)).policy_hash

    assert hash_with("always") != hash_with("policy")
