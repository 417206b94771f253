"""Compare two trajectories step by step: what ``govrun diff`` reports.

Steps are aligned on their action signatures (what the model proposed), so an extra or a
missing step shows as one insertion or removal instead of shifting every later step. Aligned
steps whose other fields differ (a policy decision, an output, a verification, the model
that answered) are *changed*. Timing, tokens, run ids, call ids and hashes never make two
steps different: :mod:`govrun.runtime.views.trajectory` declares them out of the views' equality.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any, Literal

import orjson

from govrun.runtime.views.trajectory import (
    NO_REPLY,
    ApprovalView,
    CallView,
    CheckView,
    InterruptView,
    PolicyView,
    ResultView,
    StepView,
    Totals,
    Trajectory,
    load_trajectory,
)

EntryKind = Literal["changed", "inserted", "removed"]
Opcode = tuple[str, int, int, int, int]


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field that differs. ``field`` is a path such as ``calls[0].arguments.path`` or
    ``calls[1].policy.rule``; ``a`` and ``b`` are JSON-ready values (None when absent)."""

    field: str
    a: Any
    b: Any


@dataclass(frozen=True, slots=True)
class StepDiff:
    """A step only ``b`` has (inserted), only ``a`` has (removed), or that both have with
    different fields (changed)."""

    kind: EntryKind
    a: StepView | None
    b: StepView | None
    changes: tuple[FieldChange, ...] = ()

    @property
    def a_step(self) -> int | None:
        return self.a.step if self.a is not None else None

    @property
    def b_step(self) -> int | None:
        return self.b.step if self.b is not None else None

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(c.field for c in self.changes)


@dataclass(frozen=True, slots=True)
class FirstDivergence:
    """Where the trajectories part. Everything before is identical step for step, so both
    step numbers are usually equal; one is None when that trajectory had already ended.
    ``kind`` is ``run`` when every step matches but the runs' outcomes differ."""

    a_step: int | None
    b_step: int | None
    kind: Literal["changed", "inserted", "removed", "run"]
    fields: tuple[str, ...]
    summary: str


@dataclass(frozen=True, slots=True)
class TrajectoryDiff:
    """Everything ``govrun diff`` shows, in alignment order."""

    a: Trajectory
    b: Trajectory
    entries: tuple[StepDiff, ...]
    run_changes: tuple[FieldChange, ...]
    first_divergence: FirstDivergence | None

    @property
    def same(self) -> bool:
        return not self.entries and not self.run_changes

    def count(self, kind: EntryKind) -> int:
        return sum(1 for e in self.entries if e.kind == kind)

    def to_json(self) -> str:
        """The whole report as indented JSON, for machines."""
        return orjson.dumps(_report(self), option=orjson.OPT_INDENT_2).decode()


def diff_traces(a: str | Path, b: str | Path) -> TrajectoryDiff:
    """Align and compare the runs recorded in two trace files (``govrun diff A B``)."""
    return diff_trajectories(load_trajectory(a), load_trajectory(b))


def diff_trajectories(a: Trajectory, b: Trajectory) -> TrajectoryDiff:
    """Align ``a`` and ``b`` on action signatures and report every difference."""
    entries: list[StepDiff] = []
    first: FirstDivergence | None = None
    for sa, sb, i, j in _walk(a.steps, b.steps):
        if sa is not None and sb is not None:
            if sa.signature == sb.signature and sa == sb:
                continue
            # Views compare values (1 == True); signatures compare JSON ("1" != "true").
            changes = compare_steps(sa, sb) or (
                FieldChange("action", describe_action(sa), describe_action(sb)),
            )
            entry = StepDiff("changed", sa, sb, changes)
        elif sb is not None:
            entry = StepDiff("inserted", None, sb)
        else:
            entry = StepDiff("removed", sa, None)
        if first is None:
            first = FirstDivergence(
                a.steps[i].step if i < len(a.steps) else None,
                b.steps[j].step if j < len(b.steps) else None,
                entry.kind,
                entry.fields,
                _summary(entry),
            )
        entries.append(entry)
    run_changes = tuple(_run_changes(a, b))
    if first is None and run_changes:
        text = "; ".join(f"{c.field}: {_short(c.a)} → {_short(c.b)}" for c in run_changes)
        first = FirstDivergence(
            None, None, "run", tuple(c.field for c in run_changes), f"every step matches; {text}"
        )
    return TrajectoryDiff(a, b, tuple(entries), run_changes, first)


