"""A trace as a trajectory: one small, frozen view per governed step.

``govrun diff`` compares two of these, and replay reports and the inspector can reuse them:
a step is what the model proposed (its *action signature*), what governance made of each
call (policy, approval, result, verification), and what the step cost.

Equality of the views is the diff's notion of "the same": fields that never make two steps
different (step numbers, call ids, timing, tokens, free-text check details) are declared
``compare=False``, so ``step_a == step_b`` answers "did anything that matters change?".

Loading is the one place that reads raw trace lines without the event union: a 10,000-step
trace holds ~80,000 events, and validating each through pydantic takes a second where this
module's budget is a fraction of one. It decodes each line with orjson, skips the event
types a trajectory never uses without decoding them, and checks the fields it reads.
``govrun verify`` remains the reader that proves a trace intact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from govrun.runtime.errors import TraceError
from govrun.runtime.trace.canonical import blob_dir, canonical
from govrun.runtime.trace.events import EVENT_TYPES, SCHEMA_MAJOR
from govrun.runtime.trace.reader import (
    TornTail,
    _check_version,
    _longest,
    _resolve_blobs,
    check_trace,
    gc_paused,
    open_trace,
    too_long,
)

Signature = tuple[tuple[str, str], ...]
"""What a step did, as the aligner sees it: ``(tool, canonical JSON arguments)`` for each
proposed call, or ``(("final", answer),)`` for a step that answered without calls, or
``(("refused", "KIND: text"),)`` for a reply that was no answer (``reply_refused``), or
``(("no_reply", ""),)`` when the model never answered (it failed, or the run stopped first)."""

FINAL = "final"
REFUSED = "refused"
NO_REPLY = "no_reply"

_SKIPPED = (
    "step_started",
    "model_request",
    "tool_call_proposed",
    "approval_requested",
    "tool_started",
    "route",
)
_SKIP_SUFFIXES = tuple(f',"type":"{t}","v":{SCHEMA_MAJOR}}}'.encode() for t in _SKIPPED)
"""Canonical lines end with ``"type":…,"v":N}`` (sorted keys) for these types, so a suffix
test recognises them without decoding. Nothing a trajectory shows comes from them alone:
``tool_call_proposed`` repeats the calls its ``model_response`` lists, parsed the same way."""
_BLOB_MARK = b'"$blob"'
_HINT = "Is this a govrun trace? `govrun verify` checks it."


# --- the views ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyView:
    """Policy's verdict on a call."""

    effect: str
    rule: str | None
    reason: str
    risk: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ApprovalView:
    """The decision at the approval gate. The approver's free-text reason is kept for
    display; who decided, what, and how are what make two runs differ."""

    decision: str
    approver: str
    via: str
    reason: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class ResultView:
    """What the tool returned, as the model was shown it."""

    ok: bool
    output: str
    error: str | None
    failure_class: str | None
    duration_ms: float = field(default=0.0, compare=False)


@dataclass(frozen=True, slots=True)
class CheckView:
    """One verification outcome. ``detail`` and evidence may name paths and sizes that
    differ between otherwise identical runs, so only the verdict is compared."""

    check: str
    check_id: str | None
    passed: bool
    failure_class: str | None
    detail: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class CallView:
    """One call the model proposed and everything governance did with it. ``policy`` is None
    when the run ended before the call was decided; ``approval`` when it never went to the
    gate; ``result`` when it never ran."""

    tool: str
    arguments: dict[str, Any] | None
    raw_arguments: str | None
    policy: PolicyView | None
    approval: ApprovalView | None
    result: ResultView | None
    checks: tuple[CheckView, ...]
    call_id: str = field(default="", compare=False)

    @property
    def arguments_json(self) -> str:
        """Canonical JSON of the parsed arguments; a JSON string of the raw text when they
        did not parse (so the two can never be mistaken for each other)."""
        return _arguments_json(self.arguments, self.raw_arguments)


