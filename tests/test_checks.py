"""Verification checks against real files in ``tmp_path``: each kind passes and fails with
evidence, paths stay inside their roots, and missing evidence is its own failure class.

Layout per test::

    base/          the manifest folder (success checks resolve here)
    base/ws/       the tool's root (per-call checks resolve here)
    outside/       secret.txt, which no check may read
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from govrun.runtime.govern.verification import (
    MAX_READ_BYTES,
    CallContext,
    CheckOutcome,
    default_evidence_outcome,
    verify_call,
    verify_success,
)
from govrun.runtime.manifest.schema import Check, parse_manifest
from govrun.runtime.tools import build_builtin, parse_arguments
from govrun.runtime.tools.base import ToolResult
from govrun.runtime.trace.events import Verification, parse_event

CHECK: TypeAdapter[Any] = TypeAdapter(Check)
FNS = "tests.support.checkfns"


def sha(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def check(**fields: Any) -> Any:
    return CHECK.validate_python(fields)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    base = tmp_path / "base"
    (base / "ws").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("SECRET-CONTENT")
    return base


@pytest.fixture
def ws(base: Path) -> Path:
    return base / "ws"


def call(
    ws: Path | None,
    *,
    tool: str = "write",
    arguments: dict[str, Any] | None = None,
    **result: Any,
) -> CallContext:
    result.setdefault("ok", True)
    return CallContext(
        tool=tool,
        arguments=arguments if arguments is not None else {},
        result=ToolResult(**result),
        roots=[ws] if ws is not None else [],
    )


def one(checks: list[Any], ctx: CallContext, base: Path) -> CheckOutcome:
    [outcome] = verify_call(checks, ctx, base_dir=base)
    return outcome


def assert_failed(outcome: CheckOutcome, failure: str = "verification_failed") -> None:
    assert not outcome.passed
    assert outcome.failure_class == failure, outcome.detail


# --- file_exists and paths -----------------------------------------------------------------


def test_file_exists_records_size_and_hash(base: Path, ws: Path) -> None:
    (ws / "report.md").write_text("x" * 1234)
    ctx = call(ws, arguments={"path": "report.md"})
    outcome = one([check(check="file_exists", path="{args.path}", id="exists")], ctx, base)
    assert outcome.passed and outcome.failure_class is None
    assert (outcome.check, outcome.check_id, outcome.required) == ("file_exists", "exists", True)
    assert outcome.evidence == {
        "path": "report.md",
        "exists": True,
        "size": 1234,
        "sha256": sha("x" * 1234),
    }
    assert outcome.detail == f"report.md exists (1,234 bytes, sha256 {sha('x' * 1234)[:8]}…)"


def test_file_exists_fails_for_missing_file_and_directory(base: Path, ws: Path) -> None:
    (ws / "sub").mkdir()
    ctx = call(ws)
    missing = one([check(check="file_exists", path="nope.txt")], ctx, base)
    assert_failed(missing)
    assert missing.evidence == {"path": "nope.txt", "exists": False, "size": None, "sha256": None}
    assert missing.detail == "nope.txt does not exist"
    directory = one([check(check="file_exists", path="sub")], ctx, base)
    assert_failed(directory)
    assert "not a regular file" in directory.detail


def test_template_fills_every_placeholder(base: Path, ws: Path) -> None:
    (ws / "out").mkdir()
    (ws / "out" / "7.txt").write_text("seven")
    ctx = call(ws, arguments={"folder": "out", "n": 7})
    outcome = one([check(check="file_exists", path="{args.folder}/{args.n}.txt")], ctx, base)
    assert outcome.passed
    assert outcome.evidence["path"] == "out/7.txt"


def test_template_naming_an_absent_argument_is_missing_evidence(base: Path, ws: Path) -> None:
    ctx = call(ws, arguments={"name": "x"})
    outcome = one([check(check="file_exists", path="{args.path}")], ctx, base)
    assert_failed(outcome, "missing_evidence")
    assert outcome.detail == "check needs args.path, which the call did not have"


@pytest.mark.parametrize("template", ["{env.HOME}/x", "{path}", "{args.a.b}", "{}"])
def test_unknown_placeholder_is_refused(base: Path, ws: Path, template: str) -> None:
    ctx = call(ws, arguments={"path": "x", "a": "y"})
    outcome = one([check(check="file_exists", path=template)], ctx, base)
    assert_failed(outcome, "missing_evidence")
    assert "unknown placeholder" in outcome.detail
    assert "{args.NAME}" in outcome.detail


def test_argument_values_are_not_expanded_again(base: Path, ws: Path) -> None:
    (ws / "{args.other}").write_text("literal")
    ctx = call(ws, arguments={"path": "{args.other}", "other": "../../outside/secret.txt"})
    outcome = one([check(check="file_contains", path="{args.path}", pattern="literal")], ctx, base)
    assert outcome.passed, outcome.detail


@pytest.mark.parametrize(
    "path",
    [
        "../../etc/passwd",
        "../../outside/secret.txt",
        "../ws/../../outside/secret.txt",
        "/etc/passwd",
    ],
)
def test_path_escaping_the_roots_is_refused(base: Path, ws: Path, path: str) -> None:
    ctx = call(ws, arguments={"path": path})
    for kind in (
        check(check="file_exists", path="{args.path}"),
        check(check="file_contains", path="{args.path}", pattern="."),
        check(check="file_sha256", path="{args.path}", sha256="0" * 64),
    ):
        outcome = one([kind], ctx, base)
        assert_failed(outcome)
        assert "escapes the tool's roots" in outcome.detail
        assert "SECRET" not in repr(outcome)
        assert outcome.evidence == {"path": path, "escapes": True}


def test_symlink_out_of_the_root_is_an_escape(base: Path, ws: Path, tmp_path: Path) -> None:
    (ws / "link").symlink_to(tmp_path / "outside" / "secret.txt")
    (ws / "dirlink").symlink_to(tmp_path / "outside", target_is_directory=True)
    ctx = call(ws)
    for path in ("link", "dirlink/secret.txt"):
        outcome = one([check(check="file_contains", path=path, pattern="SECRET")], ctx, base)
        assert_failed(outcome)
        assert "escapes" in outcome.detail
        assert "match" not in outcome.evidence


def test_symlink_inside_the_root_is_followed(base: Path, ws: Path) -> None:
    (ws / "real.txt").write_text("inside")
    (ws / "alias").symlink_to("real.txt")
    outcome = one([check(check="file_exists", path="alias")], call(ws), base)
    assert outcome.passed
    assert outcome.evidence["path"] == "real.txt"


def test_relative_paths_use_the_first_root_and_any_root_confines(
    base: Path, ws: Path, tmp_path: Path
) -> None:
    second = tmp_path / "second"
    second.mkdir()
    (second / "b.txt").write_text("b")
    (base / "top.txt").write_text("top")
    ctx = CallContext(tool="t", arguments={}, result=ToolResult(ok=True), roots=[ws, second])
    in_second = verify_call(
        [check(check="file_exists", path=str(second / "b.txt"))], ctx, base_dir=base
    )
    assert in_second[0].passed and in_second[0].evidence["path"] == "b.txt"
    # relative to the first root, so base/top.txt is not found there ...
    assert not one([check(check="file_exists", path="top.txt")], ctx, base).passed
    # ... and reaching it from the root escapes: base_dir is not a root of this tool
    assert "escapes" in one([check(check="file_exists", path="../top.txt")], ctx, base).detail


def test_tool_without_roots_resolves_against_base_dir(base: Path) -> None:
    (base / "top.txt").write_text("top")
    ctx = call(None, tool="py")
    assert one([check(check="file_exists", path="top.txt")], ctx, base).passed
    escaped = one([check(check="file_exists", path="../outside/secret.txt")], ctx, base)
    assert_failed(escaped)
    assert "escapes the manifest folder" in escaped.detail


def test_path_with_nul_byte_fails_cleanly(base: Path, ws: Path) -> None:
    ctx = call(ws, arguments={"path": "a\x00b"})
    assert_failed(one([check(check="file_exists", path="{args.path}")], ctx, base))


def test_fifo_is_not_read(base: Path, ws: Path) -> None:
    os.mkfifo(ws / "pipe")
    outcome = one([check(check="file_contains", path="pipe", pattern=".")], call(ws), base)
    assert_failed(outcome)
    assert "not a regular file" in outcome.detail


# --- file_sha256 ---------------------------------------------------------------------------


def test_sha256_against_the_manifest(base: Path, ws: Path) -> None:
    (ws / "a.txt").write_text("alpha")
    ok = one(
        [check(check="file_sha256", path="a.txt", sha256=sha("alpha").upper())], call(ws), base
    )
    assert ok.passed
    assert ok.evidence["expected_from"] == "manifest"
    bad = one([check(check="file_sha256", path="a.txt", sha256=sha("beta"))], call(ws), base)
    assert_failed(bad)
    assert bad.detail.startswith("expected a.txt to have sha256 ")
    assert bad.evidence["sha256"] == sha("alpha")


def test_sha256_against_the_hash_the_call_produced(base: Path, ws: Path) -> None:
    (ws / "a.txt").write_text("alpha")
    spec = check(check="file_sha256", path="{args.path}")
    same = call(ws, arguments={"path": "a.txt"}, evidence={"sha256": sha("alpha")})
    assert one([spec], same, base).passed
    other = call(ws, arguments={"path": "a.txt"}, evidence={"sha256": sha("beta")})
    outcome = one([spec], other, base)
    assert_failed(outcome)
    assert outcome.evidence["expected_from"] == "call"


@pytest.mark.parametrize("evidence", [{}, {"sha256": None}, {"sha256": ""}])
def test_sha256_without_the_calls_evidence_is_missing_evidence(
    base: Path, ws: Path, evidence: dict[str, Any]
) -> None:
    (ws / "a.txt").write_text("alpha")
    ctx = call(ws, arguments={"path": "a.txt"}, evidence=evidence)
    outcome = one([check(check="file_sha256", path="{args.path}")], ctx, base)
    assert_failed(outcome, "missing_evidence")
    assert "reported none" in outcome.detail


# --- file_contains -------------------------------------------------------------------------


def test_file_contains_matches_and_records_the_span(base: Path, ws: Path) -> None:
    (ws / "log.txt").write_text("line one\nstatus: PASSED\n")
    outcome = one(
        [check(check="file_contains", path="log.txt", pattern=r"status: \w+")], call(ws), base
    )
    assert outcome.passed
    assert outcome.evidence["match"] == {"start": 9, "end": 23, "text": "status: PASSED"}
    assert outcome.detail == r"log.txt matches /status: \w+/ at characters 9-23"


def test_file_contains_fails_without_a_match(base: Path, ws: Path) -> None:
    (ws / "log.txt").write_text("status: FAILED")
    outcome = one([check(check="file_contains", path="log.txt", pattern="PASSED")], call(ws), base)
    assert_failed(outcome)
    assert outcome.evidence["match"] is None
    assert outcome.detail == "log.txt does not match /PASSED/"


@pytest.mark.parametrize("content", [b"ab\x00cd", b"\xff\xfe\xfa not utf-8"])
def test_file_contains_refuses_binary(base: Path, ws: Path, content: bytes) -> None:
    (ws / "blob.bin").write_bytes(content)
    outcome = one([check(check="file_contains", path="blob.bin", pattern="ab")], call(ws), base)
    assert_failed(outcome)
    assert "binary" in outcome.detail
    assert outcome.evidence["binary"] is True


def test_file_contains_reads_at_most_8_mib(base: Path, ws: Path) -> None:
    # a multi-byte character straddles the cut: still text, not "binary"
    body = b"a" * (MAX_READ_BYTES - 1) + "é".encode() + b"NEEDLE"
    (ws / "big.txt").write_bytes(body)
    outcome = one([check(check="file_contains", path="big.txt", pattern="NEEDLE")], call(ws), base)
    assert_failed(outcome)
    assert "in its first 8,388,608 bytes" in outcome.detail
    assert outcome.evidence["searched_bytes"] == MAX_READ_BYTES
    assert outcome.evidence["size"] == len(body)
    assert outcome.evidence["sha256"] == sha(body)


def test_matched_text_in_evidence_is_clipped(base: Path, ws: Path) -> None:
    (ws / "long.txt").write_text("z" * 1000)
    outcome = one([check(check="file_contains", path="long.txt", pattern="z+")], call(ws), base)
    assert outcome.passed
    assert len(outcome.evidence["match"]["text"]) == 201
    assert outcome.evidence["match"]["end"] == 1000


# --- exit_code and output --------------------------------------------------------------------


def test_exit_code(base: Path) -> None:
    ok = call(None, tool="sh", data={"exit_code": 0})
    assert one([check(check="exit_code")], ok, base).detail == "exit code 0 as expected"
    two = call(None, tool="sh", data={"exit_code": 2})
    outcome = one([check(check="exit_code")], two, base)
    assert_failed(outcome)
    assert outcome.detail == "expected exit code 0; got 2"
    assert outcome.evidence == {"exit_code": 2, "expected": 0}
    assert one([check(check="exit_code", equals=2)], two, base).passed


@pytest.mark.parametrize("data", [{}, {"exit_code": None}, {"exit_code": True}, {"exit_code": "0"}])
def test_exit_code_missing_is_missing_evidence(base: Path, data: dict[str, Any]) -> None:
    outcome = one([check(check="exit_code")], call(None, data=data), base)
    assert_failed(outcome, "missing_evidence")
    assert "reported no exit code" in outcome.detail


def test_output_matches(base: Path) -> None:
    ctx = call(None, output="3 passed in 0.1s")
    assert one([check(check="output_matches", pattern=r"\d+ passed")], ctx, base).passed
    outcome = one([check(check="output_matches", pattern="failed")], ctx, base)
    assert_failed(outcome)
    assert outcome.detail == "output does not match /failed/"


SCHEMA = {
    "type": "object",
    "properties": {"count": {"type": "integer"}, "name": {"type": "string"}},
    "required": ["count", "name"],
}


def test_output_schema_good(base: Path) -> None:
    ctx = call(None, output='{"count": 3, "name": "x"}')
    outcome = one([check(check="output_schema", schema=SCHEMA)], ctx, base)
    assert outcome.passed
    assert outcome.evidence == {"parsed": True, "errors": [], "error_count": 0}


def test_output_schema_bad_lists_at_most_three_errors(base: Path) -> None:
    schema = {
        "type": "object",
        "properties": {k: {"type": "integer"} for k in "abcde"},
    }
    ctx = call(None, output='{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"}')
    outcome = one([check(check="output_schema", schema=schema)], ctx, base)
    assert_failed(outcome)
    assert outcome.evidence["error_count"] == 5
    assert outcome.evidence["errors"] == [
        "at /a: '1' is not of type 'integer'",
        "at /b: '2' is not of type 'integer'",
        "at /c: '3' is not of type 'integer'",
    ]
    assert outcome.detail.endswith("(and 2 more)")


def test_output_schema_missing_field_is_reported_at_top_level(base: Path) -> None:
    outcome = one(
        [check(check="output_schema", schema=SCHEMA)], call(None, output='{"count": 1}'), base
    )
    assert_failed(outcome)
    assert outcome.evidence["errors"] == ["at top level: 'name' is a required property"]


def test_output_schema_unparsable(base: Path) -> None:
    ctx = call(None, output="not json {", truncated=True)
    outcome = one([check(check="output_schema", schema=SCHEMA)], ctx, base)
    assert_failed(outcome)
    assert outcome.detail.startswith("output is not JSON (the output was truncated): ")
    assert outcome.evidence["parsed"] is False


# --- python predicates ----------------------------------------------------------------------


def py(name: str, **extra: Any) -> Any:
    return check(check="python", function=f"{FNS}:{name}", **extra)


def test_python_bool(base: Path) -> None:
    assert one([py("output_says_ok")], call(None, output="ok"), base).passed
    outcome = one([py("output_says_ok")], call(None, output="no"), base)
    assert_failed(outcome)
    assert outcome.detail == f"{FNS}:output_says_ok failed"
    assert outcome.evidence == {"function": f"{FNS}:output_says_ok"}


def test_python_tuple_gives_the_detail(base: Path) -> None:
    outcome = one([py("counted_lines")], call(None, output="one line"), base)
    assert_failed(outcome)
    assert outcome.detail == "output has 1 lines; need at least 2"
    assert one([py("counted_lines")], call(None, output="a\nb"), base).passed


def test_python_dict_gives_detail_and_evidence(base: Path, ws: Path) -> None:
    ctx = call(ws, tool="write", arguments={"path": "notes.md"})
    outcome = one([py("wrote_markdown")], ctx, base)
    assert outcome.passed
    assert outcome.detail == "notes.md is markdown"
    assert outcome.evidence == {
        "suffix": "md",
        "tool": "write",
        "function": f"{FNS}:wrote_markdown",
    }
    bad = one([py("wrote_markdown")], call(ws, arguments={"path": "notes.txt"}), base)
    assert_failed(bad)
    assert bad.detail == "notes.txt is not markdown"


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("explode", "raised ValueError: the predicate could not decide"),
        ("exits", "raised SystemExit: 3"),
        ("returns_number", "returned 1; expected a bool"),
        ("misspelled_key", "returned {'passed': True, 'detial': 'typo'}; expected"),
        ("unserializable_evidence", "returned evidence that is not plain JSON"),
        ("NOT_CALLABLE", "raised TypeError: tests.support.checkfns:NOT_CALLABLE is not callable"),
        ("no_such_function", "raised AttributeError"),
    ],
)
def test_python_misbehaving_predicates_fail_without_raising(
    base: Path, name: str, detail: str
) -> None:
    outcome = one([py(name)], call(None, output="ok"), base)
    assert_failed(outcome)
    assert detail in outcome.detail


def test_python_missing_module_fails_without_raising(base: Path) -> None:
    spec = check(check="python", function="tests.support.no_such_module:f")
    outcome = one([spec], call(None), base)
    assert_failed(outcome)
    assert "raised ModuleNotFoundError" in outcome.detail


def test_python_predicate_cannot_change_the_call(base: Path, ws: Path) -> None:
    ctx = call(ws, arguments={"path": "a"}, data={"exit_code": 0}, evidence={"sha256": "x"})
    outcomes = verify_call([py("vandal"), check(check="exit_code")], ctx, base_dir=base)
    assert [o.passed for o in outcomes] == [True, True]
    assert ctx.arguments == {"path": "a"}
    assert ctx.result.data == {"exit_code": 0}
    assert ctx.result.evidence == {"sha256": "x"}


# --- required: false -----------------------------------------------------------------------


def test_optional_check_is_recorded_but_fails_nothing(base: Path, ws: Path) -> None:
    outcomes = verify_call(
        [
            check(check="file_exists", path="nope", required=False, id="nice-to-have"),
            check(check="exit_code", required=False),
            check(check="output_matches", pattern="x", required=False),
        ],
        call(ws),
        base_dir=base,
    )
    assert [(o.passed, o.required, o.failure_class) for o in outcomes] == [(False, False, None)] * 3
    assert outcomes[0].check_id == "nice-to-have"
    assert outcomes[1].detail.startswith("expected exit code 0, but the call reported no exit code")


# --- success checks ------------------------------------------------------------------------


def test_success_final_answer(base: Path) -> None:
    spec = check(check="final_answer_matches", pattern=r"wrote (\d+) files")
    [ok] = verify_success([spec], final_answer="I wrote 3 files.", base_dir=base)
    assert ok.passed and ok.evidence["match"]["text"] == "wrote 3 files"
    [no] = verify_success([spec], final_answer="nothing to do", base_dir=base)
    assert_failed(no)
    [none] = verify_success([spec], final_answer=None, base_dir=base)
    assert_failed(none, "missing_evidence")
    assert "no final answer" in none.detail


def test_success_paths_resolve_in_base_dir(base: Path) -> None:
    (base / "ws" / "report.md").write_text("# Report\ndone\n")
    outcomes = verify_success(
        [
            check(check="file_exists", path="ws/report.md"),
            check(check="file_contains", path="ws/report.md", pattern="(?m)^done$"),
            check(check="file_sha256", path="ws/report.md", sha256=sha("# Report\ndone\n")),
            py("answer_mentions_tool"),
        ],
        final_answer="the report is written",
        base_dir=base,
    )
    assert all(o.passed for o in outcomes), [o.detail for o in outcomes]


def test_success_checks_have_no_call(base: Path) -> None:
    outcomes = verify_success(
        [
            check(check="file_exists", path="{args.path}"),
            check(check="file_sha256", path="x"),
            check(check="exit_code"),
            check(check="output_matches", pattern="."),
            check(check="file_exists", path="../outside/secret.txt"),
        ],
        final_answer="done",
        base_dir=base,
    )
    classes = [o.failure_class for o in outcomes]
    assert classes == ["missing_evidence"] * 4 + ["verification_failed"]
    assert outcomes[0].detail == "check needs args.path, but success checks have no call arguments"
    assert "escapes the manifest folder" in outcomes[4].detail


def test_checks_from_a_parsed_manifest(base: Path, ws: Path) -> None:
    manifest = parse_manifest(
        """