# --- alignment -----------------------------------------------------------------------------


def align(a: list[Any], b: list[Any]) -> list[Opcode]:
    """difflib-style opcodes (equal, replace, delete, insert) for two sequences of hashables.

    The common prefix and suffix are matched first, so the usual case (long equal runs
    around a few differences) costs a linear scan. A small differing middle goes to
    SequenceMatcher; a large one to Myers' O((N+M)·D) algorithm, which stays fast however
    repetitive the steps (SequenceMatcher is quadratic on one call repeated 10,000 times)
    as long as the differences are few. Only when they are many and the middle is large
    does difflib's autojunk take over, trading some precision for speed.
    """
    n, m = len(a), len(b)
    p = 0
    while p < n and p < m and a[p] == b[p]:
        p += 1
    s = 0
    while s < n - p and s < m - p and a[n - 1 - s] == b[m - 1 - s]:
        s += 1
    ops: list[Opcode] = [("equal", 0, p, 0, p)] if p else []
    ma, mb = a[p : n - s], b[p : m - s]
    if ma or mb:
        big = len(ma) * len(mb) > SMALL_MIDDLE
        middle = _myers(ma, mb) if big and _few_edits(ma, mb) else None
        if middle is None:
            middle = SequenceMatcher(None, ma, mb, autojunk=big).get_opcodes()
        ops.extend((t, i1 + p, i2 + p, j1 + p, j2 + p) for t, i1, i2, j1, j2 in middle)
    if s:
        ops.append(("equal", n - s, n, m - s, m))
    return ops


SMALL_MIDDLE = 1_000_000
"""Pairs of steps up to which SequenceMatcher's exact matching is fast enough anyway."""
MYERS_WORK = 2_000_000
"""Loop iterations after which Myers gives up (about half a second): the traces differ in
so many places that a minimal edit script is not worth its cost."""


def _few_edits(a: list[Any], b: list[Any]) -> bool:
    """Whether an edit script can be short: it has at least one move for every step that
    has no equal in the other sequence, and Myers needs about D²/2 iterations for D moves."""
    common = sum((Counter(a) & Counter(b)).values())
    return (len(a) + len(b) - 2 * common) ** 2 < 2 * MYERS_WORK


def _myers(a: list[Any], b: list[Any], work: int = MYERS_WORK) -> list[Opcode] | None:
    """A shortest edit script (Myers 1986) as opcodes, or None past ``work`` iterations."""
    n, m = len(a), len(b)
    off = n + m + 1
    v = [0] * (2 * off + 1)  # v[off + k]: the furthest x reached on diagonal k = x - y
    history: list[list[int]] = []  # v on diagonals -d-1..d+1 as each round d began
    for d in range(n + m + 1):
        history.append(v[off - d - 1 : off + d + 2])
        for k in range(-d, d + 1, 2):
            if k == -d or (k != d and v[off + k - 1] < v[off + k + 1]):
                x = v[off + k + 1]  # a move down: insert b[y]
            else:
                x = v[off + k - 1] + 1  # a move right: delete a[x]
            y = x - k
            while x < n and y < m and a[x] == b[y]:
                x += 1
                y += 1
            work -= x - v[off + k] + 1
            v[off + k] = x
            if x >= n and y >= m:
                return _opcodes(_edits(history, n, m, d), n, m)
        if work < 0:
            return None
    return None


Edit = tuple[bool, int, int]
"""(is a deletion, x, y): one move of an edit script, from the point (x, y)."""


