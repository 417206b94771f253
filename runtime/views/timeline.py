"""A trace as a timeline of steps, read lazily: what a viewer needs to open any trace at once.

Opening scans the file's bytes once — line offsets (the trace's byte-offset index) and each
line's event type from its canonical tail (``"type":"X","v":1}``) — without decoding JSON.
A step's summary (its action, an icon-worthy status, tokens) is decoded only when someone
looks at it, and cached. Search, next-failure and filters run as byte searches over the
file. ``refresh()`` picks up what a live run appended since.
"""

from __future__ import annotations

import mmap
import re
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, Literal

import orjson

from govrun.runtime.errors import TraceError
from govrun.runtime.trace import events as ev
from govrun.runtime.trace.reader import TraceIndex, check_trace, open_trace

TYPES: tuple[str, ...] = tuple(ev.EVENT_TYPES)
_CODE = {name: code for code, name in enumerate(TYPES)}
_BYTE_CODE = {name.encode(): code for name, code in _CODE.items()}
_UNKNOWN = 255
_TAIL = re.compile(
    rb'"type":"([a-z_]+)"(?:,"usage":\{[^{}]*\})?(?:,"user":(?:"(?:[^"\\]|\\.)*"|null))?'
    rb',"v":\d+(?:,"via":"[a-z]+")?(?:,"workspace":"(?:[^"\\]|\\.)*")?\}\n'
)
"""The end of a canonical line: keys are sorted, and only these few sort after ``type``
(``TAIL_FIELDS``; a test keeps the two in step)."""
TAIL_FIELDS = ("usage", "user", "v", "via", "workspace")
_FAILURE = re.compile(rb'"failure_class":"([a-z_]+)"')

Status = Literal[
    "ok",
    "final",
    "denied",
    "rejected",
    "awaiting_approval",
    "running",
    "tool_error",
    "verification_failed",
    "interrupt",
    "failed",
    "model_error",
]
"""What a step's icon shows, most important first when several apply (see ``_status``)."""


@dataclass(frozen=True, slots=True)
class StepRow:
    """One step as a timeline row. Row 0 holds what came before the first step."""

    row: int
    step: int
    first_seq: int
    last_seq: int
    action: str
    status: Status
    failure_class: str | None
    tokens: int
    cost_usd: float
    duration_ms: float | None
    model: str | None


@dataclass(frozen=True, slots=True)
class RunHeader:
    agent: str
    run_id: str
    input: str
    status: str
    """completed, failed, stopped — or running / unfinished when there is no run_finished."""
    failure_class: str | None
    reason: str
    steps: int
    events: int
    tokens: int
    cost_usd: float
    duration_ms: float | None
    parent: dict[str, Any] | None