@dataclass(frozen=True, slots=True)
class InterruptView:
    """A budget, anomaly or operator interrupt. Its reason may quote measured values
    (elapsed time), so only what fired and what it did are compared."""

    kind: str
    rule: str
    action: str
    failure_class: str | None
    reason: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class StepView:
    """One governed step. ``outcome`` is None when the trace ends inside the step."""

    step: int = field(compare=False)
    signature: Signature = field(compare=False)  # derived from ``calls`` and ``text``
    models: tuple[str, ...]
    text: str | None
    model_errors: tuple[str, ...]
    calls: tuple[CallView, ...]
    checks: tuple[CheckView, ...]
    interrupts: tuple[InterruptView, ...]
    outcome: str | None
    tokens: int = field(default=0, compare=False)
    cost_usd: float = field(default=0.0, compare=False)
    duration_ms: float = field(default=0.0, compare=False)
    refused: str | None = None
    """The kind of a reply that was no answer (``reply_refused``: length, empty, …)."""

    @property
    def is_final(self) -> bool:
        """The model answered without calls."""
        return self.signature[0][0] == FINAL and not self.calls


@dataclass(frozen=True, slots=True)
class Totals:
    """Run totals, computed from the events so that a torn or unfinished trace has them too.
    ``status`` is ``unfinished`` without ``run_finished``."""

    steps: int
    tokens: int
    cost_usd: float
    duration_ms: float | None
    status: str
    failure_class: str | None
    model_calls: int
    tool_calls: int


@dataclass(frozen=True, slots=True)
class Trajectory:
    """A whole run as steps. ``torn`` is set when the trace ends in a torn line (a crash
    mid-write): everything before it is here."""

    path: Path
    run_id: str
    agent: str
    input: str
    steps: tuple[StepView, ...]
    totals: Totals
    final_answer: str | None
    reason: str
    torn: TornTail | None

    @property
    def finished(self) -> bool:
        return self.totals.status != "unfinished"


# --- loading -----------------------------------------------------------------------------


def load_trajectory(path: str | Path, *, load_blobs: bool = True) -> Trajectory:
    """Read a trace into a :class:`Trajectory`.

    Tolerates a torn final line (``torn`` says so). Raises :class:`TraceError` for a missing
    or unreadable file, a file that is not a govrun trace, a damaged line before the end, or
    a newer schema major. ``load_blobs=False`` shows sidecar payloads as placeholders that
    still differ when the blobs do (they name the blob's hash).
    """
    p = Path(path)
    check_trace(p)
    with open_trace(p) as f:
        data = f.read()
    lines = data.split(b"\n")
    long = _longest(lines)
    if long is not None:
        raise too_long(p, long + 1)
    tail = lines.pop()  # b"" when the file ends with a newline, as a complete trace does
    builder = _Builder(p, blob_dir(p), load_blobs)
    torn: TornTail | None = None
    with gc_paused():
        if tail:
            try:
                last = orjson.loads(tail)
            except orjson.JSONDecodeError:
                last = None
            if isinstance(last, dict):  # complete: only its newline is missing
                lines.append(tail)
            else:
                torn = TornTail(
                    len(lines) + 1,
                    len(data) - len(tail),
                    len(tail),
                    len(lines) - 1 if lines else None,
                )
        if not lines:
            what = "ends in a torn first line" if torn else "is empty"
            raise TraceError(f"{p} {what}: there is no run to read.")
        builder.feed(lines, _BLOB_MARK in data)
        return builder.build(torn)


def _arguments_json(arguments: dict[str, Any] | None, raw: str | None) -> str:
    if arguments is not None:
        return canonical(arguments).decode()
    return orjson.dumps(raw or "").decode()


def _parse_raw(raw: str | None) -> dict[str, Any] | None:
    """Arguments as the loop parses them (govrun.runtime.govern.toolbox): blank means none, and
    only a JSON object counts."""
    if raw is None:
        return None
    if not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class _CallAcc:
    """A call being assembled from its events, in the order the loop writes them."""

    __slots__ = ("approval", "call_id", "checks", "policy", "raw", "result", "tool")

    def __init__(self, call_id: str, tool: str, raw: str | None) -> None:
        self.call_id = call_id
        self.tool = tool
        self.raw = raw
        self.policy: PolicyView | None = None
        self.approval: ApprovalView | None = None
        self.result: ResultView | None = None
        self.checks: list[CheckView] = []

    def view(self) -> CallView:
        arguments = _parse_raw(self.raw)
        return CallView(
            self.tool,
            arguments,
            self.raw if arguments is None else None,
            self.policy,
            self.approval,
            self.result,
            tuple(self.checks),
            self.call_id,
        )


