"""Reading a trace: stored lines (blob references left in) or typed events, a torn last
line told from damage, random access by line for viewers.

Readers refuse a trace written with a newer major schema, with a clear message; an
incomplete final line is what a crash mid-write leaves and is reported, not fatal.

Every command that reads a trace first calls :func:`check_trace`: a missing file, a folder,
a FIFO or device, an empty file, and a file that does not begin like a trace (binary data,
text, a first line longer than any event) are each refused with one :class:`TraceError`,
worded the same everywhere, before anything is loaded.
"""

from __future__ import annotations

import contextlib
import gc
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate, count, islice
from operator import add
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from pydantic import ValidationError

from govrun.runtime.errors import TraceError
from govrun.runtime.manifest.inputs import TRACE, open_file
from govrun.runtime.trace.canonical import (
    _BLOB_KEY,
    _BLOB_MARK,
    _BLOB_REF,
    MAX_LINE_BYTES,
    blob_dir,
)
from govrun.runtime.trace.events import EVENT_ADAPTER, EVENT_TYPES, SCHEMA_MAJOR, Event

_SNIFF = 1 << 16
"""Bytes read to judge whether a file begins like a trace."""


def open_trace(path: str | Path) -> BinaryIO:
    """``path`` open for reading if it is a regular file (:func:`govrun.runtime.manifest.inputs.
    open_file`): a FIFO or a device is refused, never waited on."""
    return open_file(path, TRACE, error=TraceError)


def check_trace(path: str | Path) -> None:
    """Refuse what cannot be a trace, each in one sentence: what every reader calls first."""
    reason = foreign(path)
    if reason is not None:
        raise TraceError(f"{path} is not a govrun trace: {reason}.")


def foreign(path: str | Path) -> str | None:
    """Why the file at ``path`` is not a govrun trace, judged from its first line (a trace's
    first line is a JSON object of at most :data:`MAX_LINE_BYTES`), or None. Raises
    :class:`TraceError` for a file that is missing, a folder, not a regular file or empty."""
    with open_trace(path) as f:
        head = f.read(_SNIFF)
        if not head:
            raise TraceError(f"{path}: the trace is empty")
        if head[:1] != b"{":
            return f"it begins with {_first_bytes(head)}, not a JSON object"
        seen = head
        while b"\n" not in seen:  # the first line goes on: it must end as an event would
            if f.tell() > MAX_LINE_BYTES:
                return (
                    f"its first line is longer than {MAX_LINE_BYTES >> 20} MiB, and no govrun "
                    "event is"
                )
            seen = f.read(1 << 20)
            if not seen:
                return None  # one unfinished line: a crash while the first event was written
        return None


def read_blob(path: Path) -> bytes | None:
    """A sidecar blob's bytes, or None when there is no such regular file: a FIFO or a
    device put in a trace's blob folder is refused, never read."""
    try:
        with open_trace(path) as f:
            return f.read()
    except (OSError, TraceError):
        return None


def too_long(path: str | Path, line: int) -> TraceError:
    """A line longer than any event: damage, refused before it is parsed (the parse alone
    would take several times its size)."""
    return TraceError(
        f"{path}:{line}: longer than {MAX_LINE_BYTES >> 20} MiB, and no govrun event is; the "
        "trace is damaged.",
        hint="`govrun verify` tells where and how.",
    )


def _longest(lines: list[bytes]) -> int | None:
    """The index of the first line over :data:`MAX_LINE_BYTES`, or None."""
    if not lines or max(map(len, lines)) <= MAX_LINE_BYTES:
        return None
    return next(i for i, line in enumerate(lines) if len(line) > MAX_LINE_BYTES)