class Timeline:
    """A trace file, indexed for stepping through it."""

    def __init__(self, path: str | Path, *, cache_rows: int = 4096) -> None:
        self.path = Path(path)
        check_trace(self.path)
        self.index = TraceIndex(self.path)
        self._types = bytearray()
        self._starts = array("Q")  # seq of each step's first event
        self._after: int | None = 0
        """Schema 2: where to look for the next step's first event (None: nowhere yet)."""
        self._last_step = 0
        self._in_step = False
        self._step_ends = array("Q")  # seq of each step_finished
        self._summed = 0  # step_finished events already added to the running totals
        self._tokens = 0
        self._cost = 0.0
        self._finished: dict[str, Any] | None = None
        self._started: dict[str, Any] | None = None
        self._rows: OrderedDict[int, StepRow] = OrderedDict()
        self._cache_rows = cache_rows
        self._map: mmap.mmap | None = None
        self._scan(0)
        if not self._types:
            raise TraceError(f"{self.path}: the trace is empty (no complete event yet).")
        first = self.raw_event(0)
        if first.get("type") != "run_started":
            raise TraceError(
                f"{self.path}: not a govrun trace (it does not start with run_started)."
            )
        if first.get("seq") != 0:
            seq = str(first.get("seq"))[:24]
            raise TraceError(f"{self.path} is not a govrun trace: its first event has seq {seq}.")
        self._started = first

    # --- reading ---------------------------------------------------------------------------

    def _scan(self, start: int) -> None:
        """Types of lines ``start..`` from their tails; step boundaries; running totals.
        Only ``step_finished`` and ``run_finished`` lines are decoded."""
        end = len(self.index)
        if start >= end:
            return
        first = self.index._offsets[start]
        with open_trace(self.path) as f:
            f.seek(first)
            chunk = f.read(self.index._end - first)
        tails = _TAIL.findall(chunk)
        if len(tails) != end - start:  # a line without the canonical tail: decode each
            tails = [str(self.raw_event(n).get("type", "")).encode() for n in range(start, end)]
        codes = bytearray(map(_BYTE_CODE.get, tails, repeat(_UNKNOWN)))
        self._types.extend(codes)
        step_started, step_finished = _CODE["step_started"], _CODE["step_finished"]
        for n in _positions(codes, step_started):  # schema 1 marks each step's start
            self._starts.append(start + n)
            self._after = None
        for n in _positions(codes, step_finished):
            self._step_ends.append(start + n)
        if codes and codes[-1] == _CODE["run_finished"]:
            self._finished = self.raw_event(end - 1)
        self._map = None
        if self._after is not None:
            self._find_starts(end)

    def _find_starts(self, end: int) -> None:
        """Schema 2: a step begins with its first event, the first whose step is higher
        than the step before. Only the lines after a ``step_finished`` (and after
        ``run_started``) are decoded, until one starts a step — usually one per step."""
        finished, last = _CODE["step_finished"], _CODE["run_finished"]
        n = self._after or 0
        while n < end:
            if self._in_step:  # the step's lines: skip to its step_finished
                found = self._types.find(finished, n, end)
                if found < 0:
                    n = end
                    break
                n, self._in_step = found + 1, False
                continue
            code = self._types[n]
            if code == last:
                break
            if code != _CODE["run_started"]:
                step = self.raw_event(n).get("step")
                if isinstance(step, int) and step > self._last_step:
                    self._starts.append(n)
                    self._last_step, self._in_step = step, True
            n += 1
        self._after = n

    def refresh(self) -> int:
        """Pick up events appended since; returns how many. The last row is re-read."""
        before = len(self._types)
        added = self.index.refresh()
        if added:
            self._scan(before)
            last = self.rows - 1
            for row in (last - 1, last):
                self._rows.pop(row, None)
            self._rows.pop(self._row_of(before - 1), None)
        return added

    def raw_event(self, seq: int) -> dict[str, Any]:
        """Event ``seq`` as stored (blob references unresolved)."""
        try:
            data = orjson.loads(self.index.raw(seq))
        except orjson.JSONDecodeError as exc:
            raise TraceError(f"{self.path}: event {seq} is not valid JSON ({exc}).") from None
        if not isinstance(data, dict):
            raise TraceError(f"{self.path}: event {seq} is not a JSON object.")
        return data

    def event(self, seq: int) -> ev.Event:
        """Event ``seq``, typed, sidecar blobs inlined."""
        return self.index.get(seq)

    def type_of(self, seq: int) -> str:
        code = self._types[seq]
        return TYPES[code] if code != _UNKNOWN else "?"

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        self.index.close()

    # --- the shape -------------------------------------------------------------------------

    @property
    def events(self) -> int:
        return len(self._types)

    @property
    def rows(self) -> int:
        """Timeline rows: row 0 (before the first step) and one per step."""
        return len(self._starts) + 1

    @property
    def finished(self) -> bool:
        return self._finished is not None

    def seq_range(self, row: int) -> tuple[int, int]:
        """First and last seq (inclusive) of a row."""
        first = 0 if row == 0 else self._starts[row - 1]
        last = self._starts[row] - 1 if row < len(self._starts) else len(self._types) - 1
        return first, last

    def _row_of(self, seq: int) -> int:
        return bisect_right(self._starts, seq)

    def row_of(self, seq: int) -> int:
        """The row an event belongs to."""
        return self._row_of(max(0, seq))

    # --- summaries -------------------------------------------------------------------------

    def _running_totals(self) -> tuple[int, float]:
        """Tokens and cost so far, for a run without run_finished (decoded on demand)."""
        for seq in self._step_ends[self._summed :]:
            e = self.raw_event(seq)
            self._tokens += int(e.get("tokens") or 0)
            self._cost += float(e.get("cost_usd") or 0.0)
        self._summed = len(self._step_ends)
        return self._tokens, self._cost

    def header(self) -> RunHeader:
        started = self._started or {}
        done = self._finished or {}
        if done:
            tokens, cost = 0, 0.0
        else:
            tokens, cost = self._running_totals()
        totals = done.get("totals") or {}
        status = str(done.get("status") or "running")
        return RunHeader(
            agent=str(started.get("agent", "")),
            run_id=str(started.get("run_id", "")),
            input=str(started.get("input", ""))
            if not isinstance(started.get("input"), dict)
            else "[large input]",
            status=status,
            failure_class=done.get("failure_class"),
            reason=str(done.get("reason", "")),
            steps=int(done.get("steps") or len(self._starts)),
            events=len(self._types),
            tokens=int(totals.get("tokens", tokens)),
            cost_usd=float(totals.get("cost_usd", cost)),
            duration_ms=totals.get("duration_ms"),
            parent=started.get("parent"),
        )

    def row(self, row: int) -> StepRow:
        """A row's summary, decoded on first use."""
        cached = self._rows.get(row)
        if cached is not None:
            self._rows.move_to_end(row)
            return cached
        built = self._build_row(row)
        self._rows[row] = built
        if len(self._rows) > self._cache_rows:
            self._rows.popitem(last=False)
        return built

    def row_events(self, row: int) -> list[dict[str, Any]]:
        first, last = self.seq_range(row)
        return [self.raw_event(seq) for seq in range(first, last + 1)]

    def _build_row(self, row: int) -> StepRow:
        first, last = self.seq_range(row)
        events = self.row_events(row)
        step = row
        action = _action(events) if row else "run started"
        status, failure = _status(events, live=not self.finished and row == self.rows - 1)
        finished = next((e for e in events if e["type"] == "step_finished"), None)
        model = next((e.get("model") for e in events if e["type"] == "model_response"), None)
        return StepRow(
            row=row,
            step=step,
            first_seq=first,
            last_seq=last,
            action=action,
            status=status,
            failure_class=failure,
            tokens=int((finished or {}).get("tokens") or 0),
            cost_usd=float((finished or {}).get("cost_usd") or 0.0),
            duration_ms=(finished or {}).get("duration_ms"),
            model=model,
        )

    def pending(self) -> str | None:
        """What a live run is waiting on: an approval, a tool call, the model."""
        if self.finished or not self._types:
            return None
        events = self.row_events(self.rows - 1)
        asked = {e["call_id"]: e for e in events if e["type"] == "approval_requested"}
        for e in events:
            if e["type"] == "approval_decided":
                asked.pop(e.get("call_id"), None)
        if asked:
            tool = next(iter(asked.values())).get("tool")
            return f"awaiting approval: {tool}"
        running = {e["call_id"]: e for e in events if e["type"] == "tool_started"}
        for e in events:
            if e["type"] == "tool_finished":
                running.pop(e.get("call_id"), None)
        if running:
            return f"tool in flight: {next(iter(running.values())).get('tool')}"
        if events and events[-1]["type"] == "model_request":
            return "waiting for the model"
        return None

    # --- finding ---------------------------------------------------------------------------

    def _bytes(self) -> mmap.mmap:
        if self._map is None:
            with open_trace(self.path) as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return self._map

    def _seq_at(self, offset: int) -> int:
        return bisect_right(self.index._offsets, offset) - 1

    def search(self, text: str, *, after: int = -1, backward: bool = False) -> int | None:
        """The next (or previous) event whose stored JSON contains ``text`` (any case)."""
        if not text:
            return None
        needle = re.escape(orjson.dumps(text)[1:-1])
        pattern = re.compile(needle, re.IGNORECASE)
        data = self._bytes()
        end = self.index._end
        if backward:
            limit = self.index._offsets[after] if 0 <= after < self.events else end
            found = None
            for match in pattern.finditer(data, 0, limit):
                found = match.start()
            return None if found is None else self._seq_at(found)
        start = self.index._offsets[after + 1] if after + 1 < self.events else end
        match = pattern.search(data, start, end)
        return None if match is None else self._seq_at(match.start())

    def next_failure(self, *, after: int = -1, backward: bool = False) -> int | None:
        """The next (or previous) event that carries a failure class."""
        data = self._bytes()
        if backward:
            limit = self.index._offsets[after] if 0 <= after < self.events else self.index._end
            found = None
            for match in _FAILURE.finditer(data, 0, limit):
                found = match.start()
            return None if found is None else self._seq_at(found)
        start = self.index._offsets[after + 1] if after + 1 < self.events else self.index._end
        match = _FAILURE.search(data, start, self.index._end)
        return None if match is None else self._seq_at(match.start())

    def rows_matching(
        self, *, types: Iterable[str] = (), failure_class: str | None = None
    ) -> list[int]:
        """Rows holding an event of one of ``types`` and/or one with ``failure_class``
        (``"*"``: any failure)."""
        wanted = {_CODE[t] for t in types if t in _CODE}
        rows: set[int] = set()
        if wanted:
            rows.update(self._row_of(seq) for seq, code in enumerate(self._types) if code in wanted)
        if failure_class is not None:
            data = self._bytes()
            matched = {
                self._row_of(self._seq_at(m.start()))
                for m in _FAILURE.finditer(data, 0, self.index._end)
                if failure_class == "*" or m.group(1).decode() == failure_class
            }
            rows = matched if not wanted else rows & matched
        return sorted(rows)

    def failure_classes(self) -> list[str]:
        """Failure classes present in the trace, for a filter menu."""
        data = self._bytes()
        return sorted({m.group(1).decode() for m in _FAILURE.finditer(data, 0, self.index._end)})


