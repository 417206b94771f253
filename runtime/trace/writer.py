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
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from secrets import token_hex
from typing import Any, Literal

import orjson

from govrun.runtime.errors import TraceError, TraceWriteError
from govrun.runtime.ports import Clock, SystemClock
from govrun.runtime.trace.canonical import (
    _BLOB_KEY,
    MAX_LINE_BYTES,
    blob_dir,
    sha256_hex,
)
from govrun.runtime.trace.events import SCHEMA_MAJOR, ZERO_HASH, Event

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
        fence: Callable[[], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.fence = fence
        """Called before every append; raises :class:`TraceWriteError` when this writer may
        no longer write (another worker took the run over: a fencing token moved on)."""
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
        self._ts = ""
        """The timestamp of the held batch's first event."""
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
            raise _exists(self.path) from None
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
        # one timestamp per batch: events held for the same write share the first one's
        payload["ts"] = self._ts if self._pending else self._stamp()
        payload["run_id"] = self.run_id
        payload["step"] = step
        payload["prev"] = self.head
        payload["hash"] = self._marker
        try:
            line = orjson.dumps(payload, option=_SORT_NL)
        except TypeError as exc:  # orjson.JSONEncodeError: e.g. an integer over 64 bits
            reason = f"a {payload['type']} event holds a value JSON cannot record ({exc})"
            raise self._halt(reason) from None
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

    def _stamp(self) -> str:
        self._ts = ts = self._clock.now()
        return ts

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
        if len(body) > MAX_LINE_BYTES:
            raise self._halt(
                f"a {data['type']} event is {len(body):,} bytes even with its long strings in "
                f"the sidecar folder, over the {MAX_LINE_BYTES >> 20} MiB a trace line may hold"
            )
        digest = hashlib.sha256(body).hexdigest()
        data["hash"] = digest
        return shown, data, orjson.dumps(data, option=_SORT_NL), digest

    def _halt(self, reason: str) -> TraceWriteError:
        """An event that cannot be written: nothing more is, so the run halts (as after a
        failed write) with a trace that ends before it."""
        self._broken = reason
        return TraceWriteError(
            f"cannot record the run in {self.path}: {reason}; the run halts here so that "
            "nothing happens that the trace does not record."
        )

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
            finally:
                if self._size == 0:  # no event reached it: an empty file is no record
                    with contextlib.suppress(OSError):
                        self.path.unlink()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, line: bytes) -> None:
        """One unbuffered write per event: when it returns, the line is in the OS."""
        if self._fd < 0:
            raise TraceWriteError(f"trace {self.path} is closed.")
        if self.fence is not None:
            try:
                self.fence()
            except TraceWriteError as exc:
                self._broken = exc.message
                raise
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


def _exists(path: Path) -> TraceError:
    hint = "Choose another path with -o, or move the old trace away."
    with contextlib.suppress(OSError):
        if path.stat().st_size == 0:
            hint = (
                "It is empty: a run that crashed before its first event left it, and it "
                f"records nothing. Delete it (rm {path}) or choose another path with -o."
            )
    return TraceError(f"{path} already exists; govrun never overwrites a trace.", hint=hint)


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
    """``value`` with every secret form in its strings replaced. Keys are never touched:
    they are the event's own field names (and a tool's argument names), and rewriting one
    would turn the event into something its class does not describe."""
    if isinstance(value, str):
        for s in secrets:
            if s in value:
                value = value.replace(s, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, secrets) for v in value]
    return value
