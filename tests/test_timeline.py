"""The lazily-read timeline behind `govrun inspect`: rows, statuses, finding, following."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from govrun.runtime.errors import TraceError
from govrun.runtime.ports import FixedClock
from govrun.runtime.trace import events as ev
from govrun.runtime.trace.writer import TraceWriter
from govrun.runtime.views.timeline import _TAIL, TAIL_FIELDS, Timeline
from tests.support.agents import (
    answer,
    call,
    calls,
    fs_tools,
    run_in,
    scripted_manifest,
)

POLICY = {
    "default": "allow",
    "rules": [
        {
            "id": "no-env",
            "tools": ["fs_read"],
            "when": {"path": {"glob": "*.env"}},
            "effect": "deny",
        }
    ],
}


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("timeline")
    script = [
        calls(call("fs_write", {"path": "a.md", "content": "# A\n"})),
        calls(call("fs_read", {"path": "x.env"})),
        calls(call("fs_read", {"path": "missing.md"})),
        answer("all done"),
    ]
    result, _ = run_in(
        folder,
        scripted_manifest(tools=fs_tools("read", "write"), policy=POLICY),
        script=script,
    )
    return Path(result.trace_path)


def test_every_field_that_sorts_after_type_is_in_the_tail_pattern() -> None:
    """The tail regex reads a line's type without decoding it; a new field sorting after
    `type` would silently send every line down the slow path."""
    after = sorted({f for c in ev.EVENT_TYPES.values() for f in c.model_fields if f > "type"})
    assert after == sorted(TAIL_FIELDS)


def test_the_tail_pattern_reads_every_line_of_a_real_trace(trace: Path) -> None:
    data = trace.read_bytes()
    types = [m.decode() for m in _TAIL.findall(data)]
    assert types == [orjson.loads(line)["type"] for line in data.splitlines()]


def test_rows_actions_and_statuses(trace: Path) -> None:
    tl = Timeline(trace)
    assert tl.rows == 5 and tl.finished
    rows = [tl.row(i) for i in range(tl.rows)]
    assert rows[0].action == "run started"
    assert rows[1].action == "fs_write(content=# A, path=a.md)"
    assert [r.status for r in rows[1:]] == ["ok", "denied", "tool_error", "final"]
    assert rows[2].failure_class == "policy_denied"
    assert rows[4].action == "answer: all done"
    assert (
        rows[1].first_seq == tl.seq_range(1)[0] and tl.type_of(rows[1].first_seq) == "model_request"
    )
    assert tl.row_of(rows[3].last_seq) == 3
    header = tl.header()
    assert (header.agent, header.status, header.steps) == ("test-agent", "completed", 4)
    assert header.events == tl.events
    assert tl.pending() is None


def test_search_failures_and_filters(trace: Path) -> None:
    tl = Timeline(trace)
    found = tl.search("MISSING.MD")  # any case
    assert found is not None and tl.row_of(found) == 3
    assert tl.search("missing.md", after=found) is not None
    assert tl.search("no such text anywhere") is None
    first = tl.next_failure()
    assert first is not None and tl.row_of(first) == 2
    second = tl.next_failure(after=first)
    assert second is not None and tl.row_of(second) >= 2
    assert tl.next_failure(after=second, backward=True) is not None
    assert tl.rows_matching(failure_class="policy_denied") == [2]
    assert tl.rows_matching(failure_class="*") == [2, 3]
    assert tl.rows_matching(types=["tool_call"]) == [1, 2, 3]
    assert "policy_denied" in tl.failure_classes()


def test_following_a_growing_trace(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    w = TraceWriter(path, run_id="r1", clock=FixedClock())
    w.append(ev.RunStarted(agent="a", manifest={}, manifest_hash="0" * 64, input="t"))
    tl = Timeline(path)
    assert (tl.rows, tl.finished, tl.header().status) == (1, False, "running")

    w.append(
        ev.ModelRequest(step=1, model="m", messages_added=[], message_count=2, prompt_hash="0" * 64)
    )
    assert tl.refresh() == 1
    assert tl.rows == 2
    assert tl.pending() == "waiting for the model"
    w.append(
        ev.ModelResponse(
            step=1, model="m", tool_calls=[{"id": "c1", "name": "fs_write", "arguments": "{}"}]
        )
    )
    asked = ev.CallDecision(effect="ask", rule="ask-writes")
    w.append(ev.ToolCall(step=1, call_id="c1", tool="fs_write", arguments={}, decision=asked))
    w.append(ev.ApprovalRequested(step=1, call_id="c1", tool="fs_write", call_hash="0" * 64))
    tl.refresh()
    assert tl.pending() == "awaiting approval: fs_write"
    assert tl.row(1).status == "awaiting_approval"
    w.append(ev.ToolStarted(step=1, call_id="c1", call_hash="0" * 64))
    tl.refresh()
    assert tl.pending() == "awaiting approval: fs_write"  # still undecided in this record
    w.close()


def test_not_a_trace(tmp_path: Path) -> None:
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"type": "step_started", "v": 1}\n')
    with pytest.raises(TraceError, match="does not start with run_started"):
        Timeline(junk)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(TraceError, match="empty"):
        Timeline(empty)
