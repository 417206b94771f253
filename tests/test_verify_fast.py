"""verify's fast path decides exactly what its line-by-line walk decides: the same report
for intact traces spanning many read chunks and for damage the fast path must hand over
(non-canonical lines with valid hashes, lines broken or joined at a comma, a nested
``"hash"`` member, unsorted or duplicated keys, lines longer than a chunk)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govrun.runtime.trace import verify
from govrun.runtime.trace.canonical import canonical, sha256_hex
from govrun.runtime.trace.events import EVENT_ADAPTER, ZERO_HASH
from govrun.runtime.trace.verify import VerifyReport, verify_trace
from tests.support.traces import read_lines, write_run

Serialize = Callable[[dict[str, Any]], bytes]


def walk_only(path: Path, monkeypatch: pytest.MonkeyPatch) -> VerifyReport:
    """The report of the walk alone: the fast path takes no line."""
    with monkeypatch.context() as m:
        m.setattr(verify._Verifier, "_fast", lambda self, lines, line_no: (0, -1))
        return verify_trace(path)


def same_verdict(path: Path, monkeypatch: pytest.MonkeyPatch) -> VerifyReport:
    fast = verify_trace(path)
    assert fast == walk_only(path, monkeypatch)
    return fast


def chained(events: list[dict[str, Any]], serialize: dict[int, Serialize] | None = None) -> bytes:
    """``events`` as a valid chain (hashes over the canonical form, as the writer makes
    them), the lines at the given seqs written by another serializer."""
    out, prev = [], ZERO_HASH
    for seq, event in enumerate(events):
        data = {k: v for k, v in event.items() if k != "hash"}
        data.update(seq=seq, prev=prev)
        if data["type"] == "run_finished":
            data.update(event_count=seq + 1, head=prev)
        prev = sha256_hex(canonical(data))
        write = (serialize or {}).get(seq, canonical)
        out.append(write({**data, "hash": prev}) + b"\n")
    return b"".join(out)


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """A run whose trace spans several read chunks, as decoded events."""
    path = tmp_path_factory.mktemp("fast") / "long.jsonl"
    write_run(path, steps=60, deny_at=7)
    assert path.stat().st_size > 4 * verify._CHUNK
    return [orjson.loads(line) for line in read_lines(path)]


def test_an_intact_long_trace_verifies_the_same(
    long_run: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(chained(long_run))
    assert same_verdict(path, monkeypatch).ok


def _spaced(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).replace(b"\n", b"")


def _unsorted(data: dict[str, Any]) -> bytes:
    return orjson.dumps(dict(reversed(list(data.items()))))


def _duplicated(data: dict[str, Any]) -> bytes:
    return canonical(data)[:-1] + b',"seq":' + str(data["seq"]).encode() + b"}"


def _broken_at_a_comma(data: dict[str, Any]) -> bytes:
    """The line ends at its first comma; the rest is the next line (the array of both
    lines joined by commas is still canonical JSON)."""
    return canonical(data).replace(b",", b"\n", 1)


@pytest.mark.parametrize(
    "serialize", [_spaced, _unsorted, _duplicated, _broken_at_a_comma], ids=lambda f: f.__name__
)
@pytest.mark.parametrize("seq", [5, 200])
def test_a_line_that_is_not_canonical_is_edited_even_with_a_valid_hash(
    long_run: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    serialize: Serialize,
    seq: int,
) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(chained(long_run, {seq: serialize}))
    report = same_verdict(path, monkeypatch)
    assert report.problem is not None and report.problem.kind == "edited"
    assert report.events == seq


def test_two_lines_joined_at_a_comma_are_edited(
    long_run: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = chained(long_run)
    lines = raw.split(b"\n")
    lines[100:102] = [lines[100] + b"," + lines[101]]
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\n".join(lines))
    report = same_verdict(path, monkeypatch)
    assert report.problem is not None and report.problem.kind == "edited"


def test_a_nested_hash_member_before_the_events_own_verifies(
    long_run: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [dict(e) for e in long_run]
    call = next(i for i, e in enumerate(events) if e["type"] == "tool_call")
    events[call]["arguments"] = {**events[call]["arguments"], "hash": "0" * 64}
    path = tmp_path / "t.jsonl"
    path.write_bytes(chained(events))
    assert same_verdict(path, monkeypatch).ok


def test_a_line_longer_than_a_chunk_verifies(
    long_run: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [dict(e) for e in long_run]
    done = next(i for i, e in enumerate(events) if e["type"] == "tool_finished")
    events[done]["output"] = "x" * (3 * verify._CHUNK)
    path = tmp_path / "t.jsonl"
    path.write_bytes(chained(events))
    assert same_verdict(path, monkeypatch).ok


def test_events_after_the_end_at_a_chunk_boundary_are_inserted(
    long_run: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_finished, then more lines from the next chunk on: appended after the seal."""
    raw = chained(long_run)
    path = tmp_path / "t.jsonl"
    path.write_bytes(raw + b"\n" * (verify._CHUNK - len(raw) % verify._CHUNK) + raw)
    report = same_verdict(path, monkeypatch)
    assert report.problem is not None and report.problem.kind in ("inserted", "edited")