def _edits(history: list[list[int]], n: int, m: int, rounds: int) -> list[Edit]:
    """Walk back from (n, m) through the rounds: each round's move came from the diagonal
    next to it that reached further, as the forward pass chose."""
    edits: list[Edit] = []
    x, y = n, m
    for d in range(rounds, 0, -1):
        v = history[d]  # v[k + d + 1] for diagonal k, as round d began
        k = x - y
        down = k == -d or (k != d and v[k + d] < v[k + d + 2])
        prev = k + 1 if down else k - 1
        x = v[prev + d + 1]
        y = x - prev
        edits.append((not down, x, y))
    edits.reverse()
    return edits


def _opcodes(edits: list[Edit], n: int, m: int) -> list[Opcode]:
    """An edit script as opcodes: equal runs between edits, and each run of edits with no
    equal step between them one block (``replace`` when it both deletes and inserts)."""
    ops: list[Opcode] = []
    x = y = 0
    block: list[int] | None = None  # i1, i2, j1, j2

    def close() -> None:
        if block is not None:
            i1, i2, j1, j2 = block
            tag = "replace" if i1 < i2 and j1 < j2 else "delete" if i1 < i2 else "insert"
            ops.append((tag, i1, i2, j1, j2))

    for deletion, ex, ey in edits:
        if ex > x:  # an equal run up to this edit
            close()
            block = None
            ops.append(("equal", x, ex, y, ey))
        if block is None:
            block = [ex, ex, ey, ey]
        x, y = (ex + 1, ey) if deletion else (ex, ey + 1)
        block[1], block[3] = x, y
    close()
    if x < n:
        ops.append(("equal", x, n, y, m))
    return ops


Walked = tuple[StepView | None, StepView | None, int, int]
"""(step of a, step of b, index in a, index in b): a step alone on one side is inserted or
removed; two steps are aligned on equal signatures, or paired from a block of different
ones to be compared field by field."""


def _walk(a: tuple[StepView, ...], b: tuple[StepView, ...]) -> Iterator[Walked]:
    ids: dict[Any, int] = {}
    sa = [ids.setdefault(s.signature, len(ids)) for s in a]
    sb = [ids.setdefault(s.signature, len(ids)) for s in b]
    for tag, i1, i2, j1, j2 in align(sa, sb):
        if tag == "equal":
            for k in range(i2 - i1):
                yield a[i1 + k], b[j1 + k], i1 + k, j1 + k
        elif tag == "delete":
            for i in range(i1, i2):
                yield a[i], None, i, j1
        elif tag == "insert":
            for j in range(j1, j2):
                yield None, b[j], i1, j
        else:
            yield from _pair(a, b, i1, i2, j1, j2)


def _pair(
    a: tuple[StepView, ...], b: tuple[StepView, ...], i1: int, i2: int, j1: int, j2: int
) -> Iterator[Walked]:
    """Steps replaced by others: pair those that call the same tools (or both answer), so
    that a changed argument reads as a change, not as a removal plus an insertion."""
    if i2 - i1 == j2 - j1:
        for k in range(i2 - i1):
            yield a[i1 + k], b[j1 + k], i1 + k, j1 + k
        return
    ka = [_shape(s) for s in a[i1:i2]]
    kb = [_shape(s) for s in b[j1:j2]]
    for tag, x1, x2, y1, y2 in align(ka, kb):
        paired = min(x2 - x1, y2 - y1) if tag in ("equal", "replace") else 0
        for k in range(paired):
            yield a[i1 + x1 + k], b[j1 + y1 + k], i1 + x1 + k, j1 + y1 + k
        for x in range(x1 + paired, x2):
            yield a[i1 + x], None, i1 + x, j1 + y1 + paired
        for y in range(y1 + paired, y2):
            yield None, b[j1 + y], i1 + x2, j1 + y


def _shape(step: StepView) -> tuple[str, ...]:
    """A step's signature without arguments or answer text."""
    return tuple(c.tool for c in step.calls) or (step.signature[0][0],)