name: writer
model: {provider: openai, name: gpt-4o-mini}
tools:
  - name: write
    uses: fs.write
    scope: {roots: [ws]}
    verify:
      - {check: file_exists, path: "{args.path}", id: exists}
      - {check: file_contains, path: "{args.path}", pattern: "^# ", required: false}
success:
  - {check: final_answer_matches, pattern: done}
""",
        base_dir=base,
    )
    (ws / "r.md").write_text("# Title\n")
    ctx = call(ws, arguments={"path": "r.md"})
    outcomes = verify_call(manifest.tools[0].verify, ctx, base_dir=manifest.base_dir)
    assert [(o.check_id, o.passed) for o in outcomes] == [("exists", True), (None, True)]
    [done] = verify_success(manifest.success, final_answer="done", base_dir=manifest.base_dir)
    assert done.passed


# --- default evidence of builtins ----------------------------------------------------------


def fs_write(ws: Path, path: str, content: str) -> CallContext:
    """Run the real fs.write tool and wrap its call the way the loop does."""
    tool = build_builtin("fs.write", name="write", roots=[ws])
    arguments = {"path": path, "content": content}
    result = tool.run(parse_arguments(tool, arguments))
    assert result.ok, result.error
    return CallContext(tool="write", arguments=arguments, result=result, roots=[ws])


def test_default_fs_write_passes_after_a_real_write(ws: Path) -> None:
    ctx = fs_write(ws, "sub/report.md", "hello")
    outcome = default_evidence_outcome("fs.write", ctx)
    assert outcome is not None and outcome.passed, outcome
    assert (outcome.check, outcome.check_id) == ("file_sha256", "default")
    assert outcome.evidence["sha256"] == sha("hello")
    assert outcome.evidence["path"] == "sub/report.md"


def test_default_fs_write_fails_when_the_file_changed_after(ws: Path) -> None:
    ctx = fs_write(ws, "report.md", "hello")
    (ws / "report.md").write_text("tampered")
    outcome = default_evidence_outcome("fs.write", ctx)
    assert outcome is not None
    assert_failed(outcome)
    assert outcome.detail.startswith("report.md changed after the write")
    assert outcome.evidence["sha256"] == sha("tampered")
    assert outcome.evidence["expected_sha256"] == sha("hello")


def test_default_fs_write_fails_when_the_file_is_gone(ws: Path) -> None:
    ctx = fs_write(ws, "report.md", "hello")
    (ws / "report.md").unlink()
    outcome = default_evidence_outcome("fs.write", ctx)
    assert outcome is not None
    assert_failed(outcome)
    assert "no longer a file" in outcome.detail


@pytest.mark.parametrize("evidence", [{"path": "a.txt"}, {"sha256": "ab" * 32}, {}])
def test_default_fs_write_without_evidence_is_missing_evidence(
    ws: Path, evidence: dict[str, Any]
) -> None:
    (ws / "a.txt").write_text("a")
    ctx = call(ws, arguments={"path": "a.txt", "content": "a"}, evidence=evidence)
    outcome = default_evidence_outcome("fs.write", ctx)
    assert outcome is not None
    assert_failed(outcome, "missing_evidence")


def test_default_fs_write_confines_the_reported_path(ws: Path) -> None:
    ctx = call(ws, arguments={}, evidence={"path": "../../outside/secret.txt", "sha256": "0" * 64})
    outcome = default_evidence_outcome("fs.write", ctx)
    assert outcome is not None
    assert_failed(outcome)
    assert "escapes" in outcome.detail


def test_default_fs_delete(ws: Path) -> None:
    (ws / "gone.txt").write_text("x")
    tool = build_builtin("fs.delete", name="rm", roots=[ws])
    result = tool.run(parse_arguments(tool, {"path": "gone.txt"}))
    ctx = CallContext(tool="rm", arguments={"path": "gone.txt"}, result=result, roots=[ws])
    outcome = default_evidence_outcome("fs.delete", ctx)
    assert outcome is not None and outcome.passed
    assert (outcome.check, outcome.detail) == ("file_absent", "gone.txt no longer exists")
    (ws / "gone.txt").write_text("back again")
    outcome = default_evidence_outcome("fs.delete", ctx)
    assert outcome is not None
    assert_failed(outcome)
    assert outcome.detail == "gone.txt still exists after the delete"


def test_default_fs_delete_of_a_symlink_checks_the_link(ws: Path, tmp_path: Path) -> None:
    (ws / "link").symlink_to(tmp_path / "outside" / "secret.txt")
    ctx = call(ws, tool="rm", arguments={"path": "link"}, evidence={"path": "link"})
    outcome = default_evidence_outcome("fs.delete", ctx)
    assert outcome is not None
    assert_failed(outcome)
    assert outcome.detail == "link still exists after the delete"


def test_default_shell_and_http(ws: Path) -> None:
    shell = default_evidence_outcome("shell", call(ws, tool="sh", data={"exit_code": 0}))
    assert shell is not None and shell.passed and shell.evidence == {"exit_code": 0}
    missing = default_evidence_outcome("shell", call(ws, tool="sh"))
    assert missing is not None
    assert_failed(missing, "missing_evidence")
    http = default_evidence_outcome("http.get", call(None, tool="get", data={"status": 200}))
    assert http is not None and http.passed and http.check == "http_status"
    no_status = default_evidence_outcome("http.get", call(None, tool="get"))
    assert no_status is not None
    assert_failed(no_status, "missing_evidence")


def test_no_default_for_failed_calls_or_other_tools(ws: Path) -> None:
    failed = call(ws, ok=False, error="boom", failure_class="tool_error")
    assert default_evidence_outcome("fs.write", failed) is None
    assert default_evidence_outcome("shell", failed) is None
    assert default_evidence_outcome("fs.read", call(ws)) is None
    assert default_evidence_outcome(None, call(ws)) is None


# --- into the trace ------------------------------------------------------------------------


def test_outcome_becomes_a_verification_event(base: Path, ws: Path) -> None:
    (ws / "a.txt").write_text("a")
    [outcome] = verify_call(
        [check(check="file_exists", path="a.txt", id="a")], call(ws), base_dir=base
    )
    event = outcome.to_event(call_id="c1", step=3)
    again = parse_event(event.model_dump())
    assert isinstance(again, Verification)
    assert (again.call_id, again.step, again.check_id, again.passed) == ("c1", 3, "a", True)
    assert again.evidence == outcome.evidence


def test_outcomes_are_deterministic(base: Path, ws: Path) -> None:
    (ws / "a.txt").write_text("a")
    checks = [
        check(check="file_exists", path="a.txt"),
        check(check="file_contains", path="a.txt", pattern="a"),
        check(check="output_schema", schema=SCHEMA),
        py("wrote_markdown"),
    ]
    ctx = call(ws, arguments={"path": "x.md"}, output="[]")
    assert verify_call(checks, ctx, base_dir=base) == verify_call(checks, ctx, base_dir=base)


def test_a_python_check_beside_its_manifest_imports_without_a_python_tool(tmp_path: Path) -> None:
    """The manifest's folder goes first on sys.path for `check: python` functions too, not
    only for `python:` tools."""
    from govrun.runtime.trace import events as ev
    from tests.support.agents import answer, run_in, scripted_manifest

    (tmp_path / "lonely_success_check.py").write_text(
        "def said_done(call):\n    return call['final_answer'] == 'done', 'the answer'\n"
    )
    manifest = scripted_manifest(
        success=[{"check": "python", "function": "lonely_success_check:said_done"}]
    )
    result, events = run_in(tmp_path, manifest, script=[answer("done")])
    assert result.status == "completed", result.reason
    [check] = [e for e in events if isinstance(e, ev.Verification)]
    assert check.passed, check.detail