def _first_bytes(head: bytes) -> str:
    first = head[0]
    if first == 0:
        return "a NUL byte (binary data)"
    if head.startswith(b"\xef\xbb\xbf"):
        return "a UTF-8 byte-order mark"
    if first in b"\r\n":
        return "an empty line"
    if first in b" \t":
        return "whitespace"
    if first >= 0x80 or first < 0x20:
        return f"byte 0x{first:02x} (binary data)"
    text = head[:40].split(b"\n", 1)[0].decode("ascii", errors="replace")
    return repr(text[:20] + ("…" if len(text) > 20 else ""))


@dataclass(frozen=True)
class TornTail:
    """An incomplete final line: what a crash in the middle of a write leaves."""

    line: int
    offset: int
    size: int
    after_seq: int | None


def _decode(raw: bytes, line: int, path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TraceError(
            f"{path}:{line}: not valid JSON ({exc}); the trace is damaged.",
            hint="`govrun verify` tells where and how.",
        ) from None
    if not isinstance(data, dict):
        raise TraceError(f"{path}:{line}: expected a JSON object; the trace is damaged.")
    _check_version(data, line, path)
    return data


def _check_version(data: dict[str, Any], line: int, path: Path) -> None:
    v = data.get("v")
    if isinstance(v, int) and v > SCHEMA_MAJOR:
        raise TraceError(
            f"{path}:{line}: written with trace schema v{v}, but this govrun reads v{SCHEMA_MAJOR} "
            "and older.",
            hint="Upgrade govrun (pip install -U govrun) to read this trace.",
        )


def _validate(data: dict[str, Any], line: int, path: Path) -> Event:
    try:
        return EVENT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise TraceError(
            f"{path}:{line}: not a valid govrun event ({describe_invalid(exc)}).",
            hint="Is this a govrun trace? `govrun verify` checks it.",
        ) from None


def describe_invalid(exc: ValidationError) -> str:
    """The first problem with an event, in words: 'missing or unknown type' rather than
    pydantic's internal tag-extraction message."""
    err = exc.errors()[0]
    if err["type"] in ("union_tag_not_found", "union_tag_invalid"):
        return "missing or unknown `type`"
    where = ".".join(str(p) for p in err["loc"][1:]) or "event"
    return f"{err['loc'][0]}.{where}: {err['msg']}" if err["loc"] else err["msg"]


def _resolve_blobs(value: Any, folder: Path, *, strict: bool = False, load: bool = True) -> Any:
    """Inline sidecar blobs. A missing blob becomes a visible placeholder so that viewers
    still work on a trace copied without its folder; ``verify`` reports it as damage.
    ``load=False`` puts a short placeholder in place of every blob without reading it."""
    if isinstance(value, dict):
        ref = value.get(_BLOB_KEY)
        if isinstance(ref, str) and not _BLOB_REF.fullmatch(ref):  # a hash, never a path
            return f"[invalid blob reference {ref[:40]!r}]"
        if isinstance(ref, str):
            if not load:
                return f"[blob {ref[:12]}… {value.get('size')} bytes, not loaded]"
            data = read_blob(folder / ref)
            if data is not None:
                return data.decode(errors="replace")
            if strict:
                raise TraceError(f"blob {ref} is missing from {folder}.")
            return f"[blob {ref[:12]}… missing from {folder.name}]"
        return {k: _resolve_blobs(v, folder, strict=strict, load=load) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_blobs(v, folder, strict=strict, load=load) for v in value]
    return value


class TraceReader:
    """Streams validated events from a trace, tolerating a torn final line.

    After iteration, ``torn`` describes the torn tail, if any. A damaged line anywhere else
    raises :class:`TraceError` (that is tampering or corruption, not a crash).
    """

    def __init__(self, path: str | Path, *, resolve_blobs: bool = True) -> None:
        self.path = Path(path)
        check_trace(path)
        self.resolve_blobs = resolve_blobs
        self.torn: TornTail | None = None

    def __iter__(self) -> Iterator[Event]:
        folder = blob_dir(self.path)
        last_seq: int | None = None
        for line_no, offset, raw, complete in _lines(self.path):
            if len(raw) > MAX_LINE_BYTES:
                raise too_long(self.path, line_no)
            if not complete:
                data = _try_complete(raw)
                if data is None:
                    self.torn = TornTail(line_no, offset, len(raw), last_seq)
                    return
                _check_version(data, line_no, self.path)
            else:
                data = _decode(raw, line_no, self.path)
            if _BLOB_MARK in raw:
                data = _resolve_blobs(data, folder, load=self.resolve_blobs)
            event = _validate(data, line_no, self.path)
            last_seq = event.seq
            yield event

    def events(self) -> list[Event]:
        return list(self)


def read_stored(path: str | Path) -> tuple[list[dict[str, Any]], TornTail | None]:
    """Every event exactly as stored (blob references left in), without building a pydantic
    object per event: for replay and diff, which read whole traces and need speed. Checks
    what they rely on (an object with a known ``type`` and ``seq`` in order) and the schema
    major, raising :class:`TraceError` otherwise."""
    file = Path(path)
    check_trace(path)
    events: list[dict[str, Any]] = []
    with gc_paused():
        torn = _read_into(events, file)
    if not events:
        raise TraceError(
            f"{file}: the trace is empty."
            if torn is None
            else f"{file}: the trace holds only a torn line."
        )
    return events, torn


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Building many small dicts triggers the cycle collector over and over for nothing
    (they hold no cycles): a third of the time of reading a large trace."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def gc_frozen() -> Iterator[None]:
    """Leaves the objects alive now (a loaded record: every event of a run) out of the
    cycle collector's passes until the block ends; each full pass would otherwise walk all
    of them again, for nothing. Cycles made inside the block are collected as usual, and
    the frozen objects are ordinary again afterwards."""
    if gc.get_freeze_count():  # somebody else is using the permanent generation
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _read_into(events: list[dict[str, Any]], file: Path) -> TornTail | None:
    """The fast path: every complete line parsed in a comprehension, checked in one pass;
    anything unexpected goes line by line for a precise error."""
    with open_trace(file) as f:
        data = f.read()
    lines = data.split(b"\n")
    long = _longest(lines)
    if long is not None:
        raise too_long(file, long + 1)
    tail = lines.pop()  # b"" when the file ends with a newline
    loads = orjson.loads
    try:
        parsed = [loads(line) for line in lines]
    except orjson.JSONDecodeError:
        return _read_lines_into(events, file)
    if not all(
        type(e) is dict
        and e.get("seq") == n
        and e.get("v") == SCHEMA_MAJOR
        and e.get("type") in EVENT_TYPES
        for n, e in enumerate(parsed)
    ):
        return _read_lines_into(events, file)
    events.extend(parsed)
    if not tail:
        return None
    last = _try_complete(tail)
    line_no = len(parsed) + 1
    if last is None:
        offset = len(data) - len(tail)
        return TornTail(line_no, offset, len(tail), events[-1]["seq"] if events else None)
    _check_event(last, len(events), line_no, file)
    events.append(last)
    return None


def _read_lines_into(events: list[dict[str, Any]], file: Path) -> TornTail | None:
    for line_no, offset, raw, complete in _lines(file):
        data = _decode(raw, line_no, file) if complete else _try_complete(raw)
        if data is None:
            return TornTail(line_no, offset, len(raw), events[-1]["seq"] if events else None)
        _check_event(data, len(events), line_no, file)
        events.append(data)
    return None


def _check_event(data: dict[str, Any], seq: int, line_no: int, file: Path) -> None:
    _check_version(data, line_no, file)
    if data.get("type") not in EVENT_TYPES or data.get("seq") != seq:
        raise TraceError(
            f"{file}:{line_no}: not a govrun event in sequence (type "
            f"{data.get('type')!r}, seq {data.get('seq')!r}).",
            hint="Is this a govrun trace? `govrun verify` checks it.",
        )


def resolve_blobs(value: Any, trace_path: str | Path) -> Any:
    """``value`` (a stored payload) with its sidecar blob references inlined."""
    return _resolve_blobs(value, blob_dir(trace_path))


def read_trace(path: str | Path) -> tuple[list[Event], TornTail | None]:
    """All events of a trace and its torn tail, if any."""
    reader = TraceReader(path)
    events = reader.events()
    if not events and reader.torn is None:
        raise TraceError(f"{path}: the trace is empty.")
    return events, reader.torn


def _try_complete(raw: bytes) -> dict[str, Any] | None:
    """A final line without newline is complete only if it is a whole JSON object."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _lines(path: Path, chunk_size: int = 1 << 20) -> Iterator[tuple[int, int, bytes, bool]]:
    """(line number from 1, byte offset, bytes without newline, ended by newline). A line
    over :data:`MAX_LINE_BYTES` comes cut a little past that length (no event is that long:
    callers refuse it), so that a huge line is never held whole."""
    line_no = 0
    offset = 0
    with open_trace(path) as f:
        pieces: list[bytes] = []  # of a line longer than a chunk: joined once, not per chunk
        size = 0  # that line's length so far, pieces not kept past the limit included
        while chunk := f.read(chunk_size):
            parts = chunk.split(b"\n")
            if len(parts) == 1:
                if size <= MAX_LINE_BYTES:
                    pieces.append(chunk)
                size += len(chunk)
                continue
            line_no += 1
            yield line_no, offset, b"".join((*pieces, parts[0])), True
            offset += size + len(parts[0]) + 1
            for part in parts[1:-1]:
                line_no += 1
                yield line_no, offset, part, True
                offset += len(part) + 1
            pieces, size = [parts[-1]], len(parts[-1])
        pending = b"".join(pieces)
        if pending:
            yield line_no + 1, offset, pending, False


# --- random access -----------------------------------------------------------------------


class TraceIndex:
    """Byte offsets of every complete line, so a viewer can fetch event N without parsing
    the others. ``refresh()`` picks up lines appended since (following a live run)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._offsets = array("Q")
        self._end = 0  # offset just past the last complete line
        self._file = open_trace(self.path)  # lives with the index
        self.refresh()

    def refresh(self) -> int:
        """Index lines completed since the last call; returns how many were added."""
        self._file.seek(self._end)
        data = self._file.read()
        lines = data.split(b"\n")
        unfinished = lines.pop()  # after the last newline: the writer may still be at it
        long = _longest([*lines, unfinished])
        if long is not None:
            raise too_long(self.path, len(self._offsets) + long + 1)
        if not lines:
            return 0
        last = len(data) - len(unfinished) - 1
        # Start of line k = sum of the earlier lines' lengths + k newlines, in C iterators:
        # a 100,000-line trace is indexed in milliseconds, not a Python loop per line.
        starts = map(add, accumulate(map(len, lines), initial=self._end), count())
        self._offsets.extend(islice(starts, len(lines)))
        self._end += last + 1
        return len(lines)

    def __len__(self) -> int:
        return len(self._offsets)

    def raw(self, n: int) -> bytes:
        """Line ``n`` (0-based) without its newline."""
        if n < 0:
            n += len(self._offsets)
        if not 0 <= n < len(self._offsets):
            raise IndexError(f"event {n} is out of range (0..{len(self._offsets) - 1})")
        start = self._offsets[n]
        end = self._offsets[n + 1] if n + 1 < len(self._offsets) else self._end
        self._file.seek(start)
        return self._file.read(end - start - 1)

    def get(self, n: int, *, resolve_blobs: bool = True) -> Event:
        raw = self.raw(n)
        data = _decode(raw, n + 1, self.path)
        if _BLOB_MARK in raw:
            data = _resolve_blobs(data, blob_dir(self.path), load=resolve_blobs)
        return _validate(data, n + 1, self.path)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TraceIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