class _StepAcc:
    __slots__ = (
        "calls",
        "checks",
        "cost",
        "current",
        "decided",
        "duration_ms",
        "errors",
        "interrupts",
        "models",
        "outcome",
        "refused",
        "replied",
        "step",
        "text",
        "tokens",
    )

    def __init__(self, step: int) -> None:
        self.step = step
        self.models: list[str] = []
        self.errors: list[str] = []
        self.text: str | None = None
        self.replied = False
        self.refused: str | None = None  # the kind of a reply that was no answer
        self.calls: list[_CallAcc] = []
        self.decided = 0  # policy decisions seen: the loop governs the calls in order
        self.current: _CallAcc | None = None  # the call being governed
        self.checks: list[CheckView] = []
        self.interrupts: list[InterruptView] = []
        self.outcome: str | None = None
        self.tokens = 0
        self.cost = 0.0
        self.duration_ms = 0.0

    def find(self, call_id: str, tool: Any) -> _CallAcc:
        """The latest call with this id; a new one for an event about a call the reply did
        not list (a trace not written by the loop)."""
        for call in reversed(self.calls):
            if call.call_id == call_id:
                return call
        call = _CallAcc(call_id, str(tool or "?"), None)
        self.calls.append(call)
        return call

    def view(self) -> StepView:
        calls = tuple([c.view() for c in self.calls])
        if calls:
            signature: Signature = tuple([(c.tool, c.arguments_json) for c in calls])
        elif self.refused is not None:
            signature = ((REFUSED, f"{self.refused}: {self.text or ''}"),)
        elif self.replied:
            signature = ((FINAL, self.text or ""),)
        else:
            signature = ((NO_REPLY, ""),)
        return StepView(
            self.step,
            signature,
            tuple(self.models),
            self.text,
            tuple(self.errors),
            calls,
            tuple(self.checks),
            tuple(self.interrupts),
            self.outcome,
            self.tokens,
            round(self.cost, 8),
            self.duration_ms,
            self.refused,
        )