# --- field-level comparison ---------------------------------------------------------------


def compare_steps(a: StepView, b: StepView) -> tuple[FieldChange, ...]:
    """Every field that differs between two steps, in the order a reader meets them."""
    out: list[FieldChange] = []
    if a.text != b.text:
        out.append(FieldChange("text" if a.calls or b.calls else "answer", a.text, b.text))
    for k in range(max(len(a.calls), len(b.calls))):
        ca = a.calls[k] if k < len(a.calls) else None
        cb = b.calls[k] if k < len(b.calls) else None
        if ca is None or cb is None:
            out.append(FieldChange(f"calls[{k}]", _call_plain(ca), _call_plain(cb)))
        elif ca != cb:
            out.extend(_call_changes(f"calls[{k}]", ca, cb))
    if a.models != b.models:
        out.append(FieldChange("models", list(a.models), list(b.models)))
    if a.model_errors != b.model_errors:
        out.append(FieldChange("model_errors", list(a.model_errors), list(b.model_errors)))
    if a.refused != b.refused:
        out.append(FieldChange("refused", a.refused, b.refused))
    if a.checks != b.checks:
        out.append(FieldChange("verification", _checks(a.checks), _checks(b.checks)))
    if a.interrupts != b.interrupts:
        out.append(FieldChange("interrupts", _interrupts(a.interrupts), _interrupts(b.interrupts)))
    if a.outcome != b.outcome:
        out.append(FieldChange("outcome", a.outcome, b.outcome))
    return tuple(out)


def _call_changes(at: str, a: CallView, b: CallView) -> Iterator[FieldChange]:
    if a.tool != b.tool:
        yield FieldChange(f"{at}.tool", a.tool, b.tool)
    if a.arguments is not None and b.arguments is not None:
        for key in sorted(a.arguments.keys() | b.arguments.keys()):
            va, vb = a.arguments.get(key), b.arguments.get(key)
            if va != vb or (key in a.arguments) != (key in b.arguments):
                yield FieldChange(f"{at}.arguments.{key}", va, vb)
    elif a.arguments_json != b.arguments_json:
        yield FieldChange(f"{at}.arguments", _arguments(a), _arguments(b))
    yield from _part_changes(f"{at}.policy", a.policy, b.policy, _policy)
    yield from _part_changes(f"{at}.approval", a.approval, b.approval, _approval)
    if a.result != b.result:
        if a.result is None or b.result is None:
            yield FieldChange(f"{at}.result", _result(a.result), _result(b.result))
        else:
            for name in ("ok", "output", "error", "failure_class"):
                va, vb = getattr(a.result, name), getattr(b.result, name)
                if va != vb:
                    yield FieldChange(f"{at}.{name}", va, vb)
    if a.checks != b.checks:
        yield FieldChange(f"{at}.verification", _checks(a.checks), _checks(b.checks))


def _part_changes(at: str, a: Any, b: Any, plain: Any) -> Iterator[FieldChange]:
    """A policy or approval: the whole when one side lacks it, else each differing field."""
    if a == b:
        return
    if a is None or b is None:
        yield FieldChange(at, plain(a), plain(b))
        return
    for name, va in plain(a).items():
        vb = getattr(b, name)
        if va != vb:
            yield FieldChange(f"{at}.{name}", va, vb)


def _run_changes(a: Trajectory, b: Trajectory) -> Iterator[FieldChange]:
    if a.input != b.input:
        yield FieldChange("input", a.input, b.input)
    if a.totals.status != b.totals.status:
        yield FieldChange("status", a.totals.status, b.totals.status)
    if a.totals.failure_class != b.totals.failure_class:
        yield FieldChange("failure_class", a.totals.failure_class, b.totals.failure_class)


# --- plain values --------------------------------------------------------------------------


def _arguments(c: CallView) -> Any:
    return c.arguments if c.arguments is not None else c.raw_arguments