def test_a_missing_pre_image_is_a_bad_blob(
    long_run: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [dict(e) for e in long_run]
    done = [i for i, e in enumerate(events) if e["type"] == "tool_finished"][-3]
    events[done]["evidence"] = {**events[done]["evidence"], "undo": {"pre_image": "a" * 64}}
    path = tmp_path / "t.jsonl"
    path.write_bytes(chained(events))
    report = same_verdict(path, monkeypatch)
    assert report.problem is not None and report.problem.kind == "bad_blob"


def test_a_result_whose_evidence_is_not_an_object_is_checked_like_any(
    long_run: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pre-image mark elsewhere in the line, and evidence that is a list: nothing to
    check (the walk once failed on this with an exception)."""
    events = [dict(e) for e in long_run]
    done = next(i for i, e in enumerate(events) if e["type"] == "tool_finished")
    events[done].update(evidence=["x"], arguments={"pre_image": "y"})
    path = tmp_path / "t.jsonl"
    path.write_bytes(chained(events))
    assert same_verdict(path, monkeypatch).ok


@pytest.mark.parametrize("cut", [2, 7, 1000])
def test_a_torn_end_many_chunks_in_is_torn(
    long_run: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: int
) -> None:
    raw = chained(long_run)
    path = tmp_path / "t.jsonl"
    path.write_bytes(raw[: len(raw) - cut])
    report = same_verdict(path, monkeypatch)
    assert report.problem is not None and report.problem.is_crash


# --- the plain checks stand in for validation ------------------------------------------------

_VALID = {
    "tool_call": {
        "call_id": "c1",
        "tool": "add",
        "arguments": {"a": 1},
        "call_hash": "ab" * 32,
        "decision": {"effect": "allow", "rule": "r", "reason": "", "risk": "low"},
    },
    "policy_decision": {"call_id": "c1", "tool": "add", "effect": "deny", "rule": None},
    "tool_started": {"call_id": "c1", "call_hash": "ab" * 32},
}
_ENVELOPE = {"v": 2, "seq": 3, "ts": "t", "run_id": "r", "step": 1, "prev": "p", "hash": "h"}
_ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=4),
    st.sampled_from(["allow", "deny", "ask", "maybe", "low", "high", "policy_denied"]),
    st.just({}),
    st.just([]),
    st.just({"effect": "allow"}),
)


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(sorted(_VALID)),
    edits=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "call_id",
                    "tool",
                    "arguments",
                    "call_hash",
                    "decision",
                    "effect",
                    "rule",
                    "risk",
                    "raw_arguments",
                    "canonical",
                    "reason",
                    "failure_class",
                ]
            ),
            st.one_of(st.just(None), _ODD_VALUES),
            st.booleans(),
        ),
        max_size=3,
    ),
)
def test_a_plain_event_is_one_validation_accepts(kind: str, edits: list[Any]) -> None:
    """The fast path takes an event that passes its plain check as valid without
    validating it: that must never accept one validation would refuse, in either schema's
    call events, nested decision included."""
    data: dict[str, Any] = {**_ENVELOPE, "type": kind, **copy.deepcopy(_VALID[kind])}
    for field, value, inside in edits:
        target = data["decision"] if inside and isinstance(data.get("decision"), dict) else data
        if value is None and field in target and len(edits) % 2:
            del target[field]
        else:
            target[field] = value
    if verify._PLAIN[kind](data):
        EVENT_ADAPTER.validate_python(data)  # raises if the plain check was wrong