class _Builder:
    """Folds decoded events into steps. Each handler reads the fields its event type
    requires; a missing or mistyped one means the line is not a govrun event."""

    def __init__(self, path: Path, blobs: Path, load_blobs: bool) -> None:
        self.path = path
        self.blobs = blobs
        self.load_blobs = load_blobs
        self.run_id = ""
        self.agent = ""
        self.input = ""
        self.first_ts = ""
        self.last: dict[str, Any] = {}
        self.steps: dict[int, _StepAcc] = {}
        self._current = _StepAcc(-1)
        self.model_calls = 0
        self.tool_calls = 0
        self.finished: dict[str, Any] | None = None
        self._policies: dict[tuple[Any, ...], PolicyView] = {}
        self._handlers = {
            "step_started": self._step,
            "model_response": self._model_response,
            "reply_refused": self._reply_refused,
            "text_tool_calls": self._text_tool_calls,
            "tool_call": self._tool_call,
            "tool_call_proposed": self._proposed,
            "policy_decision": self._policy,
            "approval_decided": self._approval,
            "tool_finished": self._tool_finished,
            "verification": self._verification,
            "interrupt": self._interrupt,
            "step_finished": self._step_finished,
            "run_finished": self._run_finished,
        }

    def feed(self, lines: list[bytes], has_blobs: bool) -> None:
        """The hot loop: every name it uses is local, and lines that need more care (not a
        current-version object, or holding blob references) take :meth:`_decode`."""
        self._run_started(self._decode(lines[0], 1))
        loads, skip, handlers, major = orjson.loads, _SKIP_SUFFIXES, self._handlers, SCHEMA_MAJOR
        e: Any = None
        for i in range(1, len(lines)):
            raw = lines[i]
            if raw.endswith(skip):
                continue
            try:
                e = loads(raw)
            except orjson.JSONDecodeError:
                e = None
            if e.__class__ is not dict or e.get("v") != major or (has_blobs and _BLOB_MARK in raw):
                e = self._decode(raw, i + 1)
            kind = e.get("type")
            handler = handlers.get(kind) if kind.__class__ is str else None
            try:
                if handler is None:
                    self._other(kind, i + 1)
                else:
                    handler(e)
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                what = (
                    f"lacks {exc}" if isinstance(exc, KeyError) else "has a field of the wrong type"
                )
                raise TraceError(
                    f"{self.path}:{i + 1}: not a valid govrun event ({kind} {what}).",
                    hint=_HINT,
                ) from None
        if e is not None:
            self.last = e

    def _decode(self, raw: bytes, n: int) -> dict[str, Any]:
        """The careful path: a line that is not a current-version object, or holds blobs."""
        try:
            e = orjson.loads(raw)
        except orjson.JSONDecodeError:
            e = None
        if not isinstance(e, dict):
            if n == 1:
                raise TraceError(f"{self.path} is not a govrun trace: line 1 is not a JSON object.")
            raise TraceError(
                f"{self.path}:{n}: not a JSON object; the trace is damaged before its end.",
                hint="`govrun verify` tells where and how.",
            )
        _check_version(e, n, self.path)
        if _BLOB_MARK in raw:
            e = _resolve_blobs(e, self.blobs, load=self.load_blobs)
        return e

    def _other(self, kind: Any, n: int) -> None:
        if kind not in EVENT_TYPES or kind == "run_started":
            raise TraceError(
                f"{self.path}:{n}: not a valid govrun event (missing, unknown or repeated "
                f"`type`: {kind!r}).",
                hint=_HINT,
            )

    def _run_started(self, e: dict[str, Any]) -> None:
        if e.get("type") != "run_started":
            raise TraceError(
                f"{self.path} is not a govrun trace: it does not begin with run_started."
            )
        if e.get("seq") != 0:
            seq = str(e.get("seq"))[:24]
            raise TraceError(f"{self.path} is not a govrun trace: its first event has seq {seq}.")
        self.run_id = str(e.get("run_id") or "?")
        self.agent = str(e.get("agent") or "?")
        self.input = str(e.get("input") or "")
        self.first_ts = str(e.get("ts") or "")

    def _step(self, e: dict[str, Any]) -> _StepAcc:
        n = e["step"]
        acc = self._current
        if acc.step == n:  # events come step by step
            return acc
        acc = self.steps.get(n)  # type: ignore[assignment]
        if acc is None:
            if n.__class__ is not int:
                raise TypeError("step")
            acc = self.steps[n] = _StepAcc(n)
        self._current = acc
        return acc

    def _call(self, e: dict[str, Any]) -> _CallAcc:
        """The call an approval, result or check is about: the one being governed."""
        acc = self._step(e)
        call = acc.current
        call_id = e["call_id"]
        if call is None or call.call_id != call_id:
            call = acc.current = acc.find(call_id, e.get("tool"))
        return call

    def _model_response(self, e: dict[str, Any]) -> None:
        acc = self._step(e)
        self.model_calls += 1
        if e.get("error") is not None:
            acc.errors.append(str(e.get("failure_class") or "model_error"))
            return
        acc.replied = True
        acc.models.append(str(e["model"]))
        acc.text = _text(e.get("content"))
        usage = e.get("usage")
        if usage:
            acc.tokens += _int(usage.get("prompt_tokens")) + _int(usage.get("completion_tokens"))
        acc.cost += _number(e.get("cost_usd"))
        # The calls as proposed: tool_call_proposed repeats them parsed, so it is skipped.
        acc.calls = [
            _CallAcc(str(c.get("id", "")), str(c["name"]), _text(c.get("arguments")) or "")
            for c in e.get("tool_calls") or ()
        ]

    def _reply_refused(self, e: dict[str, Any]) -> None:
        acc = self._step(e)
        acc.refused = str(e["kind"])
        acc.errors.append(str(e.get("failure_class") or "model_error"))

    def _text_tool_calls(self, e: dict[str, Any]) -> None:
        """Calls parsed from the reply's text: the step's calls, as a native reply's are."""
        acc = self._step(e)
        acc.calls = [
            _CallAcc(str(c.get("id", "")), str(c["name"]), _text(c.get("arguments")) or "")
            for c in e["calls"]
        ]

    def _proposed(self, e: dict[str, Any]) -> None:
        """Only seen when a line needed the careful path: the reply already listed the call,
        unless the trace was not written by the loop."""
        acc = self._step(e)
        call_id = e["call_id"]
        if all(c.call_id != call_id for c in acc.calls):
            arguments = e.get("arguments")
            raw = _text(arguments if arguments is not None else e.get("raw_arguments"))
            acc.calls.append(_CallAcc(call_id, str(e["tool"]), raw))

    def _tool_call(self, e: dict[str, Any]) -> None:
        """Schema 2: the call and its decision in one event (schema 1's proposal and
        policy decision)."""
        self._proposed(e)
        decision = e.get("decision") or {}
        self._policy({**decision, "step": e["step"], "call_id": e["call_id"], "tool": e["tool"]})

    def _policy(self, e: dict[str, Any]) -> None:
        key = (e["effect"], e.get("rule"), e.get("reason") or "", e.get("risk"))
        view = self._policies.get(key)
        if view is None:  # most calls share a handful of verdicts: build each once
            view = self._policies[key] = PolicyView(*key)
        acc = self._step(e)
        k, call_id = acc.decided, e["call_id"]
        acc.decided += 1
        if k < len(acc.calls) and acc.calls[k].call_id == call_id:
            call = acc.calls[k]  # the k-th decision is about the reply's k-th call
        else:
            call = acc.find(call_id, e.get("tool"))
        acc.current = call
        call.policy = view

    def _approval(self, e: dict[str, Any]) -> None:
        self._call(e).approval = ApprovalView(
            e["decision"], e["approver"], e["via"], e.get("reason") or ""
        )

    def _tool_finished(self, e: dict[str, Any]) -> None:
        self.tool_calls += 1
        self._call(e).result = ResultView(
            bool(e["ok"]),
            _text(e.get("output")) or "",
            e.get("error"),
            e.get("failure_class"),
            _number(e.get("duration_ms")),
        )

    def _verification(self, e: dict[str, Any]) -> None:
        check = CheckView(
            e["check"],
            e.get("check_id"),
            bool(e["passed"]),
            e.get("failure_class"),
            _text(e.get("detail")) or "",
        )
        if e.get("call_id") is not None:
            self._call(e).checks.append(check)
        elif e["step"] != 0:
            self._step(e).checks.append(check)

    def _interrupt(self, e: dict[str, Any]) -> None:
        if e["step"] == 0:
            return  # before the first step: the run's status tells what it did
        self._step(e).interrupts.append(
            InterruptView(
                e["kind"], e["rule"], e["action"], e.get("failure_class"), e.get("reason") or ""
            )
        )

    def _step_finished(self, e: dict[str, Any]) -> None:
        acc = self._step(e)
        acc.outcome = _text(e["outcome"])
        acc.duration_ms = _number(e.get("duration_ms"))

    def _run_finished(self, e: dict[str, Any]) -> None:
        if e["status"] not in ("completed", "failed", "stopped"):
            raise ValueError("status")
        self.finished = e

    def build(self, torn: TornTail | None) -> Trajectory:
        self.steps.pop(0, None)  # run-level model events belong to no step
        steps = tuple([acc.view() for _, acc in sorted(self.steps.items())])
        fin = self.finished or {}
        totals = fin.get("totals")
        duration = totals.get("duration_ms") if isinstance(totals, dict) else None
        if duration.__class__ not in (int, float):
            duration = _elapsed_ms(self.first_ts, str(self.last.get("ts") or ""))
        return Trajectory(
            path=self.path,
            run_id=self.run_id,
            agent=self.agent,
            input=self.input,
            steps=steps,
            totals=Totals(
                steps=len(steps),
                tokens=sum(s.tokens for s in steps),
                cost_usd=round(sum(s.cost_usd for s in steps), 8),
                duration_ms=duration,
                status=fin.get("status") or "unfinished",
                failure_class=fin.get("failure_class"),
                model_calls=self.model_calls,
                tool_calls=self.tool_calls,
            ),
            final_answer=fin.get("final_answer"),
            reason=str(fin.get("reason") or ""),
            torn=torn,
        )


def _number(value: Any) -> float:
    """A number field (absent means 0); anything else is not a govrun event."""
    if value is None:
        return 0.0
    if value.__class__ is float or value.__class__ is int:
        return value  # type: ignore[no-any-return]
    raise TypeError("not a number")


def _int(value: Any) -> int:
    if value is None:
        return 0
    if value.__class__ is int:
        return value  # type: ignore[no-any-return]
    raise TypeError("not an integer")


def _text(value: Any) -> str | None:
    """A string field as text; a non-string (a trace written by hand) as its JSON."""
    if value is None or value.__class__ is str:
        return value
    return orjson.dumps(value).decode()


def _elapsed_ms(start: str, end: str) -> float | None:
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((b - a).total_seconds() * 1000, 3)