def _policy(p: PolicyView | None) -> dict[str, Any] | None:
    return None if p is None else {"effect": p.effect, "rule": p.rule, "reason": p.reason}


def _approval(p: ApprovalView | None) -> dict[str, Any] | None:
    return None if p is None else {"decision": p.decision, "approver": p.approver, "via": p.via}


def _result(r: ResultView | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"ok": r.ok, "output": r.output, "error": r.error, "failure_class": r.failure_class}


def _checks(checks: tuple[CheckView, ...]) -> list[dict[str, Any]]:
    return [
        {"check": c.check, "id": c.check_id, "passed": c.passed, "failure_class": c.failure_class}
        for c in checks
    ]


def _interrupts(items: tuple[InterruptView, ...]) -> list[dict[str, Any]]:
    return [
        {"kind": i.kind, "rule": i.rule, "action": i.action, "failure_class": i.failure_class}
        for i in items
    ]


def _call_plain(c: CallView | None) -> dict[str, Any] | None:
    """A call as JSON: what was asked and what governance made of it."""
    if c is None:
        return None
    return {
        "tool": c.tool,
        "arguments": _arguments(c),
        "policy": _policy(c.policy),
        "approval": _approval(c.approval),
        "result": _result(c.result),
        "verification": _checks(c.checks),
    }


def _step_plain(s: StepView) -> dict[str, Any]:
    """A step as JSON, without timing."""
    return {
        "step": s.step,
        "calls": [_call_plain(c) for c in s.calls],
        "text": s.text,
        "models": list(s.models),
        "model_errors": list(s.model_errors),
        **({"refused": s.refused} if s.refused is not None else {}),
        "verification": _checks(s.checks),
        "interrupts": _interrupts(s.interrupts),
        "outcome": s.outcome,
        "tokens": s.tokens,
        "cost_usd": s.cost_usd,
    }


# --- words ---------------------------------------------------------------------------------


def describe_action(step: StepView, width: int = 72) -> str:
    """What the step did, in one line: ``fs_write(path='a.txt', content='hi')``, ``answer
    'done'``, or ``no reply (model_error)``."""
    if step.calls:
        return "; ".join(_call_text(c, width) for c in step.calls)
    if step.signature[0][0] == NO_REPLY:
        why = ", ".join(step.model_errors) or step.outcome or "the run ended"
        return f"no reply ({why})"
    if step.refused is not None:
        return f"refused reply ({step.refused}) " + _short(step.text or "", width)
    return "answer " + _short(step.text or "", width)


def _call_text(c: CallView, width: int) -> str:
    if c.arguments is None:
        return _clip(f"{c.tool}({c.raw_arguments or ''})", width)
    args = ", ".join(f"{k}={_short(v, 40)}" for k, v in c.arguments.items())
    return _clip(f"{c.tool}({args})", width)


def describe_value(field: str, value: Any) -> str | None:
    """A structured field's value in words (``ok: wrote 2 bytes``, ``deny (no-net): …``);
    None for plain values (arguments, outputs, text), which read best as they are."""
    tail = field.rsplit(".", 1)[-1]
    if _WHOLE_CALL.fullmatch(field):
        if value is None:
            return "no such call"
        return f"{value['tool']}({_compact(value['arguments'])})"
    if tail == "result":
        if value is None:
            return "not run"
        if value["ok"]:
            return f"ok: {value['output']}"
        return f"failed ({value['failure_class']}): {value['error'] or value['output']}"
    if tail == "policy":
        if value is None:
            return "not decided"
        rule = f" ({value['rule']})" if value["rule"] else " (default)"
        return f"{value['effect']}{rule}" + (f": {value['reason']}" if value["reason"] else "")
    if tail == "approval":
        if value is None:
            return "not asked"
        return f"{value['decision']} by {value['approver']} via {value['via']}"
    if tail == "verification":
        return "; ".join(_check_words(c) for c in value) or "none"
    if tail == "interrupts":
        return "; ".join(f"{i['kind']} {i['rule']} → {i['action']}" for i in value) or "none"
    if tail in ("models", "model_errors"):
        return ", ".join(map(str, value)) or "none"
    return None


