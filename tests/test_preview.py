"""``preview_call``: what an fs.write / fs.delete would change, read only through the tool's
own confinement. Real manifests, real files and symlinks in ``tmp_path``; no mocks.

Layout (``tmp_path``)::

    ws/            the first root: notes.txt, blob.bin, sub/,
                   flink -> ../outside/secret.txt, link_out -> ../outside, inlink -> notes.txt
    tmp/           the second root of the write tool
    outside/secret.txt
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from govrun.runtime.govern.preview import preview_call
from govrun.runtime.govern.toolbox import PreparedCall, Toolbox
from govrun.runtime.manifest.schema import parse_manifest
from govrun.runtime.ports import ToolCallRequest

SECRET = "SECRET-CONTENT-NEVER-SHOWN"
NOTES = "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\n"

MANIFEST = """
name: previewer
model: {provider: openai, name: gpt-4o-mini}
tools:
  - {name: write, uses: fs.write, scope: {roots: [ws, tmp]}}
  - {name: delete, uses: fs.delete, scope: {roots: [ws]}}
  - {name: read, uses: fs.read, scope: {roots: [ws]}}
  - {name: sh, uses: shell, scope: {roots: [ws], commands: {ls: {}}}}
  - {name: add, python: "tests.support.pytools:add"}