def _positions(codes: bytearray, code: int) -> Iterator[int]:
    """Indexes of ``code`` in ``codes`` (bytes.find runs in C)."""
    needle = bytes([code])
    at = codes.find(needle)
    while at != -1:
        yield at
        at = codes.find(needle, at + 1)


# --- row summaries ------------------------------------------------------------------------------


def _action(events: list[dict[str, Any]]) -> str:
    """The step's action: its tool calls, or its answer."""
    reply = next(
        (e for e in reversed(events) if e["type"] == "model_response" and not e.get("error")),
        None,
    )
    if reply is None:
        error = next((e for e in events if e["type"] == "model_response"), None)
        return f"model error: {error.get('error')}" if error else "—"
    parsed = next((e for e in events if e["type"] == "text_tool_calls"), None)
    calls = reply.get("tool_calls") or (parsed or {}).get("calls") or []
    if calls:
        return ", ".join(f"{c.get('name')}({_args(c.get('arguments'))})" for c in calls)
    content = reply.get("content")
    text = content if isinstance(content, str) else "[large answer]" if content else ""
    refused = next((e for e in events if e["type"] == "reply_refused"), None)
    if refused is not None:
        return f"refused ({refused.get('kind')}): " + " ".join(text.split())
    return "answer: " + " ".join(text.split())


