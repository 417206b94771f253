"""Prove a trace was not altered, or say exactly where and how it was.

Checks, from the first event to the last complete one: every line is canonical JSON whose
hash matches its content, ``prev`` links to the previous hash, ``seq`` runs 0, 1, 2, ...
without gaps, one run per trace, every sidecar blob matches its hash, and ``run_finished``
is last and states the right count and head. A trace that is intact but ends early (a torn
line or no ``run_finished``) is a crash, not tampering, and is reported as such. A chain
alone cannot show that trailing events were cut off; ``head=`` checks against a head hash
kept elsewhere (``govrun run`` prints it).

Once the chain holds (or ends as a crash), the approval audit (:mod:`runtime.audit`) checks
the typed events the walk verified, kept as it goes (only those it reads) rather than read
again: one pass, and no window in which the file could change between check and audit: signed
approvals, approvals that cover exactly the calls that ran, and the seal on
``run_finished``. ``trusted_keys=`` pins the keys that may sign (and then a finished trace
must be sealed). Without trusted keys, a trace with no approval, no call sent to the gate
and no seal skips the audit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from runtime.audit import ApprovalAudit, AuditFeed, audit_approvals
from runtime.errors import TraceError
from runtime.events import EVENT_ADAPTER, EVENT_TYPES, SCHEMA_MAJOR, ZERO_HASH
from runtime.trace import (
    _BLOB_KEY,
    _BLOB_MARK,
    _BLOB_REF,
    _lines,
    _resolve_blobs,
    _try_complete,
    blob_dir,
    canonical,
    describe_invalid,
    sha256_hex,
)

ProblemKind = Literal[
    "edited",
    "reordered",
    "deleted",
    "inserted",
    "bad_blob",
    "multiple_runs",
    "invalid_event",
    "torn",
    "unfinished",
    "head_mismatch",
    "not_a_trace",
    "approval",
]

_CHECKED_TYPES = frozenset(
    {"run_finished", "policy_decision", "approval_requested", "approval_decided", "tool_started"}
)
"""Events verify reads as typed events (the finish check and the approval audit). Others
are integrity-checked as bytes and need only a known type: verify proves what was written
was not altered; readers (show, the inspector) validate every event they display."""

CRASH_KINDS = frozenset({"torn", "unfinished"})


@dataclass(frozen=True)
class Problem:
    """The first thing wrong with a trace."""

    kind: ProblemKind
    line: int
    seq: int | None
    message: str

    @property
    def is_crash(self) -> bool:
        """True when the trace is intact but ends early, as a crash leaves it."""
        return self.kind in CRASH_KINDS


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` found. ``ok`` means intact *and* complete."""

    path: Path
    events: int
    run_id: str | None
    head: str
    blobs: int
    finished: bool
    problem: Problem | None
    head_checked: bool = False
    approvals: ApprovalAudit | None = None
    """The approval audit; None when its chain is broken, or when no trusted keys were
    given and it has nothing to audit (no approval, no call sent to the gate, no seal)."""
    trusted_checked: bool = False
    """Whether trusted keys were given."""

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def intact(self) -> bool:
        """No tampering found (the trace may still end early)."""
        return self.problem is None or self.problem.is_crash

    @property
    def last_seq(self) -> int | None:
        return self.events - 1 if self.events else None


