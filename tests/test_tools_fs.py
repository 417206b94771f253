"""fs.* tools: every denied call must leave the filesystem outside the root untouched.

Layout per test (``tmp_path``)::

    ws/            the root: notes.txt, sub/inner.txt,
                   link_out -> ../outside (dir), flink -> ../outside/secret.txt,
                   inlink -> notes.txt (inside), dangle -> ../outside/new.txt (dangling)
    ws-evil/x      a sibling whose name starts with the root's name
    outside/secret.txt
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govrun.runtime.tools import (
    ScopeViolation,
    Tool,
    ToolConfigError,
    ToolResult,
    UnknownToolError,
    build_builtin,
    parse_arguments,
)
from govrun.runtime.tools.fs import FsDelete, FsList, FsRead, FsWrite, Located

SECRET = "SECRET-CONTENT"


def make_layout(base: Path) -> Path:
    ws, outside, evil = base / "ws", base / "outside", base / "ws-evil"
    for d in (ws / "sub", outside, evil):
        d.mkdir(parents=True)
    (outside / "secret.txt").write_text(SECRET)
    (evil / "x").write_text("evil")
    (ws / "notes.txt").write_text("hello notes")
    (ws / "sub" / "inner.txt").write_text("inner")
    (ws / "link_out").symlink_to(outside, target_is_directory=True)
    (ws / "flink").symlink_to(outside / "secret.txt")
    (ws / "inlink").symlink_to("notes.txt")
    (ws / "dangle").symlink_to(outside / "new.txt")
    return ws


def snapshot(base: Path, *, exclude: Path) -> dict[str, Any]:
    """Everything under ``base`` except the root ``exclude``: name -> content hash / target."""
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        here = Path(dirpath)
        if here == exclude or exclude in here.parents:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = here / name
            if p == exclude:
                continue
            if p.is_symlink():
                out[str(p)] = ("link", os.readlink(p))
            elif p.is_file():
                out[str(p)] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                out[str(p)] = ("dir",)
    return out


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_layout(tmp_path)


def tools(ws: Path, **kw: Any) -> dict[str, Tool]:
    return {
        uses: build_builtin(uses, name=uses.replace(".", "_"), roots=[ws], **kw)
        for uses in ("fs.read", "fs.write", "fs.list", "fs.delete")
    }


def call(tool: Tool, **args: Any) -> ToolResult:
    return tool.run(parse_arguments(tool, args))


def args_for(uses: str, path: str) -> dict[str, str]:
    return {"path": path, "content": "PWNED"} if uses == "fs.write" else {"path": path}


def assert_denied(tool: Tool, args: dict[str, Any]) -> ToolResult:
    with pytest.raises(ScopeViolation):
        tool.check(parse_arguments(tool, args))
    result = call(tool, **args)
    assert not result.ok
    assert result.failure_class == "policy_denied", result
    assert SECRET not in result.output
    return result


# --- normal operation -------------------------------------------------------------------


def test_read_inside_and_through_inside_symlink(ws: Path) -> None:
    t = tools(ws)["fs.read"]
    assert call(t, path="notes.txt").output == "hello notes"
    assert call(t, path=str(ws / "sub/inner.txt")).output == "inner"
    r = call(t, path="inlink")
    assert r.ok and r.output == "hello notes"
    assert r.evidence["path"] == "notes.txt"
    assert r.evidence["sha256"] == hashlib.sha256(b"hello notes").hexdigest()


def test_read_is_limited_and_marks_truncation(ws: Path) -> None:
    (ws / "big.txt").write_text("0123456789" * 100)
    r = call(tools(ws, max_output_bytes=10)["fs.read"], path="big.txt")
    assert r.ok and r.truncated
    assert r.output == "0123456789\n[truncated 990 bytes]"


def test_read_binary_says_so(ws: Path) -> None:
    (ws / "blob.bin").write_bytes(b"\x00\xff\xfeabc")
    r = call(tools(ws)["fs.read"], path="blob.bin")
    assert r.ok and r.data["binary"] is True
    assert r.output.startswith("[binary file, 6 bytes")


def test_read_utf8_cut_mid_character_is_not_binary(ws: Path) -> None:
    (ws / "u.txt").write_text("ééééé")  # 2 bytes each
    r = call(tools(ws, max_output_bytes=3)["fs.read"], path="u.txt")
    assert r.data["binary"] is False and r.output.startswith("é\n[truncated")


def test_read_fifo_is_refused_without_blocking(ws: Path) -> None:
    os.mkfifo(ws / "pipe")
    r = call(tools(ws)["fs.read"], path="pipe")
    assert not r.ok and r.failure_class == "tool_error" and "not a regular file" in r.error


def test_read_missing_file_is_a_tool_error(ws: Path) -> None:
    r = call(tools(ws)["fs.read"], path="nope.txt")
    assert r.failure_class == "tool_error" and "nope.txt" in r.error


def test_write_creates_parents_and_records_evidence(ws: Path) -> None:
    t = tools(ws)["fs.write"]
    r = call(t, path="new/deeper/file.txt", content="héllo")
    assert r.ok, r
    assert (ws / "new/deeper/file.txt").read_text() == "héllo"
    ev = r.evidence
    assert ev["path"] == "new/deeper/file.txt"
    assert ev["sha256"] == hashlib.sha256("héllo".encode()).hexdigest()
    assert ev["bytes"] == len("héllo".encode()) and ev["pre_image_sha256"] is None
    assert ev["created_dirs"] == ["new", "new/deeper"]


def test_overwrite_records_pre_image_keeps_mode_and_leaves_no_temp_files(ws: Path) -> None:
    (ws / "notes.txt").chmod(0o640)
    r = call(tools(ws)["fs.write"], path="notes.txt", content="v2")
    assert r.evidence["pre_image_sha256"] == hashlib.sha256(b"hello notes").hexdigest()
    assert (ws / "notes.txt").read_text() == "v2"
    assert (ws / "notes.txt").stat().st_mode & 0o777 == 0o640
    assert not [p for p in ws.iterdir() if "govrun" in p.name]


def test_write_through_inside_symlink_replaces_the_target(ws: Path) -> None:
    r = call(tools(ws)["fs.write"], path="inlink", content="via link")
    assert r.ok and r.evidence["path"] == "notes.txt"
    assert (ws / "notes.txt").read_text() == "via link"


def test_list_sorted_with_types_and_sizes(ws: Path) -> None:
    r = call(tools(ws)["fs.list"])
    names = [e["name"] for e in r.data["entries"]]
    assert names == sorted(names)
    by_name = {e["name"]: e for e in r.data["entries"]}
    assert by_name["sub"]["type"] == "dir"
    assert by_name["notes.txt"] == {"name": "notes.txt", "type": "file", "size": 11}
    assert by_name["link_out"]["type"] == "symlink"
    assert "dir      sub/" in r.output


def test_delete_file_records_pre_image(ws: Path) -> None:
    r = call(tools(ws)["fs.delete"], path="sub/inner.txt")
    assert r.ok and not (ws / "sub/inner.txt").exists()
    assert r.evidence == {
        "path": "sub/inner.txt",
        "root": str(ws),
        "existed": True,
        "kind": "file",
        "sha256_before": hashlib.sha256(b"inner").hexdigest(),
    }
    again = call(tools(ws)["fs.delete"], path="sub/inner.txt")
    assert again.ok and again.evidence["existed"] is False


def test_delete_symlink_removes_the_link_not_its_outside_target(ws: Path) -> None:
    r = call(tools(ws)["fs.delete"], path="flink")
    assert r.ok and r.evidence["kind"] == "symlink"
    assert not (ws / "flink").is_symlink()
    assert (ws.parent / "outside/secret.txt").read_text() == SECRET


def test_delete_refuses_directories_and_the_root(ws: Path) -> None:
    t = tools(ws)["fs.delete"]
    assert call(t, path="sub").failure_class == "tool_error"
    for root in (".", str(ws), "sub/.."):
        assert_denied(t, {"path": root})
    assert (ws / "sub").is_dir()


def test_multiple_roots_relative_paths_use_the_first(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (b / "f").write_text("in b")
    t = build_builtin("fs.read", name="r", roots=[a, b])
    assert call(t, path=str(b / "f")).output == "in b"
    assert call(t, path="f").failure_class == "tool_error"  # a/f does not exist
    assert "outside roots" in assert_denied(t, {"path": "../c"}).error


# --- escapes: nothing outside the root is read, written, listed or deleted ---------------

ESCAPES = [
    "../outside/secret.txt",
    "sub/../../outside/secret.txt",
    "link_out/secret.txt",
    "link_out/../outside/secret.txt",
    "flink",
    "dangle",
    "{base}/outside/secret.txt",
    "{base}/ws-evil/x",
    "../ws-evil/x",
    "/etc/passwd",
    "..",
]


ESCAPE_CASES = [
    (uses, path)
    for uses in ("fs.read", "fs.write", "fs.list", "fs.delete")
    for path in ESCAPES
    # deleting a symlink removes the link itself (inside the root): tested separately
    if not (uses == "fs.delete" and path in ("flink", "dangle"))
]


@pytest.mark.parametrize(("uses", "path"), ESCAPE_CASES)
def test_escapes_are_denied_and_touch_nothing(ws: Path, uses: str, path: str) -> None:
    base = ws.parent
    before = snapshot(base, exclude=ws)
    path = path.format(base=base)
    result = assert_denied(tools(ws)[uses], args_for(uses, path))
    assert snapshot(base, exclude=ws) == before
    assert not (base / "outside/new.txt").exists()
    if path.startswith("../outside"):
        assert f"outside root '{ws.name}'" in result.error


def test_denial_message_names_the_resolved_path_and_root(ws: Path) -> None:
    """Without this machine's folder layout: the model and the trace see the same text
    wherever the run happens, so it replays anywhere."""
    r = assert_denied(tools(ws)["fs.read"], {"path": "../x"})
    assert r.error == f"path '../x' resolves to ../x, outside root '{ws.name}'"
    r = assert_denied(tools(ws)["fs.read"], {"path": "/etc/passwd"})
    assert r.error == f"path '/etc/passwd' resolves to /etc/passwd, outside root '{ws.name}'"
    assert str(ws.parent) not in r.error


def test_sibling_with_root_prefix_is_outside(ws: Path) -> None:
    evil = ws.parent / "ws-evil"
    assert str(evil).startswith(str(ws))  # the trap a string-prefix check falls into
    assert_denied(tools(ws)["fs.write"], {"path": str(evil / "x"), "content": "PWNED"})
    assert (evil / "x").read_text() == "evil"


@pytest.mark.parametrize(
    "path",
    [
        "．．／outside/secret.txt",  # fullwidth dots and solidus
        "\u2024\u2024/outside/secret.txt",  # one dot leader
        "sub\uff0finner.txt",
        "..\u2215outside",  # division slash (survives NFKC)
        "sub\u2044x",  # fraction slash
        "a\x00b",
        "a\nb",
        "x\u202etxt.exe",  # right-to-left override
        "x\u200bx",  # zero-width space
        "ﬁle",  # ligature: NFKC changes it
    ],
)
def test_lookalike_and_control_characters_are_denied(ws: Path, path: str) -> None:
    before = sorted(p.name for p in ws.rglob("*"))
    for uses in ("fs.read", "fs.write", "fs.delete"):
        assert_denied(tools(ws)[uses], args_for(uses, path))
    assert sorted(p.name for p in ws.rglob("*")) == before


def test_nfc_unicode_names_are_fine(ws: Path) -> None:
    r = call(tools(ws)["fs.write"], path="résumé.txt", content="ok")
    assert r.ok and (ws / "résumé.txt").read_text() == "ok"


def test_symlink_loop_is_denied(ws: Path) -> None:
    (ws / "loop1").symlink_to("loop2")
    (ws / "loop2").symlink_to("loop1")
    assert_denied(tools(ws)["fs.write"], {"path": "loop1/x", "content": "PWNED"})


def test_empty_path_is_invalid(ws: Path) -> None:
    r = call(tools(ws)["fs.read"], path="")
    assert r.failure_class == "invalid_arguments"


# --- time of check vs time of use --------------------------------------------------------


def swap_dir_for_symlink(directory: Path, target: Path) -> None:
    for child in directory.iterdir():
        child.unlink()
    directory.rmdir()
    directory.symlink_to(target, target_is_directory=True)


@pytest.mark.parametrize("uses", ["fs.read", "fs.write", "fs.list", "fs.delete"])
def test_symlink_swapped_in_after_check_is_denied_at_run(ws: Path, uses: str) -> None:
    t = tools(ws)[uses]
    path = "sub" if uses == "fs.list" else "sub/inner.txt"
    parsed = parse_arguments(t, args_for(uses, path))
    t.check(parsed)  # approved while sub/ is a real directory
    (ws.parent / "outside/inner.txt").write_text(SECRET)
    before = snapshot(ws.parent, exclude=ws)
    swap_dir_for_symlink(ws / "sub", ws.parent / "outside")
    result = t.run(parsed)
    assert result.failure_class == "policy_denied" and SECRET not in result.output
    assert snapshot(ws.parent, exclude=ws) == before


class _SwapAfterResolve:
    """Mixin: change the world between run()'s own check and its fd walk — the race a
    path check alone cannot win; only the O_NOFOLLOW walk stops it."""

    swap: Any

    def _locate(self, args: Any) -> Located:
        loc = super()._locate(args)  # type: ignore[misc]
        self.swap()
        return loc


@pytest.mark.parametrize("base_cls", [FsRead, FsWrite, FsList, FsDelete])
def test_directory_swapped_during_run_is_caught_by_the_fd_walk(ws: Path, base_cls: type) -> None:
    tool = type("Racy", (_SwapAfterResolve, base_cls), {})(name="racy", roots=[ws])
    tool.swap = lambda: swap_dir_for_symlink(ws / "sub", ws.parent / "outside")
    (ws.parent / "outside/inner.txt").write_text(SECRET)
    path = "sub" if base_cls is FsList else "sub/inner.txt"
    before = snapshot(ws.parent, exclude=ws)
    result = call(tool, **args_for(base_cls.__name__.replace("Fs", "fs.").lower(), path))
    assert result.failure_class == "policy_denied", result
    assert "symlink" in result.error and SECRET not in result.output
    assert snapshot(ws.parent, exclude=ws) == before


@pytest.mark.parametrize("base_cls", [FsRead, FsWrite])
def test_final_file_swapped_for_symlink_during_run_is_denied(ws: Path, base_cls: type) -> None:
    def swap() -> None:
        (ws / "notes.txt").unlink()
        (ws / "notes.txt").symlink_to(ws.parent / "outside/secret.txt")

    tool = type("Racy", (_SwapAfterResolve, base_cls), {})(name="racy", roots=[ws])
    tool.swap = swap
    args = args_for("fs.write" if base_cls is FsWrite else "fs.read", "notes.txt")
    result = call(tool, **args)
    assert result.failure_class == "policy_denied", result
    assert (ws.parent / "outside/secret.txt").read_text() == SECRET
    assert SECRET not in result.output


def test_fd_walk_refuses_symlinked_components(ws: Path) -> None:
    scope = FsWrite(name="w", roots=[ws]).scope
    with pytest.raises(ScopeViolation), scope.open_dir(ws, ("link_out",)):
        pass
    with pytest.raises(ScopeViolation), scope.open_dir(ws, ("link_out", "made"), create=True):
        pass
    assert not (ws.parent / "outside/made").exists()


# --- arguments and registry ---------------------------------------------------------------


def test_hallucinated_and_mistyped_arguments_are_invalid(ws: Path) -> None:
    t = tools(ws)["fs.write"]
    for bad in ({"path": "a", "content": "x", "mode": "w"}, {"path": 1, "content": "x"}, {}):
        with pytest.raises(ScopeViolation) as exc:
            parse_arguments(t, bad)
        assert exc.value.failure_class == "invalid_arguments"


def test_run_revalidates_arguments_of_the_wrong_model(ws: Path) -> None:
    read, write = tools(ws)["fs.read"], tools(ws)["fs.write"]
    foreign = parse_arguments(read, {"path": "../outside/secret.txt"})
    r = write.run(foreign)
    assert r.failure_class == "invalid_arguments"  # content missing: nothing written


def test_json_schema_is_closed(ws: Path) -> None:
    schema = tools(ws)["fs.write"].json_schema()
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"path", "content"}
    assert sorted(schema["required"]) == ["content", "path"]


def test_tools_satisfy_the_protocol_and_results_are_frozen(ws: Path) -> None:
    t = tools(ws)["fs.read"]
    assert isinstance(t, Tool)
    r = call(t, path="notes.txt")
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError
        r.ok = False  # type: ignore[misc]


def test_unknown_builtin_lists_available_with_did_you_mean() -> None:
    with pytest.raises(UnknownToolError) as exc:
        build_builtin("fs.raed", name="x")
    assert isinstance(exc.value, LookupError)
    assert "Did you mean 'fs.read'?" in str(exc.value) and "http.get" in str(exc.value)


def test_scope_that_does_not_apply_is_a_config_error(ws: Path) -> None:
    with pytest.raises(ToolConfigError):
        build_builtin("fs.read", name="r", roots=[ws], hosts=["example.org"])
    with pytest.raises(ToolConfigError):
        build_builtin("fs.read", name="r", roots=[])


# --- property: no generated path reaches outside the root --------------------------------

SEGMENTS = st.sampled_from(
    [
        "..",
        ".",
        "",
        "a",
        "sub",
        "link_out",
        "flink",
        "dangle",
        "inlink",
        "outside",
        "secret.txt",
        "ws",
        "ws-evil",
        "x",
        "．",
        "．．",
        "\u2024\u2024",
        "／",
        "\u2215",
        "~",
    ]
)


@pytest.fixture(scope="module")
def prop_base() -> Any:
    """One layout for all examples (hypothesis reuses it; function-scoped tmp_path would
    not be reset between examples anyway)."""
    with tempfile.TemporaryDirectory(prefix="govrun-fs-prop-") as d:
        base = Path(d).resolve()
        make_layout(base)
        yield base


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(SEGMENTS, min_size=1, max_size=7), absolute=st.booleans())
def test_property_generated_paths_never_escape(
    prop_base: Path, parts: list[str], absolute: bool
) -> None:
    ws = prop_base / "ws"
    before = snapshot(prop_base, exclude=ws)
    assert before[str(prop_base / "outside/secret.txt")][0] == "file"
    path = "/".join(parts)
    if absolute:
        path = f"{prop_base}/{path}"
    r = call(FsRead(name="r", roots=[ws]), path=path)
    assert SECRET not in r.output
    w = call(FsWrite(name="w", roots=[ws]), path=path, content="PWNED")
    if w.ok:
        assert (ws / w.evidence["path"]).resolve().is_relative_to(ws)
    else:
        assert w.failure_class in ("policy_denied", "invalid_arguments", "tool_error")
    assert snapshot(prop_base, exclude=ws) == before
