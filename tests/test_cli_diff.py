"""`govrun diff` through the real typer app (CliRunner) on traces written by real runs of a
scripted agent: exit 0 same, 1 different, 2 bad input; the first divergence, the changed
fields, --json, torn traces, and no traceback ever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.agents import answer, call, calls, run_in, scripted_manifest
from tests.support.cli import govrun, invoke


def write(path: str, content: str = "x") -> dict[str, Any]:
    return calls(call("fs_write", {"path": path, "content": content}))


BASE = [write("a.txt", "alpha"), write("b.txt", "beta"), write("c.txt", "gamma"), answer("done")]


def trace(folder: Path, script: list[dict[str, Any]]) -> Path:
    result, _ = run_in(folder, scripted_manifest(), script=script)
    return Path(result.trace_path)


@pytest.fixture
def same_pair(tmp_path: Path) -> tuple[Path, Path]:
    return trace(tmp_path / "a", BASE), trace(tmp_path / "b", BASE)


@pytest.fixture
def changed_pair(tmp_path: Path) -> tuple[Path, Path]:
    other = [BASE[0], write("b.txt", "BETA"), *BASE[2:]]
    return trace(tmp_path / "a", BASE), trace(tmp_path / "b", other)


def test_same_runs_exit_0(same_pair: tuple[Path, Path]) -> None:
    ran = govrun("diff", *same_pair)
    assert ran.code == 0, ran.flat
    assert "no divergence: all 4 steps match" in ran.flat
    assert "✓ same" in ran.flat
    assert "first divergence: step" not in ran.flat


def test_different_runs_exit_1_with_the_first_divergence(changed_pair: tuple[Path, Path]) -> None:
    a, b = changed_pair
    ran = govrun("diff", a, b)
    assert ran.code == 1, ran.flat
    assert str(a) in ran.flat and str(b) in ran.flat
    assert (
        "first divergence: step 2 (a) / step 2 (b): calls[0].arguments.content: 'beta' → 'BETA'"
        in ran.flat
    )
    assert "step 2 · changed" in ran.flat
    assert "call 1 arguments.content" in ran.flat
    assert "✗ different: 1 changed, 0 inserted, 0 removed." in ran.flat
    assert "totals" in ran.flat


def test_inserted_and_removed_steps_are_shown(tmp_path: Path) -> None:
    a = trace(tmp_path / "a", BASE)
    b = trace(tmp_path / "b", [*BASE[:2], write("extra.txt"), write("more.txt"), *BASE[2:]])

    ran = govrun("diff", a, b)
    assert ran.code == 1, ran.flat
    assert "first divergence: step 3 (a) / step 3 (b): b has an extra step 3" in ran.flat
    assert "steps 3–4 · only in b (inserted)" in ran.flat

    back = govrun("diff", b, a)
    assert back.code == 1, back.flat
    assert "steps 3–4 · only in a (removed)" in back.flat


def test_json_holds_the_first_divergence(changed_pair: tuple[Path, Path]) -> None:
    ran = govrun("diff", *changed_pair, "--json")
    assert ran.code == 1, ran.flat
    report = orjson.loads(ran.out)
    assert report["same"] is False
    first = report["first_divergence"]
    assert (first["a_step"], first["b_step"], first["kind"]) == (2, 2, "changed")
    assert first["fields"] == ["calls[0].arguments.content"]
    [entry] = report["entries"]
    assert entry["changes"] == [{"field": "calls[0].arguments.content", "a": "beta", "b": "BETA"}]


def test_json_of_same_runs_exits_0(same_pair: tuple[Path, Path]) -> None:
    ran = govrun("diff", *same_pair, "--json")
    assert ran.code == 0, ran.flat
    report = orjson.loads(ran.out)
    assert report["same"] is True and report["first_divergence"] is None


def test_a_torn_trace_is_diffed_with_a_note(tmp_path: Path) -> None:
    a = trace(tmp_path / "a", BASE)
    lines = a.read_bytes().split(b"\n")
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(b"\n".join(lines[:20]) + b"\n" + lines[20][:50])

    ran = govrun("diff", a, torn)
    assert ran.code == 1, ran.flat
    assert "note: b ends in a torn line (line 21" in ran.flat
    assert "compared up to that line" in ran.flat
    assert "unfinished" in ran.flat

    report = orjson.loads(govrun("diff", a, torn, "--json").out)
    assert report["b"]["torn"] == {"line": 21, "after_seq": 19}


def test_limit_caps_the_steps_shown(tmp_path: Path) -> None:
    a = trace(tmp_path / "a", BASE)
    b = trace(tmp_path / "b", [write(f"{n}.txt", "other") for n in "abc"] + [answer("done")])
    ran = govrun("diff", a, b, "--limit", "1")
    assert ran.code == 1, ran.flat
    assert "step 1 · changed" in ran.flat and "step 2 · changed" not in ran.flat
    assert "… and 2 more differing steps (--limit 0 shows all; --json lists all)." in ran.flat


def test_fits_80_columns(changed_pair: tuple[Path, Path]) -> None:
    ran = govrun("diff", *changed_pair, env={"COLUMNS": "80"})
    assert ran.code == 1
    assert max(len(line) for line in ran.out.splitlines()) <= 80


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"name: agent\nmodel: {provider: scripted}\n", "not a govrun trace"),
        (b'{"hello": "world"}\n', "not a govrun trace"),
        (b"", "the trace is empty"),
    ],
)
def test_not_a_trace_exits_2_with_one_line(
    same_pair: tuple[Path, Path], tmp_path: Path, content: bytes, words: str
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    ran = invoke("diff", same_pair[0], bad)
    ran.assert_clean()
    assert ran.code == 2, ran.flat
    assert ran.out == ""
    [line] = ran.err.strip().splitlines()
    assert line.startswith("error: ") and words in line and str(bad) in line


def test_a_missing_file_exits_2(same_pair: tuple[Path, Path], tmp_path: Path) -> None:
    ran = invoke("diff", tmp_path / "nope.jsonl", same_pair[1])
    ran.assert_clean()
    assert ran.code == 2
    assert "no such trace" in ran.err


def test_diff_is_listed_in_help() -> None:
    ran = govrun("--help")
    assert "diff" in ran.out
    usage = govrun("diff", "--help")
    assert "Exit 0 same, 1 different, 2 bad input" in usage.flat
