"""verify_trace: golden fixtures give their documented verdicts, no single edit of a trace
goes unnoticed (property tests), and each kind of damage is classified as what it is."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govrun.runtime.errors import TraceError
from govrun.runtime.trace.canonical import blob_dir
from govrun.runtime.trace.verify import VerifyReport, verify_trace
from tests.support.traces import rechain, write_run

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures" / "traces"


# --- golden fixtures -------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    kind: str | None  # None: OK
    events: int
    line: int | None = None
    blobs: int = 0


VERDICTS = {
    "complete.jsonl": Verdict(None, 39),
    "torn.jsonl": Verdict("torn", 31, line=32),
    "unfinished.jsonl": Verdict("unfinished", 31, line=31),
    "tampered.jsonl": Verdict("edited", 22, line=23),
    "with_blob.jsonl": Verdict(None, 30, blobs=2),
}


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_fixture_gives_its_documented_verdict(name: str) -> None:
    expected = VERDICTS[name]
    report = verify_trace(FIXTURES / name)
    assert report.events == expected.events
    assert report.blobs == expected.blobs
    if expected.kind is None:
        assert report.ok and report.finished, report.problem
        return
    assert report.problem is not None
    assert (report.problem.kind, report.problem.line) == (expected.kind, expected.line)
    assert report.problem.is_crash == (expected.kind in ("torn", "unfinished"))
    assert report.intact == report.problem.is_crash


def test_fixture_heads_agree() -> None:
    """The crash fixtures are prefixes of the complete run: same chain up to the crash."""
    torn, unfinished = (
        verify_trace(FIXTURES / "torn.jsonl"),
        verify_trace(FIXTURES / "unfinished.jsonl"),
    )
    assert torn.head == unfinished.head
    assert verify_trace(FIXTURES / "complete.jsonl").head.startswith("16856f78c8d43ed8")
    assert torn.head.startswith("e4218372b4211296")


def test_readme_documents_every_fixture() -> None:
    readme = (FIXTURES / "README.md").read_text()
    for name in VERDICTS:
        assert f"`{name}`" in readme


def test_regenerating_fixtures_changes_nothing(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(FIXTURES / "make_traces.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    for name in VERDICTS:
        assert (tmp_path / name).read_bytes() == (FIXTURES / name).read_bytes(), name
    fresh, golden = blob_dir(tmp_path / "with_blob.jsonl"), blob_dir(FIXTURES / "with_blob.jsonl")
    names = sorted(p.name for p in golden.iterdir())
    assert names == sorted(p.name for p in fresh.iterdir()) and len(names) == 1
    assert filecmp.cmpfiles(golden, fresh, names, shallow=False)[0] == names


# --- every single edit is detected -----------------------------------------------------


@dataclass(frozen=True)
class Base:
    """A complete trace, as bytes and lines, and where mutants are written."""

    raw: bytes
    lines: list[bytes]
    head: str
    work: Path

    def check(self, mutant: bytes) -> VerifyReport:
        path = self.work / "mutant.jsonl"
        path.write_bytes(mutant)
        return verify_trace(path)

    def check_or_refusal(self, mutant: bytes, first_line: bool) -> VerifyReport | None:
        """Verify, or None when verify refuses: that is allowed only for a first line that
        now claims a newer schema (``"v":2`` edited to ``"v":3``), and is no pass either."""
        try:
            return self.check(mutant)
        except TraceError as exc:
            assert first_line and "Upgrade govrun" in str(exc), exc
            return None

    def join(self, lines: list[bytes]) -> bytes:
        return b"".join(line + b"\n" for line in lines)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    work = tmp_path_factory.mktemp("verify")
    hashes = write_run(work / "base.jsonl", steps=3)
    raw = (work / "base.jsonl").read_bytes()
    assert len(hashes) == 23 and verify_trace(work / "base.jsonl").ok
    return Base(raw, raw.splitlines(), hashes[-1], work)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_single_byte_substitution_is_detected(base: Base, data: st.DataObject) -> None:
    pos = data.draw(st.integers(0, len(base.raw) - 1), label="pos")
    value = (base.raw[pos] + data.draw(st.integers(1, 255), label="delta")) % 256
    mutant = base.raw[:pos] + bytes([value]) + base.raw[pos + 1 :]
    report = base.check_or_refusal(mutant, first_line=pos < len(base.lines[0]))
    if report is None:
        return
    assert not report.ok
    if pos != len(base.raw) - 1:  # only the final newline can make it look like a crash
        assert not report.intact, report.problem


def test_every_newline_substitution_is_detected(base: Base) -> None:
    """Joining two lines (or splitting the final one off) is an edit, never a crash."""
    newlines = [i for i, b in enumerate(base.raw[:-1]) if b == ord("\n")]
    assert len(newlines) == len(base.lines) - 1
    for pos in newlines:
        for value in (b" ", b"x", b"{", b"\r"):
            report = base.check(base.raw[:pos] + value + base.raw[pos + 1 :])
            assert not report.intact, (pos, value, report.problem)


@pytest.mark.parametrize(("value", "kind"), [(b"x", "torn"), (b"}", "torn"), (b" ", "edited")])
def test_substituting_the_final_newline(base: Base, value: bytes, kind: str) -> None:
    report = base.check(base.raw[:-1] + value)
    assert report.problem is not None and report.problem.kind == kind


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_deleted_line_is_detected(base: Base, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, len(base.lines) - 1), label="line")
    report = base.check(base.join(base.lines[:n] + base.lines[n + 1 :]))
    assert not report.ok
    if n < len(base.lines) - 1:
        assert report.problem is not None and report.problem.kind == "deleted"
    else:  # without run_finished it looks like a crash; only head= can tell
        assert report.problem is not None and report.problem.kind == "unfinished"
        assert verify_trace(base.work / "mutant.jsonl", head=base.head).problem.kind == (
            "head_mismatch"
        )


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_swapped_pair_is_detected(base: Base, data: st.DataObject) -> None:
    i, j = sorted(
        data.draw(
            st.lists(st.integers(0, len(base.lines) - 1), min_size=2, max_size=2, unique=True),
            label="pair",
        )
    )
    lines = list(base.lines)
    lines[i], lines[j] = lines[j], lines[i]
    report = base.check(base.join(lines))
    assert not report.ok
    assert report.problem is not None and report.problem.kind == "reordered"


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_inserted_copy_is_detected(base: Base, data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(base.lines)), label="at")
    copy = data.draw(st.integers(0, len(base.lines) - 1), label="copy of")
    report = base.check(base.join([*base.lines[:at], base.lines[copy], *base.lines[at:]]))
    assert not report.ok
    assert report.problem is not None and report.problem.kind == "inserted"


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_inserted_junk_line_is_detected(base: Base, data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(base.lines)), label="at")
    junk = data.draw(
        st.one_of(
            st.binary(max_size=300),
            st.dictionaries(st.text(max_size=8), st.integers(-(2**63), 2**63 - 1) | st.text()).map(
                orjson.dumps
            ),
        ),
        label="junk",
    ).replace(b"\n", b"")
    report = base.check_or_refusal(base.join([*base.lines[:at], junk, *base.lines[at:]]), at == 0)
    if report is None:
        return
    assert not report.ok
    assert not report.intact, report.problem


# --- classification of crafted damage --------------------------------------------------


def _events(base: Base) -> list[dict]:
    return [orjson.loads(line) for line in base.lines]


def test_swapped_adjacent_pair_is_reordered(base: Base) -> None:
    lines = list(base.lines)
    lines[10], lines[11] = lines[11], lines[10]
    problem = base.check(base.join(lines)).problem
    assert problem is not None
    assert (problem.kind, problem.line, problem.seq) == ("reordered", 11, 11)


def test_deleted_middle_line_is_deleted(base: Base) -> None:
    problem = base.check(base.join(base.lines[:12] + base.lines[13:])).problem
    assert problem is not None
    assert (problem.kind, problem.line, problem.seq) == ("deleted", 13, 13)
    assert "seq 12 missing" in problem.message


def test_deleted_run_of_lines_is_deleted(base: Base) -> None:
    problem = base.check(base.join(base.lines[:5] + base.lines[9:])).problem
    assert problem is not None and problem.kind == "deleted"
    assert "seq 5..8 missing" in problem.message


@pytest.mark.parametrize(("copy", "at"), [(7, 8), (7, 20), (20, 3), (22, 23)])
def test_duplicated_line_is_inserted(base: Base, copy: int, at: int) -> None:
    problem = base.check(base.join([*base.lines[:at], base.lines[copy], *base.lines[at:]])).problem
    assert problem is not None and problem.kind == "inserted"


def test_edited_field_is_edited(base: Base) -> None:
    events = _events(base)
    n = next(i for i, e in enumerate(events) if e["type"] == "tool_finished")
    events[n]["output"] += " and more"
    lines = list(base.lines)
    lines[n] = orjson.dumps(events[n], option=orjson.OPT_SORT_KEYS)
    report = base.check(base.join(lines))
    assert report.problem is not None
    assert (report.problem.kind, report.problem.line, report.problem.seq) == ("edited", n + 1, n)
    assert not report.intact and report.events == n


def test_non_canonical_line_is_edited(base: Base) -> None:
    """Same content, same hash, different bytes (whitespace): still an edit."""
    lines = list(base.lines)
    lines[4] = orjson.dumps(orjson.loads(lines[4]), option=orjson.OPT_INDENT_2).replace(b"\n", b"")
    problem = base.check(base.join(lines)).problem
    assert problem is not None and (problem.kind, problem.line) == ("edited", 5)


def test_cut_at_a_line_boundary_is_unfinished(base: Base) -> None:
    report = base.check(base.join(base.lines[:17]))
    assert report.problem is not None
    assert report.problem.kind == "unfinished" and report.problem.is_crash and report.intact
    assert (report.events, report.last_seq, report.finished) == (17, 16, False)


def test_cut_mid_line_is_torn(base: Base) -> None:
    report = base.check(base.join(base.lines[:17]) + base.lines[17][:33])
    assert report.problem is not None
    assert report.problem.kind == "torn" and report.problem.is_crash and report.intact
    assert (report.problem.line, report.events) == (18, 17)


def test_an_empty_file_is_refused(base: Base) -> None:
    """An empty file records nothing (and govrun never leaves one): not a crashed run."""
    with pytest.raises(TraceError, match=r"mutant\.jsonl: the trace is empty"):
        base.check(b"")


def test_two_concatenated_traces_are_multiple_runs(base: Base, tmp_path: Path) -> None:
    write_run(tmp_path / "other.jsonl", steps=3, run_id="run-0002")
    other = (tmp_path / "other.jsonl").read_bytes()
    for first, mutant in ((23, base.raw + other), (12, base.join(base.lines[:12]) + other)):
        report = base.check(mutant)
        assert report.problem is not None
        assert (report.problem.kind, report.problem.line) == ("multiple_runs", first + 1)
        assert "run-0002" in report.problem.message and not report.intact


def test_events_appended_after_run_finished_are_inserted(base: Base) -> None:
    events = _events(base)
    extra = {**events[1], "step": 9}  # a well-formed, correctly chained model_request
    report = base.check(rechain([*events, extra]))
    assert report.problem is not None
    assert (report.problem.kind, report.problem.line, report.problem.seq) == ("inserted", 24, 23)


def test_rechained_trace_fails_only_against_the_kept_head(base: Base) -> None:
    events = _events(base)
    n = next(i for i, e in enumerate(events) if e["type"] == "tool_finished")
    events[n]["output"] = "nothing happened here"
    forged = rechain(events)
    assert forged != base.raw

    plain = base.check(forged)
    assert plain.ok and plain.head != base.head
    report = verify_trace(base.work / "mutant.jsonl", head=base.head)
    assert report.head_checked and report.problem is not None
    assert report.problem.kind == "head_mismatch" and not report.intact
    assert verify_trace(base.work / "mutant.jsonl", head=plain.head).ok


def test_kept_head_confirms_the_original(base: Base) -> None:
    report = base.check(base.raw)
    assert report.ok and report.head == base.head
    assert verify_trace(base.work / "mutant.jsonl", head=base.head).ok


def test_missing_trace_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no such trace"):
        verify_trace(tmp_path / "nope.jsonl")


def test_line_claiming_a_newer_schema_amid_the_trace_is_damage(base: Base) -> None:
    """Only a trace that is newer from its first line is refused with 'upgrade'."""
    junk = b'{"seq":5,"type":"step_finished","v":3}'
    report = base.check(base.join([*base.lines[:5], junk, *base.lines[5:]]))
    assert report.problem is not None
    assert (report.problem.kind, report.problem.line) == ("edited", 6)
    with pytest.raises(TraceError, match="Upgrade govrun"):
        base.check(base.join([junk, *base.lines]))


def test_a_partial_line_after_the_sealed_end_is_an_alteration(tmp_path: Path) -> None:
    """A writer never adds a byte after run_finished: a partial line there was added later,
    even when the head kept elsewhere still matches (issue 17)."""
    complete = verify_trace(FIXTURES / "complete.jsonl")
    trace = tmp_path / "appended.jsonl"
    trace.write_bytes((FIXTURES / "complete.jsonl").read_bytes() + b'{"type":"tool_fin')
    report = verify_trace(trace, head=complete.head)
    assert report.problem is not None and not report.intact
    assert report.problem.kind == "inserted" and not report.problem.is_crash
    assert "follows run_finished" in report.problem.message
    assert "not a crash" in report.problem.message