def _args(raw: Any) -> str:
    if not isinstance(raw, str):
        return "…"
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:40]
    if not isinstance(parsed, dict):
        return raw[:40]
    parts = []
    for key, value in parsed.items():
        shown = value if isinstance(value, str) else orjson.dumps(value).decode()
        shown = " ".join(str(shown).split())
        parts.append(f"{key}={shown[:24] + '…' if len(shown) > 25 else shown}")
    return ", ".join(parts)


_ORDER: tuple[Status, ...] = (
    "interrupt",
    "awaiting_approval",
    "running",
    "model_error",
    "failed",
    "verification_failed",
    "rejected",
    "denied",
    "tool_error",
    "final",
    "ok",
)


def _status(events: list[dict[str, Any]], *, live: bool) -> tuple[Status, str | None]:
    """The row's most important status and the first failure class in it."""
    seen: set[Status] = {"ok"}
    failure: str | None = None
    asked: set[str] = set()
    started: set[str] = set()
    for e in events:
        kind = e["type"]
        decided = e.get("decision") if kind == "tool_call" else None
        failure = failure or e.get("failure_class") or (decided or {}).get("failure_class")
        if kind == "interrupt" and e.get("action") in ("pause", "stop"):
            seen.add("interrupt")
        elif (kind == "policy_decision" and e.get("effect") == "deny") or (
            isinstance(decided, dict) and decided.get("effect") == "deny"
        ):
            seen.add("denied")
        elif kind == "approval_requested":
            asked.add(e.get("call_id", ""))
        elif kind == "approval_decided":
            asked.discard(e.get("call_id", ""))
            if e.get("decision") != "approve":
                seen.add("rejected")
        elif kind == "tool_started":
            started.add(e.get("call_id", ""))
        elif kind == "tool_finished":
            started.discard(e.get("call_id", ""))
            if not e.get("ok"):
                seen.add("tool_error")
        elif kind == "verification" and e.get("failure_class"):
            seen.add("verification_failed")
        elif (kind == "model_response" and e.get("error") and not e.get("retryable")) or (
            kind == "reply_refused"
        ):
            seen.add("model_error")
        elif kind == "step_finished":
            if e.get("outcome") == "final":
                seen.add("final")
            elif e.get("outcome") in ("failed", "stop"):
                seen.add("failed")
    if asked:
        seen.add("awaiting_approval" if live else "failed")
    if started:
        seen.add("running" if live else "failed")
    return next(s for s in _ORDER if s in seen), failure