"""


@pytest.fixture
def toolbox(tmp_path: Path) -> Toolbox:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    for folder in (ws / "sub", tmp_path / "tmp", outside):
        folder.mkdir(parents=True)
    (outside / "secret.txt").write_text(SECRET)
    (ws / "notes.txt").write_text(NOTES)
    (ws / "flink").symlink_to(outside / "secret.txt")
    (ws / "link_out").symlink_to(outside, target_is_directory=True)
    (ws / "inlink").symlink_to("notes.txt")
    return Toolbox(parse_manifest(MANIFEST, base_dir=tmp_path))


def prepared(toolbox: Toolbox, tool: str, **arguments: Any) -> PreparedCall:
    call = toolbox.prepare(3, ToolCallRequest(id="c1", name=tool, arguments=json.dumps(arguments)))
    assert isinstance(call, PreparedCall), call
    return call


def preview(toolbox: Toolbox, tool: str, max_bytes: int = 64_000, **arguments: Any) -> str | None:
    return preview_call(prepared(toolbox, tool, **arguments), max_bytes=max_bytes)


# --- fs.write --------------------------------------------------------------------------------


def test_changed_file_is_a_unified_diff_with_three_lines_of_context(toolbox: Toolbox) -> None:
    new = NOTES.replace("five\n", "FIVE\n")
    assert preview(toolbox, "write", path="notes.txt", content=new) == (
        "--- a/notes.txt\n"
        "+++ b/notes.txt\n"
        "@@ -2,7 +2,7 @@\n"
        " two\n three\n four\n-five\n+FIVE\n six\n seven\n eight\n"
    )


def test_new_file_diffs_from_dev_null(toolbox: Toolbox, tmp_path: Path) -> None:
    text = preview(toolbox, "write", path="sub/new/hello.md", content="# Hi\nthere\n")
    assert text == "--- /dev/null\n+++ b/sub/new/hello.md\n@@ -0,0 +1,2 @@\n+# Hi\n+there\n"
    assert not (tmp_path / "ws/sub/new").exists()  # a preview creates nothing


def test_missing_final_newline_is_marked(toolbox: Toolbox) -> None:
    text = preview(toolbox, "write", path="notes.txt", content="one\ntwo")
    assert text is not None
    assert text.endswith("+two\n\\ No newline at end of file\n"), text
    assert "-eight\n" in text


def test_path_in_second_root_and_symlink_inside_root(toolbox: Toolbox, tmp_path: Path) -> None:
    (tmp_path / "tmp/a.txt").write_text("old\n")
    text = preview(toolbox, "write", path=str(tmp_path / "tmp/a.txt"), content="new\n")
    assert text == "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-old\n+new\n"
    # a symlink inside the root: the diff names the file that would really be written
    text = preview(toolbox, "write", path="inlink", content=NOTES + "nine\n")
    assert text is not None and text.startswith("--- a/notes.txt\n+++ b/notes.txt\n"), text


def test_unchanged_and_empty_files(toolbox: Toolbox, tmp_path: Path) -> None:
    assert preview(toolbox, "write", path="notes.txt", content=NOTES) == (
        "no change: notes.txt already has this content"
    )
    assert preview(toolbox, "write", path="empty.txt", content="") == (
        "creates the empty file empty.txt"
    )


def test_binary_file_is_a_one_line_summary(toolbox: Toolbox, tmp_path: Path) -> None:
    (tmp_path / "ws/blob.bin").write_bytes(b"\x00\xff" * 6172 + b"\x00")  # 12,345 bytes
    assert preview(toolbox, "write", path="blob.bin", content="x" * 200) == (
        "binary file, 12,345 bytes → 200 bytes"
    )
    (tmp_path / "ws/latin1.txt").write_bytes("café\n".encode("latin-1"))  # not UTF-8
    assert preview(toolbox, "write", path="latin1.txt", content="café\n") == (
        "binary file, 5 bytes → 6 bytes"
    )
    assert preview(toolbox, "write", path="nul.txt", content="a\x00b") == (
        "new binary file, 3 bytes"
    )


def test_oversized_content_is_a_one_line_summary(toolbox: Toolbox, tmp_path: Path) -> None:
    (tmp_path / "ws/big.txt").write_text("x" * 200_000)
    assert preview(toolbox, "write", path="big.txt", content="small\n") == (
        "large file, 200,000 bytes → 6 bytes (no diff over 64,000 bytes)"
    )
    assert preview(toolbox, "write", path="notes.txt", max_bytes=20, content="y" * 30) == (
        f"large file, {len(NOTES)} bytes → 30 bytes (no diff over 20 bytes)"
    )
    assert preview(toolbox, "write", path="fresh.txt", max_bytes=20, content="y" * 30) == (
        "new large file, 30 bytes (no diff over 20 bytes)"
    )


# --- fs.delete -------------------------------------------------------------------------------


def test_delete_is_the_diff_of_the_file_to_nothing(toolbox: Toolbox, tmp_path: Path) -> None:
    (tmp_path / "ws/sub/short.txt").write_text("a\nb\n")
    assert preview(toolbox, "delete", path="sub/short.txt") == (
        "--- a/sub/short.txt\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n"
    )
    assert (tmp_path / "ws/sub/short.txt").exists()


def test_delete_edge_cases(toolbox: Toolbox, tmp_path: Path) -> None:
    assert preview(toolbox, "delete", path="gone.txt") == (
        "gone.txt does not exist; nothing would be deleted"
    )
    (tmp_path / "ws/blob.bin").write_bytes(b"\x00" * 10)
    assert preview(toolbox, "delete", path="blob.bin") == "binary file, 10 bytes → deleted"
    (tmp_path / "ws/big.txt").write_text("z" * 70_000)
    assert preview(toolbox, "delete", path="big.txt") == (
        "large file, 70,000 bytes → deleted (no diff over 64,000 bytes)"
    )
    (tmp_path / "ws/empty.txt").write_text("")
    assert preview(toolbox, "delete", path="empty.txt") == "deletes the empty file empty.txt"


def test_deleting_a_symlink_shows_the_link_not_its_target(toolbox: Toolbox) -> None:
    """fs.delete removes the link itself; the preview says so and never reads the target."""
    text = preview(toolbox, "delete", path="flink")
    assert text is not None
    assert text.startswith("deletes the symlink flink → "), text
    assert text.endswith("outside/secret.txt (its target is kept)"), text
    assert SECRET not in text


# --- never outside the roots; never raises ----------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.txt",  # dot-dot out of the root
        "OUTSIDE_ABSOLUTE",  # an absolute path outside every root
        "flink",  # a symlink inside the root to a file outside it
        "link_out/secret.txt",  # through a symlinked directory
        "../ws-evil/x",  # a sibling sharing the root's name prefix
        "notes\u2024txt",  # a look-alike character
        ".",  # the root itself
        "sub",  # a directory
    ],
)
def test_no_preview_outside_the_roots_or_of_non_files(
    toolbox: Toolbox, tmp_path: Path, path: str
) -> None:
    (tmp_path / "ws-evil").mkdir()
    (tmp_path / "ws-evil/x").write_text(SECRET)
    if path == "OUTSIDE_ABSOLUTE":
        path = str(tmp_path / "outside/secret.txt")
    assert preview(toolbox, "write", path=path, content="new\n") is None
    if path not in ("flink",):  # deleting the link itself is inside the root (tested above)
        assert preview(toolbox, "delete", path=path) is None


def test_other_tools_have_no_preview(toolbox: Toolbox) -> None:
    assert preview(toolbox, "read", path="notes.txt") is None
    assert preview(toolbox, "sh", command="ls") is None
    assert preview(toolbox, "add", a=1, b=2) is None


def test_never_raises(toolbox: Toolbox) -> None:
    call = prepared(toolbox, "write", path="notes.txt", content="x\n")
    broken = PreparedCall(
        call.call_id,
        call.name,
        call.spec,
        object(),  # type: ignore[arg-type]
        call.args,
        {},
        call.canonical,
        call.call_hash,
        call.risk,
    )
    assert preview_call(broken) is None  # a tool without a confinement
    lone_surrogate = prepared(toolbox, "write", path="notes.txt", content="x")
    assert lone_surrogate.canonical is not None
    lone_surrogate.canonical.arguments["content"] = "\ud800"  # cannot be encoded
    assert preview_call(lone_surrogate) is None