_WHOLE_CALL = re.compile(r"calls\[\d+\]")


def _check_words(c: dict[str, Any]) -> str:
    name = f"{c['check']}" + (f" #{c['id']}" if c["id"] else "")
    return f"{name} passed" if c["passed"] else f"{name} failed ({c['failure_class']})"


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _short(value: Any, width: int = 40) -> str:
    """A value in one clipped line: strings quoted, others as compact JSON."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = orjson.dumps(value).decode()
        except TypeError:
            text = repr(value)
    return _clip(" ".join(text.split()), width)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


def _summary(entry: StepDiff) -> str:
    if entry.kind == "inserted":
        assert entry.b is not None
        return f"b has an extra step {entry.b.step}: {describe_action(entry.b)}"
    if entry.kind == "removed":
        assert entry.a is not None
        return f"b lacks a's step {entry.a.step}: {describe_action(entry.a)}"
    first = entry.changes[0]
    more = len(entry.changes) - 1
    words = [describe_value(first.field, v) for v in (first.a, first.b)]
    shown = [
        _short(v) if w is None else _clip(w, 40)
        for v, w in zip((first.a, first.b), words, strict=True)
    ]
    text = f"{first.field}: {shown[0]} → {shown[1]}"
    return text + (f" (and {more} more field{'s' if more > 1 else ''})" if more else "")


def _totals(t: Totals) -> dict[str, Any]:
    return {
        "steps": t.steps,
        "tokens": t.tokens,
        "cost_usd": t.cost_usd,
        "duration_ms": t.duration_ms,
        "status": t.status,
        "failure_class": t.failure_class,
        "model_calls": t.model_calls,
        "tool_calls": t.tool_calls,
    }


def _side(t: Trajectory) -> dict[str, Any]:
    torn = t.torn
    return {
        "path": str(t.path),
        "run_id": t.run_id,
        "agent": t.agent,
        "finished": t.finished,
        "torn": None if torn is None else {"line": torn.line, "after_seq": torn.after_seq},
    }


def _report(d: TrajectoryDiff) -> dict[str, Any]:
    first = d.first_divergence
    ta, tb = d.a.totals, d.b.totals
    delta: dict[str, Any] = {
        "steps": tb.steps - ta.steps,
        "tokens": tb.tokens - ta.tokens,
        "cost_usd": round(tb.cost_usd - ta.cost_usd, 8),
        "duration_ms": None
        if ta.duration_ms is None or tb.duration_ms is None
        else round(tb.duration_ms - ta.duration_ms, 3),
    }
    return {
        "same": d.same,
        "a": _side(d.a),
        "b": _side(d.b),
        "first_divergence": None
        if first is None
        else {
            "a_step": first.a_step,
            "b_step": first.b_step,
            "kind": first.kind,
            "fields": list(first.fields),
            "summary": first.summary,
        },
        "counts": {k: d.count(k) for k in ("changed", "inserted", "removed")},
        "entries": [
            {
                "kind": e.kind,
                "a_step": e.a_step,
                "b_step": e.b_step,
                "changes": [{"field": c.field, "a": c.a, "b": c.b} for c in e.changes],
                "a": None if e.a is None else _step_plain(e.a),
                "b": None if e.b is None else _step_plain(e.b),
            }
            for e in d.entries
        ],
        "run_changes": [{"field": c.field, "a": c.a, "b": c.b} for c in d.run_changes],
        "totals": {"a": _totals(ta), "b": _totals(tb), "delta": delta},
    }


def field_label(field: str) -> str:
    """``calls[0].arguments.path`` reads as ``call 1 arguments.path``."""
    if field.startswith("calls["):
        index, _, rest = field[6:].partition("]")
        if index.isdigit():
            return f"call {int(index) + 1} {rest.lstrip('.')}".rstrip()
    return field
