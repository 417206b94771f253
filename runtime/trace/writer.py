"""The trace: an append-only, hash-chained JSONL file of typed events.

Format (DESIGN section 4): one canonical JSON object per line (orjson, sorted keys). Each
event's ``hash`` is the SHA-256 of its canonical JSON without ``hash``; ``prev`` chains to
the previous event's hash (zeros for the first). Payload strings over a threshold live in a
content-addressed sidecar folder (``<trace>.blobs/<sha256>``) and are referenced as
``{"$blob": sha256, "size": n}``; the chain covers the reference, so it covers the blob.

Every event is on disk before the next side effect (DESIGN section 4): the writer writes each
line before returning unless its type is held (``TraceWriter.hold``), and the loop, which
holds the events between its side effects, flushes before each one, so a step takes two
writes. ``durability="fsync"`` fsyncs each write. Any write failure is fatal
(:class:`TraceWriteError`).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import accumulate, count, islice
from operator import add
from pathlib import Path
from secrets import token_hex
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from runtime.errors import TraceError, TraceWriteError
from runtime.events import EVENT_ADAPTER, EVENT_TYPES, SCHEMA_MAJOR, ZERO_HASH, Event
from runtime.ports import Clock, SystemClock

Durability = Literal["flush", "fsync"]
Observer = Callable[[Event], None]
Tap = Callable[[dict[str, Any]], None]
"""Told the stored form of one event type, without a typed event being built: bookkeeping
that must cost almost nothing per event (the run registry's step and state)."""

BLOB_THRESHOLD = 64 * 1024
"""Strings larger than this (UTF-8 bytes) go to the sidecar folder."""

REDACTED = "[redacted]"
_SORT = orjson.OPT_SORT_KEYS
_SORT_NL = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
_TAGS: dict[type, str] = {}
_MARKER_BYTES = 8
_MEMBER_LEN = len(b'"hash":"",') + 2 * _MARKER_BYTES
"""Length of the placeholder hash member, ``"hash":"<marker in hex>",``."""
_sha256 = hashlib.sha256
_MAX_PENDING = 4096
"""Held lines written at the latest after this many (a long replay holds everything)."""


def _tag(cls: type[Event]) -> str:
    """An event class's ``type`` literal, cached: pydantic's field lookup is slow."""
    tag = _TAGS.get(cls)
    if tag is None:
        tag = _TAGS[cls] = cls.model_fields["type"].default
    return tag


_BLOB_KEY = "$blob"
_BLOB_MARK = b'"$blob"'
_BLOB_REF = re.compile(r"[0-9a-f]{64}")


def canonical(obj: Any) -> bytes:
    """The one canonical JSON form: orjson, sorted keys, no whitespace."""
    return orjson.dumps(obj, option=_SORT)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_dir(trace_path: str | Path) -> Path:
    """Where a trace's sidecar blobs live: ``run.jsonl`` -> ``run.jsonl.blobs/``."""
    p = Path(trace_path)
    return p.with_name(p.name + ".blobs")


# --- writer ------------------------------------------------------------------------------


class TraceWriter:
    """Appends events to a new trace file, one durable, chained line at a time."""

    def __init__(
        self,
        path: str | Path,
        *,
        run_id: str,
        clock: Clock | None = None,
        durability: Durability = "flush",
        secrets: Iterable[str] = (),
        blob_threshold: int = BLOB_THRESHOLD,
        observers: Iterable[Observer] = (),
        taps: Mapping[type[Event], Tap] | None = None,
    ) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.head = ZERO_HASH
        self.seq = 0
        self._clock = clock or SystemClock()
        self._fsync = durability == "fsync"
        self._threshold = blob_threshold
        self._observers = list(observers)
        self._taps = dict(taps or {})
        self._secrets = _secret_forms({s for s in secrets if s})
        self._needles = _secret_needles(self._secrets)
        self._broken: str | None = None
        self._blobs_made = False
        self.last: dict[str, Any] | None = None
        """The last event as stored (blob references, redactions): what replay compares."""
        self.hold: frozenset[type[Event]] = frozenset()
        """Event types whose lines may wait in memory for the next :meth:`flush` (or the
        next event of another type) instead of being written at once. DESIGN: every event is
        on disk before the next side effect. The loop holds the events after which it does
        nothing outside the process before it flushes, and so writes a step in two calls
        instead of eight; by default nothing is held."""
        self._pending: list[bytes] = []
        self._flushed = (0, ZERO_HASH)  # (seq, head) of the lines on disk
        self._size = 0  # bytes on disk
        # The placeholder hash: random per writer and never written, so no value can
        # contain it (a tool reading this very trace reads real hashes, not this). Short,
        # so that finding it is quick; the digest replaces it by position.
        self._marker = token_hex(_MARKER_BYTES)
        self._member = b'"hash":"%s",' % self._marker.encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # FileExistsError here means a file where the folder goes
            raise TraceWriteError(
                f"cannot create trace {self.path}: cannot make folder {exc.filename} "
                f"({exc.strerror})."
            ) from exc
        try:
            self._fd = os.open(
                self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644
            )
        except FileExistsError:
            raise TraceError(
                f"{self.path} already exists; govrun never overwrites a trace.",
                hint="Choose another path with -o, or move the old trace away.",
            ) from None
        except OSError as exc:
            raise TraceWriteError(f"cannot create trace {self.path}: {exc.strerror}") from exc

    def redact(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``payload`` as this writer will store it, secrets replaced: for callers that
        must sign exactly the stored values (an approver's reason may quote a secret)."""
        return _redact(payload, self._secrets) if self._secrets else payload

    def add_observer(self, observer: Observer) -> None:
        self._observers.append(observer)

    def append(self, event: Event) -> str:
        """Write a typed event; see :meth:`write`. Returns the new head hash."""
        payload = event.__pydantic_serializer__.to_python(event, mode="json")
        for key in _ENVELOPE:
            payload.pop(key, None)
        return self.write(type(event), event.step, payload)

    def write(self, cls: type[Event], step: int, payload: dict[str, Any]) -> str:
        """Stamp the envelope onto ``payload`` (JSON-native values of ``cls``'s fields),
        chain the line, notify observers with the typed event, and return its hash. The line
        is on disk when this returns unless ``cls`` is in :attr:`hold` (see there).

        This is the loop's hot path: it skips building a pydantic object per event (the
        classes stay the schema; readers and observers validate through the union) and
        serializes once: the line is dumped with a placeholder hash, whose member is cut
        out to get the hashed body and then replaced by the digest. Raises
        :class:`TraceWriteError` if the line may not be on disk; nothing may happen after.
        """
        if self._broken:
            raise TraceWriteError(
                f"trace {self.path} is unusable after an earlier error: {self._broken}"
            )
        payload["type"] = _TAGS.get(cls) or _tag(cls)
        payload["v"] = SCHEMA_MAJOR
        payload["seq"] = self.seq
        payload["ts"] = self._clock.now()
        payload["run_id"] = self.run_id
        payload["step"] = step
        payload["prev"] = self.head
        payload["hash"] = self._marker
        line = orjson.dumps(payload, option=_SORT_NL)
        cut = line.find(self._member)
        if (
            cut < 0
            or len(line) > self._threshold
            or (self._needles and any(n in line for n in self._needles))
        ):
            shown, data, line, digest = self._prepare_slowly(payload)
        else:
            end = cut + _MEMBER_LEN
            digest = _sha256(line[:cut] + line[end:-1]).hexdigest()
            line = line[: cut + 8] + digest.encode() + line[end - 2 :]
            shown = data = payload
            data["hash"] = digest
        self._pending.append(line)
        self.last = data
        self.head = digest
        self.seq += 1
        if cls not in self.hold or len(self._pending) >= _MAX_PENDING:
            self._drain()
        if self._taps:
            tap = self._taps.get(cls)
            if tap is not None:
                tap(data)
        if self._observers:
            event = cls.model_validate({**shown, "hash": digest})
            for observer in self._observers:
                observer(event)
        return digest

    def _prepare_slowly(
        self, payload: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any], bytes, str]:
        """Secrets to redact or strings to move to the sidecar: (what observers are shown,
        the stored form, its line, its hash). Observers see large strings inline, secrets
        never."""
        del payload["hash"]
        data = payload
        body = orjson.dumps(data, option=_SORT)
        if self._needles and any(n in body for n in self._needles):
            data = _redact(data, self._secrets)
            body = orjson.dumps(data, option=_SORT)
        shown = data
        if len(body) > self._threshold:
            data = self._externalize(data)
            body = orjson.dumps(data, option=_SORT)
        digest = hashlib.sha256(body).hexdigest()
        data["hash"] = digest
        return shown, data, orjson.dumps(data, option=_SORT_NL), digest

    def flush(self) -> None:
        """Put every held line on disk: the loop calls this before each side effect."""
        if self._pending:
            self._drain()

    def _drain(self) -> None:
        lines, self._pending = self._pending, []
        try:
            self._write(lines[0] if len(lines) == 1 else b"".join(lines))
        except TraceWriteError:
            self._rewind(lines)
            raise
        self._flushed = (self.seq, self.head)

    def _rewind(self, lines: list[bytes]) -> None:
        """After a failed write, ``seq`` and ``head`` describe the last whole line that
        reached the file (a batch may end in a torn line): what ``verify`` will find."""
        seq, head = self._flushed
        try:
            room = os.fstat(self._fd).st_size - self._size
        except OSError:
            room = 0
        for line in lines:
            room -= len(line)
            if room < 0:
                break
            seq, head = seq + 1, orjson.loads(line)["hash"]
        self.seq, self.head = seq, head

    @property
    def closed(self) -> bool:
        return self._fd < 0

    @property
    def broken(self) -> bool:
        """True after a write failed: the trace may not be extended any more."""
        return self._broken is not None

    def close(self) -> None:
        if self._fd >= 0 and self._pending and not self._broken:
            self._drain()
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                os.close(fd)
            except OSError as exc:
                if not self._broken:
                    raise TraceWriteError(f"closing trace {self.path} failed: {exc}") from exc

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, line: bytes) -> None:
        """One unbuffered write per event: when it returns, the line is in the OS."""
        if self._fd < 0:
            raise TraceWriteError(f"trace {self.path} is closed.")
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            self._size += len(line)
            if self._fsync:
                os.fsync(self._fd)
        except OSError as exc:
            self._broken = exc.strerror or str(exc)
            raise TraceWriteError(
                f"writing trace {self.path} failed ({self._broken}); the run halts here so "
                "that nothing happens that the trace does not record.",
                hint="Free disk space or choose another path with -o, then run again.",
            ) from exc

    def _externalize(self, data: dict[str, Any]) -> dict[str, Any]:
        return {k: (v if k in _ENVELOPE else self._spill(v)) for k, v in data.items()}

    def _spill(self, value: Any) -> Any:
        if isinstance(value, str):
            raw = value.encode()
            if len(raw) <= self._threshold:
                return value
            return {_BLOB_KEY: self._store_blob(raw), "size": len(raw)}
        if isinstance(value, dict):
            return {k: self._spill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._spill(v) for v in value]
        return value

    def store_blob(self, data: bytes) -> str:
        """Keep raw bytes in the sidecar (``<trace>.blobs/<sha256>``) and return their hash:
        file pre-images for rollback, stored before the event that names them is written.

        These are file contents, not payload strings: secret redaction does not apply to
        them (restoring needs the exact bytes), so they are created readable by the owner
        only (0600). Whoever can read a trace's blobs can read what the run overwrote."""
        return self._store_blob(data, mode=0o600)

    def _store_blob(self, raw: bytes, *, mode: int = 0o666) -> str:
        digest = sha256_hex(raw)
        folder = blob_dir(self.path)
        target = folder / digest
        if target.exists():
            return digest
        try:
            folder.mkdir(exist_ok=True)
            tmp = folder / f".{digest}.tmp"
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
            with open(os.open(tmp, flags, mode), "wb") as f:
                f.write(raw)
                f.flush()
                if self._fsync:
                    os.fsync(f.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            self._broken = exc.strerror or str(exc)
            raise TraceWriteError(
                f"writing blob for trace {self.path} failed: {self._broken}"
            ) from exc
        return digest


_ENVELOPE = frozenset(("v", "seq", "ts", "run_id", "step", "type", "prev", "hash"))


def _secret_forms(secrets: Iterable[str], depth: int = 3) -> list[str]:
    """How a secret can appear inside a string value, longest first: as is, and JSON-escaped
    once or twice (JSON text inside a string, such as raw tool arguments whose own values
    hold JSON text), by orjson or by ``json.dumps``, whose default ``ensure_ascii`` turns
    non-ASCII characters into ``\\uXXXX``."""
    forms: set[str] = set()
    level = set(secrets)
    for _ in range(depth):
        forms |= level
        level = {e for f in level for e in (orjson.dumps(f)[1:-1].decode(), json.dumps(f)[1:-1])}
    return sorted(forms, key=len, reverse=True)


def _secret_needles(forms: list[str]) -> list[bytes]:
    """Byte patterns under which a secret form appears in canonical JSON."""
    return sorted({orjson.dumps(f)[1:-1] for f in forms}, key=len, reverse=True)


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for s in secrets:
            if s in value:
                value = value.replace(s, REDACTED)
        return value
    if isinstance(value, dict):
        return {_redact(k, secrets): _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, secrets) for v in value]
    return value


# --- reader ------------------------------------------------------------------------------


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
            try:
                return (folder / ref).read_bytes().decode(errors="replace")
            except OSError:
                if strict:
                    raise TraceError(f"blob {ref} is missing from {folder}.") from None
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
        if not self.path.is_file():
            raise TraceError(f"{self.path}: no such trace file.")
        self.resolve_blobs = resolve_blobs
        self.torn: TornTail | None = None

    def __iter__(self) -> Iterator[Event]:
        folder = blob_dir(self.path)
        last_seq: int | None = None
        for line_no, offset, raw, complete in _lines(self.path):
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
    if not file.is_file():
        raise TraceError(f"{file}: no such trace file.")
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
    data = file.read_bytes()
    lines = data.split(b"\n")
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
    """(line number from 1, byte offset, bytes without newline, ended by newline)."""
    line_no = 0
    offset = 0
    with open(path, "rb") as f:
        pending = b""
        while chunk := f.read(chunk_size):
            buf = pending + chunk
            parts = buf.split(b"\n")
            pending = parts.pop()
            for part in parts:
                line_no += 1
                yield line_no, offset, part, True
                offset += len(part) + 1
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
        self._file = open(self.path, "rb")  # noqa: SIM115 - lives with the index
        self.refresh()

    def refresh(self) -> int:
        """Index lines completed since the last call; returns how many were added."""
        self._file.seek(self._end)
        data = self._file.read()
        last = data.rfind(b"\n")
        if last < 0:
            return 0
        lines = data[:last].split(b"\n")
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