class _Found(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def verify_trace(
    path: str | Path,
    *,
    head: str | None = None,
    trusted_keys: Mapping[str, str] | None = None,
) -> VerifyReport:
    """Verify a trace file. ``trusted_keys`` (fingerprint -> owner, as
    :func:`runtime.signing.load_trusted_keys` returns) pins who may sign approvals and the
    seal; without it valid signatures prove integrity, not identity. Raises
    :class:`TraceError` only when the file cannot be read at all (missing, or written by a
    newer major schema)."""
    return _Verifier(Path(path), head, trusted_keys).run()


class _Verifier:
    def __init__(self, path: Path, head: str | None, trusted: Mapping[str, str] | None) -> None:
        if not path.is_file():
            raise TraceError(f"{path}: no such trace file.")
        self.path = path
        self.expect_head = head
        self.trusted = trusted
        self.feed = AuditFeed()  # what the approval audit reads of the verified events
        self.blob_folder = blob_dir(path)
        self.prev = ZERO_HASH
        self.expected = 0
        self.run_id: str | None = None
        self.finished_line: int | None = None
        self.blobs = 0

    def run(self) -> VerifyReport:
        lines = _lines(self.path)
        problem: Problem | None = None
        try:
            self._walk(lines)
        except _Found as found:
            problem = found.problem
            if self.expected == 0 and not _looks_like_trace(self.path):
                problem = Problem(
                    "not_a_trace",
                    1,
                    None,
                    "none of its first lines is a govrun event (a JSON object with seq, "
                    "type, prev and hash).",
                )
        if problem is None:
            problem = self._ending()
        audit = None
        if (self.feed.needed or self.trusted is not None) and (
            problem is None or problem.is_crash or problem.kind == "head_mismatch"
        ):
            audit = audit_approvals(self.feed.events, trusted=self.trusted)
            if audit.violations and (problem is None or problem.is_crash):
                # tampering outranks a crash: "nothing was altered" would be false
                problem = _approval_problem(audit)
        return VerifyReport(
            path=self.path,
            events=self.expected,
            run_id=self.run_id,
            head=self.prev,
            blobs=self.blobs,
            finished=self.finished_line is not None,
            problem=problem,
            head_checked=self.expect_head is not None,
            approvals=audit,
            trusted_checked=self.trusted is not None,
        )

    def _walk(self, lines: Iterator[tuple[int, int, bytes, bool]]) -> None:
        for line_no, _offset, raw, complete in lines:
            if complete:
                data = self._parse(raw, line_no)
            else:
                data = _try_complete(raw)
                if data is None:
                    raise _Found(self._torn(line_no))
            self._check_line(data, raw, line_no, lines)

    def _parse(self, raw: bytes, line_no: int) -> dict[str, Any]:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise _Found(
                Problem(
                    "edited",
                    line_no,
                    None,
                    f"line {line_no} (after seq {self._last()}) is not a JSON object: "
                    "it was edited, or a line was inserted.",
                )
            )
        return data

    def _check_line(
        self,
        data: dict[str, Any],
        raw: bytes,
        line_no: int,
        rest: Iterator[tuple[int, int, bytes, bool]],
    ) -> None:
        seq = data.get("seq")
        v = data.get("v")
        # A newer trace says so on its first line; later, a line claiming a newer schema
        # amid verified events is damage like any other, reported below, not a reason to stop.
        if isinstance(v, int) and v > SCHEMA_MAJOR and self.expected == 0:
            raise TraceError(
                f"{self.path}:{line_no}: written with trace schema v{v}, but this "
                f"govrun reads v{SCHEMA_MAJOR} and older.",
                hint="Upgrade govrun to verify this trace.",
            )
        claimed = data.pop("hash", None)
        body = canonical(data)
        if (
            not isinstance(claimed, str)
            or sha256_hex(body) != claimed
            or canonical({**data, "hash": claimed}) != raw
        ):
            raise _Found(
                Problem(
                    "edited",
                    line_no,
                    seq if isinstance(seq, int) else None,
                    f"seq {seq} (line {line_no}) does not match its hash: the event was edited.",
                )
            )
        run_id = data.get("run_id")
        if self.run_id is None:
            self.run_id = run_id
        elif run_id != self.run_id:
            raise _Found(
                Problem(
                    "multiple_runs",
                    line_no,
                    seq,
                    f"seq {seq} (line {line_no}) belongs to run {run_id!r}, but the "
                    f"trace is run {self.run_id!r}: a trace holds one run "
                    "(were two traces concatenated?).",
                )
            )
        if self.finished_line is not None:
            raise _Found(
                Problem(
                    "inserted",
                    line_no,
                    seq,
                    f"seq {seq} (line {line_no}) comes after run_finished "
                    f"(line {self.finished_line}): events were appended.",
                )
            )
        if seq != self.expected:
            raise _Found(self._out_of_order(seq, line_no, rest))
        if data.get("prev") != self.prev:
            raise _Found(
                Problem(
                    "edited",
                    line_no,
                    seq,
                    f"seq {seq} (line {line_no}) does not link to seq {seq - 1}: the event before "
                    "it was replaced and re-hashed, or this one was forged.",
                )
            )
        if _BLOB_MARK in raw:
            self._check_blobs(data, seq, line_no)
            data = _resolve_blobs(data, self.blob_folder)
        kind = data.get("type")
        if kind not in EVENT_TYPES:
            raise _Found(
                Problem(
                    "invalid_event",
                    line_no,
                    seq,
                    f"seq {seq} (line {line_no}) has unknown type {kind!r}.",
                )
            )
        if kind in _CHECKED_TYPES:  # what the finish check and the approval audit read
            event = self._typed(data, seq, line_no)
            if kind == "run_finished":
                self._check_finish(event, line_no)
            self.feed.add(event)
        self.prev = claimed
        self.expected += 1

    def _typed(self, data: dict[str, Any], seq: int, line_no: int) -> Any:
        try:
            return EVENT_ADAPTER.validate_python(data)
        except ValidationError as exc:
            raise _Found(
                Problem(
                    "invalid_event",
                    line_no,
                    seq,
                    f"seq {seq} (line {line_no}) is not a valid govrun event "
                    f"({describe_invalid(exc)}).",
                )
            ) from None

    def _out_of_order(
        self, seq: Any, line_no: int, rest: Iterator[tuple[int, int, bytes, bool]]
    ) -> Problem:
        if not isinstance(seq, int):
            return Problem("invalid_event", line_no, None, f"line {line_no} has no valid seq.")
        later = _remaining_seqs(rest)
        if seq < self.expected:
            return Problem(
                "inserted",
                line_no,
                seq,
                f"line {line_no} repeats seq {seq} where seq {self.expected} was "
                "expected: a line was inserted.",
            )
        if seq in later:
            return Problem(
                "inserted",
                line_no,
                seq,
                f"line {line_no} holds seq {seq}, which appears again later: "
                "a copy of that event was inserted.",
            )
        if self.expected in later:
            return Problem(
                "reordered",
                line_no,
                seq,
                f"seq {seq} (line {line_no}) appears before seq {self.expected}: "
                "events were reordered.",
            )
        missing = (
            f"seq {self.expected}"
            if seq == self.expected + 1
            else f"seq {self.expected}..{seq - 1}"
        )
        return Problem(
            "deleted",
            line_no,
            seq,
            f"{missing} missing before line {line_no}: events were deleted.",
        )

    def _check_blobs(self, value: Any, seq: int, line_no: int) -> None:
        if isinstance(value, dict):
            ref = value.get(_BLOB_KEY)
            if isinstance(ref, str):
                self._check_blob(ref, seq, line_no)
                return
            for v in value.values():
                self._check_blobs(v, seq, line_no)
        elif isinstance(value, list):
            for v in value:
                self._check_blobs(v, seq, line_no)

    def _check_blob(self, ref: str, seq: int, line_no: int) -> None:
        if not _BLOB_REF.fullmatch(ref):  # a path in its place would read another file
            raise _Found(
                Problem(
                    "bad_blob",
                    line_no,
                    seq,
                    f"seq {seq} (line {line_no}) refers to blob {ref[:40]!r}, which is not "
                    "a SHA-256 hash.",
                )
            )
        target = self.blob_folder / ref
        try:
            content = target.read_bytes()
        except OSError:
            raise _Found(
                Problem(
                    "bad_blob",
                    line_no,
                    seq,
                    f"seq {seq} (line {line_no}) refers to blob {ref[:12]}…, which "
                    f"is missing from {self.blob_folder}.",
                )
            ) from None
        if sha256_hex(content) != ref:
            raise _Found(
                Problem(
                    "bad_blob",
                    line_no,
                    seq,
                    f"blob {ref[:12]}… of seq {seq} (line {line_no}) does not match "
                    "its hash: the blob was edited.",
                )
            )
        self.blobs += 1

    def _check_finish(self, event: Any, line_no: int) -> None:
        if event.event_count != event.seq + 1 or event.head != event.prev:
            raise _Found(
                Problem(
                    "edited",
                    line_no,
                    event.seq,
                    f"run_finished (line {line_no}) states {event.event_count} "
                    f"events and head {event.head[:12]}…, but the trace has "
                    f"{event.seq + 1} and head {event.prev[:12]}….",
                )
            )
        self.finished_line = line_no

    def _torn(self, line_no: int) -> Problem:
        return Problem(
            "torn",
            line_no,
            None,
            f"intact up to seq {self._last()}, then a torn final line (line {line_no}): "
            "a crash mid-write, not tampering.",
        )

    def _ending(self) -> Problem | None:
        if self.expected == 0:
            return Problem("unfinished", 1, None, "the trace holds no events.")
        if self.expect_head is not None and self.expect_head != self.prev:
            return Problem(
                "head_mismatch",
                self.expected,
                self.expected - 1,
                f"the trace ends at head {self.prev[:16]}…, but the head kept "
                f"elsewhere is {self.expect_head[:16]}…: events were cut off, "
                "appended, or the trace was re-chained.",
            )
        if self.finished_line is None:
            return Problem(
                "unfinished",
                self.expected,
                self.expected - 1,
                f"intact up to seq {self.expected - 1}, then no run_finished "
                "(the run crashed, was killed, or is still running).",
            )
        return None

    def _last(self) -> str:
        return str(self.expected - 1) if self.expected else "none"


def _approval_problem(audit: ApprovalAudit) -> Problem:
    first, more = audit.violations[0], len(audit.violations) - 1
    also = f" (and {more} more approval problem{'s' if more != 1 else ''})" if more else ""
    return Problem("approval", first.seq + 1, first.seq, first.message + also)


def _looks_like_trace(path: Path, lines: int = 8) -> bool:
    """Whether any of the first lines is shaped like a govrun event, so damage to a trace
    is not mistaken for a file that never was one."""
    for n, (_line, _off, raw, _complete) in enumerate(_lines(path)):
        if n >= lines:
            break
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict) and {"seq", "type", "prev", "hash"} <= data.keys():
            return True
    return False


def _remaining_seqs(rest: Iterator[tuple[int, int, bytes, bool]]) -> set[int]:
    seqs: set[int] = set()
    for _line, _off, raw, _complete in rest:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict) and isinstance(data.get("seq"), int):
            seqs.add(data["seq"])
    return seqs
