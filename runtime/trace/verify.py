"""Prove a trace was not altered, or say exactly where and how it was.

Checks, from the first event to the last complete one: every line is canonical JSON whose
hash matches its content, ``prev`` links to the previous hash, ``seq`` runs 0, 1, 2, ...
without gaps, one run per trace, every sidecar blob matches its hash, and ``run_finished``
is last and states the right count and head. A trace that is intact but ends early (a torn
line or no ``run_finished``) is a crash, not tampering, and is reported as such. A chain
alone cannot show that trailing events were cut off; ``head=`` checks against a head hash
kept elsewhere (``govrun run`` prints it).

Speed: the lines of each chunk read are checked at once with C-level iteration, with the
cycle collector paused: one parse of them all as a JSON array, each event serialized back
and the lines compared with them joined (canonical, and one event per line), then each
event's hash and body, its seq, prev and run. Only events the audit reads, a call result
naming a pre-image and lines holding blobs are looked at one by one. The first chunk that
is not intact in every respect goes line by line from its first line, which finds and
names the problem. The chunks make exactly the checks the line-by-line walk makes, so they
only decide faster what it would decide.

Once the chain holds (or ends as a crash), the approval audit (:mod:`govrun.runtime.trace.audit`)
checks the typed events the walk verified, kept as it goes (only those it reads) rather than read
again: one pass, and no window in which the file could change between check and audit: signed
approvals, approvals that cover exactly the calls that ran, and the seal on
``run_finished``. ``trusted_keys=`` pins the keys that may sign (and then a finished trace
must be sealed). Without trusted keys, a trace with no approval, no call sent to the gate
and no seal skips the audit.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from hashlib import sha256
from itertools import chain, compress, count, repeat
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import IO, Any, Literal

import orjson
from pydantic import BaseModel, ValidationError

from govrun.runtime.errors import TraceError
from govrun.runtime.trace.audit import ApprovalAudit, AuditFeed, audit_approvals
from govrun.runtime.trace.canonical import (
    _BLOB_KEY,
    _BLOB_MARK,
    _BLOB_REF,
    MAX_LINE_BYTES,
    blob_dir,
    canonical,
    sha256_hex,
)
from govrun.runtime.trace.events import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    SCHEMA_MAJOR,
    ZERO_HASH,
    AnyEvent,
)
from govrun.runtime.trace.reader import (
    _lines,
    _resolve_blobs,
    _try_complete,
    describe_invalid,
    foreign,
    gc_paused,
    open_trace,
    read_blob,
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
    {
        "run_finished",
        "tool_call",
        "policy_decision",
        "approval_requested",
        "approval_decided",
        "tool_started",
    }
)
"""Events verify reads as typed events (the finish check and the approval audit). Others
are integrity-checked as bytes and need only a known type: verify proves what was written
was not altered; readers (show, the inspector) validate every event they display. The fast
path builds none for an event that is certainly valid (:func:`_plain_check`) and that the
audit would drop (:meth:`AuditFeed.ignores`): most policy decisions and tool starts."""

CRASH_KINDS = frozenset({"torn", "unfinished"})

_CHUNK = 1 << 15
"""Bytes read at a time, and checked at once by the fast path: enough lines (about 45 of
a typical run) for C-level iteration to pay, few enough that what they parse to stays in
the CPU cache (larger chunks are slower)."""
_SORT_KEYS = orjson.OPT_SORT_KEYS
_PRE_IMAGE_MARK = b'"pre_image":"'
"""A line whose evidence names a pre-image blob (a file's content before the call)."""
_POP_HASH = methodcaller("pop", "hash")
_HEXDIGEST = methodcaller("hexdigest")
_ENVELOPE_OF = itemgetter("prev", "run_id", "seq", "type")
_KNOWN_TYPES = frozenset(EVENT_TYPES)
_ACCEPTED_TYPES = _CHECKED_TYPES | {"tool_finished"}
"""Types the fast path looks at one by one: those read as typed, and call results, the
only events whose line may name a pre-image blob."""


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
    :func:`govrun.runtime.trace.signing.load_trusted_keys` returns) pins who may sign approvals and
    the seal; without it valid signatures prove integrity, not identity. Raises
    :class:`TraceError` only when the file cannot be read at all (missing, a folder or
    device, empty, or written by a newer major schema); a file that is not a trace is the
    problem ``not_a_trace``."""
    return _Verifier(Path(path), head, trusted_keys).run()


class _Verifier:
    def __init__(self, path: Path, head: str | None, trusted: Mapping[str, str] | None) -> None:
        self.foreign = foreign(path)  # raises for a file that cannot be read as a trace
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
        if self.foreign is not None:
            return self._report(Problem("not_a_trace", 1, None, f"{self.foreign}."), None)
        problem: Problem | None = None
        try:
            with gc_paused():  # many short-lived acyclic dicts: the collector only costs time
                self._walk_file()
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
        return self._report(problem, audit)

    def _report(self, problem: Problem | None, audit: ApprovalAudit | None) -> VerifyReport:
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

    def _walk_file(self) -> None:
        """Walk the trace a chunk of complete lines at a time, each checked by :meth:`_fast`;
        from the first line it does not take, the rest of the file goes line by line through
        :meth:`_walk`, which names the problem."""
        line_no = 0
        offset = 0
        pieces: list[bytes] = []  # of the line not ended yet
        carried = 0  # their size
        with open_trace(self.path) as f:
            while chunk := f.read(_CHUNK):
                cut = chunk.rfind(b"\n")
                if cut < 0:  # no line ends in this chunk
                    pieces.append(chunk)
                    carried += len(chunk)
                    if carried > MAX_LINE_BYTES:  # never joined: no event is this long
                        raise _Found(self._too_long(line_no + 1))
                    continue
                if pieces:
                    pieces.append(chunk[:cut])
                    lines = b"".join(pieces)
                else:
                    lines = chunk[:cut]
                rest = chunk[cut + 1 :]
                # a first line longer than any event goes to the walk, which says so
                too_long = carried + cut > MAX_LINE_BYTES
                done, size = (0, -1) if too_long else self._fast(lines, line_no)
                pieces, carried = ([rest], len(rest)) if rest else ([], 0)
                if done != size:
                    split = lines.split(b"\n")
                    at = offset + sum(len(raw) + 1 for raw in split[:done])
                    self._walk(
                        chain(
                            _numbered(split[done:], line_no + done, at),
                            _more_lines(f, rest, line_no + len(split), offset + len(lines) + 1),
                        )
                    )
                    return
                line_no += done
                offset += len(lines) + 1
            pending = b"".join(pieces)
            if pending:
                self._walk(iter([(line_no + 1, offset, pending, False)]))

    def _fast(self, lines: bytes, line_no: int) -> tuple[int, int]:
        """Check complete ``lines`` (joined by line ends; the first is line ``line_no + 1``)
        at once; return how many are done, and how many there are. Either all pass every
        check :meth:`_check_line` makes before :meth:`_accept`, computed the same way but
        with C-level iteration, and are then accepted in order as it would (events it
        reads as typed, and lines with blobs or a pre-image, go through :meth:`_accept`);
        or none is taken (0), and :meth:`_walk` goes line by line from the first. So this
        only decides faster what the walk would decide."""
        if self.finished_line is not None:
            return 0, -1  # lines after run_finished: the walk names them
        first = self.expected
        try:
            # one parse for them all (as a JSON array); each line is exactly its event
            # serialized (hash included) ...
            parsed = orjson.loads(b"[%b]" % lines.replace(b"\n", b","))
            events = list(map(orjson.dumps, parsed, repeat(None), repeat(_SORT_KEYS)))
            if b"\n".join(events) != lines:
                return 0, -1
            # ... and its hash the SHA-256 of the event serialized without it
            size = len(parsed)
            hashes = list(map(_POP_HASH, parsed))
            bodies = map(orjson.dumps, parsed, repeat(None), repeat(_SORT_KEYS))
            if list(map(_HEXDIGEST, map(sha256, bodies))) != hashes:
                return 0, size
            prevs, run_ids, seqs, kinds = zip(*map(_ENVELOPE_OF, parsed), strict=True)
            if (
                prevs[0] != self.prev
                or list(prevs[1:]) != hashes[:-1]
                or seqs != tuple(range(first, first + size))
                or not _KNOWN_TYPES.issuperset(kinds)
            ):
                return 0, size
            run_id = run_ids[0] if self.run_id is None else self.run_id
            if type(run_id) is not str or run_ids.count(run_id) != size:
                return 0, size
            if first == 0:
                v = parsed[0].get("v")
                if isinstance(v, int) and v > SCHEMA_MAJOR:
                    return 0, size  # the walk refuses the trace
        except Exception:  # anything unexpected: the walk decides, line by line
            return 0, -1
        done = kinds.index("run_finished") + 1 if "run_finished" in kinds else size
        self.run_id = run_id
        prev = self.prev
        for i in self._to_accept(parsed, kinds[:done], lines):
            self.expected = first + i
            self.prev = hashes[i - 1] if i else prev
            self._accept(parsed[i], events[i], seqs[i], line_no + i + 1)
        self.expected = first + done
        self.prev = hashes[done - 1]
        return done, size

    def _to_accept(
        self, parsed: list[dict[str, Any]], kinds: tuple[str, ...], lines: bytes
    ) -> Iterator[int]:
        """Which of the events the fast path checked must go through :meth:`_accept`, in
        order: those it reads as typed, unless certainly valid and of no interest to the
        audit; a call result naming a pre-image; every event of lines holding blobs."""
        if b"$" in lines and _BLOB_MARK in lines:  # memchr first: much faster
            yield from range(len(kinds))
            return
        ignores = self.feed.ignores
        for i in compress(count(), map(_ACCEPTED_TYPES.__contains__, kinds)):
            kind = kinds[i]
            data = parsed[i]
            if kind == "tool_finished":
                if _names_pre_image(data):
                    yield i
                continue
            plain = _PLAIN.get(kind)
            if plain is None or not plain(data) or not ignores(kind, data):
                yield i

    def _walk(self, lines: Iterator[tuple[int, int, bytes, bool]]) -> None:
        for line_no, _offset, raw, complete in lines:
            if self.finished_line is not None and not complete:
                raise _Found(self._after_end(line_no))
            if len(raw) > MAX_LINE_BYTES:
                raise _Found(self._too_long(line_no))
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
        self._accept(data, raw, seq, line_no)
        self.prev = claimed
        self.expected += 1

    def _accept(self, data: dict[str, Any], raw: bytes, seq: Any, line_no: int) -> None:
        """The rest of the checks of a line whose hash, chain and place hold: its blobs, its
        type, and the events the finish check and the approval audit read."""
        if _BLOB_MARK in raw:
            self._check_blobs(data, seq, line_no)
            data = _resolve_blobs(data, self.blob_folder)
        kind = data.get("type")
        if kind == "tool_finished" and _PRE_IMAGE_MARK in raw:
            self._check_pre_image(data, seq, line_no)
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

    def _check_pre_image(self, data: dict[str, Any], seq: int, line_no: int) -> None:
        """A file's content before a call changed it, kept for rollback: a blob named by its
        hash in ``evidence.undo.pre_image``. Restoring trusts it, so it is checked like a
        payload blob: present, and what its name says."""
        evidence = data.get("evidence")
        undo = evidence.get("undo") if isinstance(evidence, dict) else None
        ref = undo.get("pre_image") if isinstance(undo, dict) else None
        if isinstance(ref, str):
            self._check_blob(ref, seq, line_no, what="pre-image blob")

    def _check_blob(self, ref: str, seq: int, line_no: int, *, what: str = "blob") -> None:
        if not _BLOB_REF.fullmatch(ref):  # a path in its place would read another file
            raise _Found(
                Problem(
                    "bad_blob",
                    line_no,
                    seq,
                    f"seq {seq} (line {line_no}) refers to {what} {ref[:40]!r}, which is not "
                    "a SHA-256 hash.",
                )
            )
        content = read_blob(self.blob_folder / ref)
        if content is None:
            raise _Found(
                Problem(
                    "bad_blob",
                    line_no,
                    seq,
                    f"seq {seq} (line {line_no}) refers to {what} {ref[:12]}…, which "
                    f"is missing from {self.blob_folder}.",
                )
            )
        if sha256_hex(content) != ref:
            raise _Found(
                Problem(
                    "bad_blob",
                    line_no,
                    seq,
                    f"{what} {ref[:12]}… of seq {seq} (line {line_no}) does not match "
                    f"its hash: the {what} was edited.",
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

    def _after_end(self, line_no: int) -> Problem:
        """The run ended with ``run_finished``, sealed over the count and head: a writer
        never adds a byte after it, so part of a line after it was added later — not a
        crash mid-write. (A whole line there is checked like any other and named by what
        it claims to be.)"""
        return Problem(
            "inserted",
            line_no,
            None,
            f"a partial line (line {line_no}) follows run_finished (line "
            f"{self.finished_line}): the run had ended, so it was added later — not a crash "
            "mid-write.",
        )

    def _too_long(self, line_no: int) -> Problem:
        return Problem(
            "edited",
            line_no,
            None,
            f"line {line_no} (after seq {self._last()}) is longer than "
            f"{MAX_LINE_BYTES >> 20} MiB, and no govrun event is: it was edited, or a line "
            "was inserted.",
        )

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


_SHAPES = 1024
"""Most event shapes remembered per type (a hostile trace could make any number)."""


class _Absent:
    """What :func:`_plain_check` looks up for a field the event does not hold."""


_ABSENT = _Absent()


def _plain_check(cls: Any) -> Callable[[dict[str, Any]], bool] | None:
    """For an event class, a check that passes only stored events its validation accepts
    as they are (every field it declares of a plain JSON type the field takes as is, every
    required field present; keys it does not declare are ignored, as it ignores them), so
    an event that passes need not be validated to know it is valid; or None when the class
    has anything such a check cannot vouch for (validators, constraints, aliases, strict
    mode, other field types). An event that fails the check is validated as usual."""
    config = cls.model_config
    decorators = cls.__pydantic_decorators__
    if (
        config.get("strict")
        or config.get("extra") == "forbid"
        or config.get("validate_by_alias") is False
        or cls.__pydantic_post_init__ is not None
        or any(
            getattr(decorators, name)
            for name in ("validators", "field_validators", "root_validators", "model_validators")
        )
    ):
        return None
    required: set[str] = set()
    typed: list[tuple[str, frozenset[type]]] = []
    literal: list[tuple[str, frozenset[Any]]] = []
    nested: list[tuple[str, Callable[[dict[str, Any]], bool]]] = []
    for name, field in cls.model_fields.items():
        kinds = _plain_types(field.annotation)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            inner = _plain_check(field.annotation)  # an object of its own (a decision)
            if inner is None:
                return None
            nested.append((name, inner))
            kinds = {dict}, None
        if (
            kinds is None
            or field.metadata
            or field.alias not in (None, name)
            or field.validation_alias not in (None, name)
        ):
            return None
        if field.is_required():
            required.add(name)
        allowed, values = kinds
        if allowed is not None:
            typed.append((name, frozenset({*allowed, _Absent})))
        if values is not None:
            literal.append((name, frozenset({*values, _ABSENT})))
    need = frozenset(required)
    typed_names, typed_sets = tuple(n for n, _ in typed), tuple(t for _, t in typed)
    literal_names, literal_sets = tuple(n for n, _ in literal), tuple(v for _, v in literal)
    absent = (_ABSENT,) * len(literal_names)
    contains = frozenset.__contains__

    def check(data: dict[str, Any]) -> bool:
        get = data.get
        return (
            need <= data.keys()
            and all(map(contains, typed_sets, map(type, map(get, typed_names, repeat(_ABSENT)))))
            # literal values are strings or None by now (hashable), checked by value
            and all(map(contains, literal_sets, map(get, literal_names, repeat(_ABSENT))))
        )

    # The verdict depends only on the keys, the types of the values and the values of the
    # literal fields: the few shapes a trace holds are checked once each.
    verdicts: dict[tuple[Any, ...], bool] = {}

    def plain(data: dict[str, Any]) -> bool:
        shape = (*data, *map(type, data.values()), *map(data.get, literal_names, absent))
        try:
            verdict = verdicts[shape]
        except KeyError:
            verdict = check(data)
            if len(verdicts) < _SHAPES:
                verdicts[shape] = verdict
        except TypeError:  # an unhashable value where a literal goes: not plain
            return False
        # an object field is checked on its own (its shape is not in this one's)
        return verdict and all(inner(data[name]) for name, inner in nested if name in data)

    return plain


def _plain_types(annotation: Any) -> tuple[set[type] | None, set[Any] | None] | None:
    """(the JSON types of the values that ``annotation`` keeps as they are, or None for
    any; the values it allows, or None for any of those types), of the values
    ``orjson.loads`` makes; None for an annotation this does not handle."""
    if annotation is Any:
        return None, None
    if annotation in (str, int, bool):
        return {annotation}, None  # by exact type: not bool for int, nor int for bool
    if annotation is float:
        return {float, int}, None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal and args and all(type(a) is str for a in args):
        return {str}, set(args)
    if origin is dict and args in ((str, Any), ()):
        return {dict}, None  # JSON object keys are strings
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        inner = _plain_types(next(a for a in args if a is not type(None)))
        if inner is None or inner[0] is None:
            return None
        allowed, values = inner
        return {*allowed, type(None)}, (None if values is None else {*values, None})
    return None


def _plain_checks() -> dict[str, Callable[[dict[str, Any]], bool]]:
    """Plain checks of the event types the approval audit mostly ignores (a call allowed
    by policy, and its execution), for those that the union validates as their class."""
    union = typing.get_args(typing.get_args(AnyEvent)[0])
    checks = {}
    for kind in ("tool_call", "policy_decision", "tool_started"):
        cls = EVENT_TYPES.get(kind)
        check = _plain_check(cls) if cls in union else None
        if check is not None:
            checks[kind] = check
    return checks


_PLAIN = _plain_checks()


def _names_pre_image(data: dict[str, Any]) -> bool:
    """Whether a call result names a pre-image blob, as :meth:`_Verifier._check_pre_image`
    reads it (the walk looks for one only in a line holding its mark, which any such line
    does)."""
    evidence = data.get("evidence")
    undo = evidence.get("undo") if type(evidence) is dict else None
    return type(undo) is dict and type(undo.get("pre_image")) is str


def _numbered(
    lines: list[bytes], line_no: int, offset: int
) -> Iterator[tuple[int, int, bytes, bool]]:
    """Complete ``lines`` as :func:`govrun.runtime.trace.reader._lines` yields them, the first
    being line ``line_no + 1`` at byte ``offset``."""
    for raw in lines:
        line_no += 1
        yield line_no, offset, raw, True
        offset += len(raw) + 1


def _more_lines(
    f: IO[bytes], pending: bytes, line_no: int, offset: int
) -> Iterator[tuple[int, int, bytes, bool]]:
    """The lines of ``f`` from its position on, as :func:`govrun.runtime.trace.reader._lines`
    yields them, after ``pending`` (the start of an unfinished line, at byte ``offset``) and line
    ``line_no``."""
    pieces = [pending]  # of a line longer than a chunk: joined once, not per chunk
    while chunk := f.read(1 << 20):
        parts = chunk.split(b"\n")
        if len(parts) == 1:
            pieces.append(chunk)
            continue
        parts[0] = b"".join((*pieces, parts[0]))
        pieces = [parts.pop()]
        yield from _numbered(parts, line_no, offset)
        line_no += len(parts)
        offset += sum(len(part) + 1 for part in parts)
    pending = b"".join(pieces)
    if pending:
        yield line_no + 1, offset, pending, False


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
