"""No denied call ever executes: hostile calls through the whole loop.

A scripted model proposes each attack, then one benign call (which must still work, so a
denial is never just a broken tool). For every attack the trace records a denial *and* the
side effect is absent: no file outside the workspace is created or changed, no ``pwned``
appears, no request reaches the recording server. The last test lets hypothesis mix hostile
and benign writes and checks that nothing outside the workspace ever changes.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govrun.runtime.trace import events as ev
from tests.support.agents import (
    WORKSPACE,
    answer,
    call,
    calls,
    decided,
    executed,
    fs_tools,
    one,
    run_in,
    scripted_manifest,
    shell_tool,
    told,
)
from tests.support.recording_server import RecordingServer, serve

OUTSIDE_TEXT = "original outside content"
SECRET_TEXT = "TOPSECRET-4f1c"
RUN_FILES = {"agent.yaml", "script.yaml"}


# --- the world around the workspace -------------------------------------------------------------


def build_world(folder: Path) -> None:
    """A workspace with symlinks pointing out of it, and files outside it worth protecting."""
    ws = folder / WORKSPACE
    ws.mkdir(parents=True)
    (folder / "outside.txt").write_text(OUTSIDE_TEXT)
    (folder / "secret.txt").write_text(SECRET_TEXT)
    (folder / "outside_dir").mkdir()
    (folder / "outside_dir" / "kept.txt").write_text(OUTSIDE_TEXT)
    (folder / "ws-evil").mkdir()  # shares the workspace's name as a string prefix
    (ws / "inside.txt").write_text("inside")
    os.symlink(folder / "outside_dir", ws / "out")
    os.symlink(folder / "outside.txt", ws / "alias.txt")
    os.symlink(folder / "secret.txt", ws / "peek.txt")
    os.symlink(folder / "not-yet.txt", ws / "dangling")


def snapshot_outside(folder: Path) -> dict[str, tuple[str, str]]:
    """Everything under ``folder`` but outside the workspace (and the run's own files):
    relative path -> (kind, content or link target)."""
    seen: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        if here == folder:
            # the trace's sidecar (pre-images for rollback) is the run's own, too
            dirnames[:] = [d for d in dirnames if d != WORKSPACE and not d.startswith("trace-")]
        for name in dirnames + filenames:
            path = here / name
            rel = path.relative_to(folder).as_posix()
            if here == folder and (name in RUN_FILES or name.startswith("trace-")):
                continue
            if path.is_symlink():
                seen[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                seen[rel] = ("dir", "")
            else:
                seen[rel] = ("file", path.read_bytes().decode("utf-8", "replace"))
    return seen


def snapshot_links(ws: Path) -> dict[str, str]:
    return {p.name: os.readlink(p) for p in ws.iterdir() if p.is_symlink()}


def pwned_anywhere(folder: Path) -> list[Path]:
    return [*folder.rglob("*pwned*"), *Path.cwd().glob("*pwned*")]


def assert_denied(events: list[ev.Event], call_id: str) -> ev.CallDecision:
    decision = decided(events, call_id)
    assert decision.effect == "deny", decision
    assert decision.failure_class in ("policy_denied", "invalid_arguments"), decision
    assert call_id not in executed(events)
    assert told(events, call_id).startswith(f"[{decision.failure_class}] call not executed")
    return decision


# --- filesystem ------------------------------------------------------------------------------


def _abs_tmp() -> str:
    return f"/tmp/govrun-hostile-{uuid.uuid4().hex}.txt"


FS_ATTACKS: list[Any] = [
    pytest.param(lambda f: "../outside.txt", id="dot-dot"),
    pytest.param(lambda f: "inside/../../outside.txt", id="dot-dot-nested"),
    pytest.param(lambda f: str(f / "outside.txt"), id="absolute-outside"),
    pytest.param(lambda f: _abs_tmp(), id="absolute-tmp"),
    pytest.param(lambda f: "../ws-evil/planted.txt", id="sibling-prefix-relative"),
    pytest.param(lambda f: str(f / "ws-evil" / "planted.txt"), id="sibling-prefix-absolute"),
    pytest.param(lambda f: "out/planted.txt", id="symlinked-dir"),
    pytest.param(lambda f: "out/kept.txt", id="symlinked-dir-existing-file"),
    pytest.param(lambda f: "alias.txt", id="symlinked-file"),
    pytest.param(lambda f: "dangling", id="dangling-symlink"),
    pytest.param(lambda f: "..\u2215outside.txt", id="division-slash"),
    pytest.param(lambda f: "\uff0e\uff0e/outside.txt", id="fullwidth-dots"),
    pytest.param(lambda f: "..\u2044outside.txt", id="fraction-slash"),
    pytest.param(lambda f: "inside\u200b.txt", id="zero-width-space"),
    pytest.param(lambda f: "a.txt\x00../../outside.txt", id="nul-byte"),
]


@pytest.mark.parametrize("target", FS_ATTACKS)
def test_fs_write_never_escapes_the_workspace(tmp_path: Path, target: Any) -> None:
    build_world(tmp_path)
    path = target(tmp_path)
    before, links = snapshot_outside(tmp_path), snapshot_links(tmp_path / WORKSPACE)
    script = [
        calls(call("fs_write", {"path": path, "content": "pwned"}, id="attack")),
        calls(call("fs_write", {"path": "benign.txt", "content": "fine"}, id="benign")),
        answer(),
    ]

    result, events = run_in(tmp_path, scripted_manifest(), script=script)

    assert result.status == "completed"
    assert_denied(events, "attack")
    assert executed(events) == ["benign"]
    assert snapshot_outside(tmp_path) == before
    assert snapshot_links(tmp_path / WORKSPACE) == links
    assert (tmp_path / "outside.txt").read_text() == OUTSIDE_TEXT
    assert sorted(p.name for p in (tmp_path / WORKSPACE).iterdir()) == [
        "alias.txt",
        "benign.txt",
        "dangling",
        "inside.txt",
        "out",
        "peek.txt",
    ]
    if path.startswith("/tmp/govrun-hostile-"):
        assert not Path(path).exists()


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(lambda f: "peek.txt", id="symlinked-file"),
        pytest.param(lambda f: "../secret.txt", id="dot-dot"),
        pytest.param(lambda f: "out/../../secret.txt", id="through-symlinked-dir"),
        pytest.param(lambda f: str(f / "secret.txt"), id="absolute"),
    ],
)
def test_fs_read_never_reveals_a_file_outside(tmp_path: Path, target: Any) -> None:
    build_world(tmp_path)
    script = [calls(call("fs_read", {"path": target(tmp_path)}, id="attack")), answer()]

    result, events = run_in(tmp_path, scripted_manifest(), script=script)

    assert result.status == "completed"
    assert_denied(events, "attack")
    assert SECRET_TEXT.encode() not in Path(result.trace_path).read_bytes()


def test_fs_delete_of_a_symlink_removes_the_link_not_its_target(tmp_path: Path) -> None:
    """The one fs operation that may name a symlink: it acts on the link itself."""
    build_world(tmp_path)
    script = [
        calls(call("fs_delete", {"path": "alias.txt"}, id="unlink")),
        calls(call("fs_delete", {"path": "../outside.txt"}, id="attack")),
        answer(),
    ]

    result, events = run_in(tmp_path, scripted_manifest(tools=fs_tools("delete")), script=script)

    assert result.status == "completed"
    assert executed(events) == ["unlink"]
    assert_denied(events, "attack")
    assert not (tmp_path / WORKSPACE / "alias.txt").exists()
    assert (tmp_path / "outside.txt").read_text() == OUTSIDE_TEXT


# --- shell ------------------------------------------------------------------------------------


SHELL_DENIED = [
    "ls; touch pwned",
    "ls;touch pwned",
    "$(touch pwned)",
    "`touch pwned`",
    "touch pwned",
    "env touch pwned",
    "sh -c 'touch pwned'",
    "/usr/bin/touch pwned",
    "ls\ntouch pwned",
    "ls ../",
    "ls /etc",
]

SHELL_METACHARACTERS = [
    "ls && touch pwned",
    "ls || touch pwned",
    "ls $(touch pwned)",
    "ls `touch pwned`",
    "ls | tee pwned",
    "ls > pwned",
    "ls & touch pwned",
]


@pytest.mark.parametrize("command", SHELL_DENIED)
def test_shell_commands_outside_the_allowlist_are_denied(tmp_path: Path, command: str) -> None:
    build_world(tmp_path)
    before = snapshot_outside(tmp_path)
    manifest = scripted_manifest(tools=[shell_tool({"ls": {}})])
    script = [
        calls(call("sh", {"command": command}, id="attack")),
        calls(call("sh", {"command": "ls"}, id="benign")),
        answer(),
    ]

    result, events = run_in(tmp_path, manifest, script=script)

    assert result.status == "completed"
    decision = assert_denied(events, "attack")
    assert decision.rule in ("scope", None)
    assert executed(events) == ["benign"]
    assert one(events, ev.ToolFinished, call_id="benign").ok
    assert pwned_anywhere(tmp_path) == []
    assert snapshot_outside(tmp_path) == before


@pytest.mark.parametrize("command", SHELL_METACHARACTERS)
def test_shell_metacharacters_are_denied_by_an_argument_limit(tmp_path: Path, command: str) -> None:
    """``ls`` allowed with one argument: a command smuggled after it has too many."""
    build_world(tmp_path)
    manifest = scripted_manifest(tools=[shell_tool({"ls": {"max_args": 1}})])
    script = [
        calls(call("sh", {"command": command}, id="attack")),
        calls(call("sh", {"command": "ls inside.txt"}, id="benign")),
        answer(),
    ]

    _, events = run_in(tmp_path, manifest, script=script)

    assert assert_denied(events, "attack").rule == "scope"
    assert executed(events) == ["benign"]
    assert pwned_anywhere(tmp_path) == []


@pytest.mark.parametrize("command", SHELL_METACHARACTERS)
def test_shell_metacharacters_never_reach_a_shell(tmp_path: Path, command: str) -> None:
    """Without an argument limit the call is allowed by design (the shell tool documents
    that metacharacters are plain characters): ``ls`` runs once, with them as literal file
    names, no shell interprets them, and nothing is created."""
    build_world(tmp_path)
    manifest = scripted_manifest(tools=[shell_tool({"ls": {}})])
    script = [calls(call("sh", {"command": command}, id="attack")), answer()]

    _, events = run_in(tmp_path, manifest, script=script)

    assert pwned_anywhere(tmp_path) == []
    if "$" in command or "`" in command:  # a shell would expand it: refused before policy
        decision = decided(events, "attack")
        assert (decision.effect, decision.failure_class) == ("deny", "invalid_arguments")
        return
    assert decided(events, "attack").effect == "allow"
    finished = one(events, ev.ToolFinished, call_id="attack")
    assert finished.evidence["argv"] == ["ls", *command.split()[1:]]  # literal arguments


# --- http -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[RecordingServer, RecordingServer]]:
    with serve("127.0.0.1") as allowed, serve("127.0.0.2") as forbidden:
        yield allowed, forbidden


@pytest.fixture
def allowed(servers: tuple[RecordingServer, RecordingServer]) -> RecordingServer:
    servers[0].requests.clear()
    return servers[0]


@pytest.fixture
def forbidden(servers: tuple[RecordingServer, RecordingServer]) -> RecordingServer:
    servers[1].requests.clear()
    return servers[1]


HTTP_ATTACKS = [
    "http://127.0.0.2:{fp}/",
    "http://allowed@127.0.0.2:{fp}/",
    "http://127.0.0.1:{ap}@127.0.0.2:{fp}/",
    "http://127.0.0.1:{ap}:pw@127.0.0.2:{fp}/",
    "http://127.0.0.2:{fp}\\@127.0.0.1:{ap}/",
    "http://2130706434:{fp}/",
    "http://0x7f000002:{fp}/",
    "http://0x7f.0.0.2:{fp}/",
    "http://0177.0.0.2:{fp}/",
    "http://127.2:{fp}/",
    "http://[::ffff:127.0.0.2]:{fp}/",
    "http://[::ffff:7f00:2]:{fp}/",
    # the allowed server itself, spelled oddly: refused too, so nothing reaches either
    "http://2130706433:{ap}/",
    "http://0x7f.0.0.1:{ap}/",
    "http://127.1:{ap}/",
    "http://[::ffff:127.0.0.1]:{ap}/",
    "http://localhost:{ap}/",
    "file:///etc/passwd",
]


def http_tool(*hosts: str) -> dict[str, Any]:
    return {"name": "fetch", "uses": "http.get", "timeout_s": 5, "scope": {"hosts": list(hosts)}}


@pytest.mark.parametrize("template", HTTP_ATTACKS)
def test_http_get_never_reaches_a_host_outside_the_allowlist(
    tmp_path: Path, allowed: RecordingServer, forbidden: RecordingServer, template: str
) -> None:
    url = template.format(ap=allowed.port, fp=forbidden.port)
    manifest = scripted_manifest(tools=[http_tool(f"127.0.0.1:{allowed.port}")])
    script = [
        calls(call("fetch", {"url": url}, id="attack")),
        calls(call("fetch", {"url": f"{allowed.base}/benign"}, id="benign")),
        answer(),
    ]

    result, events = run_in(tmp_path, manifest, script=script)

    assert result.status == "completed"
    assert assert_denied(events, "attack").rule == "scope"
    assert forbidden.requests == []
    assert allowed.requests == ["/benign"]  # the tool works; only the attack was stopped
    assert one(events, ev.ToolFinished, call_id="benign").ok


def test_policy_denies_a_host_the_scope_would_allow(
    tmp_path: Path, allowed: RecordingServer, forbidden: RecordingServer
) -> None:
    """Two layers: the scope allows both servers, the policy only the first."""
    tool = http_tool(f"127.0.0.1:{allowed.port}", f"127.0.0.2:{forbidden.port}")
    policy = {
        "default": "deny",
        "rules": [
            {
                "id": "only-local-1",
                "tools": ["http.get"],
                "when": {"url": {"host_in": [f"127.0.0.1:{allowed.port}"]}},
                "effect": "allow",
            }
        ],
    }
    script = [
        calls(call("fetch", {"url": f"{forbidden.base}/attack"}, id="attack")),
        calls(call("fetch", {"url": f"http://x@{forbidden.base[7:]}/attack"}, id="userinfo")),
        calls(call("fetch", {"url": f"{allowed.base}/benign"}, id="benign")),
        answer(),
    ]

    _, events = run_in(tmp_path, scripted_manifest(tools=[tool], policy=policy), script=script)

    decision = assert_denied(events, "attack")
    assert (decision.rule, decision.failure_class) == (None, "policy_denied")
    assert assert_denied(events, "userinfo").rule == "scope"
    assert decided(events, "benign").rule == "only-local-1"
    assert forbidden.requests == []
    assert allowed.requests == ["/benign"]


def test_a_redirect_to_a_forbidden_host_is_not_followed(
    tmp_path: Path, allowed: RecordingServer, forbidden: RecordingServer
) -> None:
    target = f"{forbidden.base}/stolen"
    manifest = scripted_manifest(tools=[http_tool(f"127.0.0.1:{allowed.port}")])
    script = [
        calls(call("fetch", {"url": f"{allowed.base}/redirect?to={target}"}, id="hop")),
        answer(),
    ]

    _, events = run_in(tmp_path, manifest, script=script)

    finished = one(events, ev.ToolFinished, call_id="hop")
    assert (finished.ok, finished.failure_class) == (False, "policy_denied")
    assert forbidden.requests == []


# --- property: generated mixes of hostile and benign writes -----------------------------------

HOSTILE_PATHS = [
    "../outside.txt",
    "../../outside.txt",
    "../ws-evil/planted.txt",
    "out/planted.txt",
    "out/kept.txt",
    "alias.txt",
    "dangling",
    "inside/../../outside.txt",
    "..\u2215outside.txt",
    "\uff0e\uff0e/outside.txt",
    "{root}/outside.txt",
    "{root}/ws-evil/planted.txt",
    "{root}/outside_dir/kept.txt",
]
BENIGN_NAME = st.text(alphabet="abcdefghij0123456789_-", min_size=1, max_size=8)
BENIGN_PATH = st.one_of(
    BENIGN_NAME.map(lambda n: f"{n}.txt"),
    st.tuples(BENIGN_NAME, BENIGN_NAME).map(lambda p: f"{p[0]}/{p[1]}.txt"),
    st.just("inside.txt"),
)
WRITE = st.tuples(
    st.one_of(st.sampled_from(HOSTILE_PATHS), BENIGN_PATH),
    st.text(max_size=40),
)
TURNS = st.lists(st.lists(WRITE, min_size=1, max_size=3), min_size=1, max_size=4)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(turns=TURNS)
def test_generated_writes_never_touch_anything_outside_the_workspace(
    turns: list[list[tuple[str, str]]],
) -> None:
    with tempfile.TemporaryDirectory(prefix="govrun-hyp-") as tmp:
        folder = Path(tmp)
        build_world(folder)
        before = snapshot_outside(folder)
        ws = folder / WORKSPACE
        links = snapshot_links(ws)
        script: list[dict[str, Any]] = []
        for t, writes in enumerate(turns):
            script.append(
                calls(
                    *(
                        call(
                            "fs_write",
                            {"path": path.format(root=folder), "content": content},
                            id=f"c{t}_{i}",
                        )
                        for i, (path, content) in enumerate(writes)
                    )
                )
            )
        script.append(answer())

        result, events = run_in(folder, scripted_manifest(), script=script)

        assert result.status == "completed"
        assert snapshot_outside(folder) == before
        assert snapshot_links(ws) == links
        hostile = {
            f"c{t}_{i}"
            for t, writes in enumerate(turns)
            for i, (path, _) in enumerate(writes)
            if path in HOSTILE_PATHS
        }
        for decided_call in ev_decisions(events):
            if decided_call.call_id in hostile:
                assert decided_call.decision.effect == "deny", decided_call
            else:
                assert decided_call.decision.effect == "allow", decided_call
        # Every file now in the workspace was there before or was written by an allowed call.
        expected: dict[str, str] = {"inside.txt": "inside"}
        for t, writes in enumerate(turns):
            for i, (path, content) in enumerate(writes):
                if f"c{t}_{i}" not in hostile:
                    expected[path] = content
        found = {
            p.relative_to(ws).as_posix(): p.read_bytes().decode()
            for p in ws.rglob("*")
            if p.is_file() and not p.is_symlink()
        }
        assert found == expected


def ev_decisions(events: list[ev.Event]) -> list[ev.ToolCall]:
    return [e for e in events if isinstance(e, ev.ToolCall)]
