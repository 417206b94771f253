"""Event types: every one round-trips through JSON and the union; the union is strict about
tags and required fields but ignores unknown fields; the JSON Schema accepts real lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from pydantic import ValidationError

from govrun.runtime.trace.events import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    FAILURE_CLASSES,
    SCHEMA_1_TYPES,
    SCHEMA_MAJOR,
    Event,
    ToolFinished,
    events_json_schema,
    parse_event,
)
from govrun.runtime.trace.reader import TraceReader
from tests.support.traces import write_run

H = "ab" * 32
"""A well-formed SHA-256 hex digest."""

ENVELOPE = {"v": 2, "seq": 7, "ts": "2026-09-21T14:13:20.250000Z", "run_id": "run-0001"}
ENVELOPE |= {"step": 2, "prev": "cd" * 32, "hash": "ef" * 32}

PAYLOADS: dict[str, dict[str, Any]] = {
    "run_started": {
        "agent": "notes-agent",
        "manifest": {"name": "notes-agent", "tools": [{"name": "fs.read"}]},
        "manifest_hash": H,
        "manifest_path": "agents/notes.yaml",
        "input": "Summarise the notes.",
        "parent": {"trace": "runs/a.jsonl", "run_id": "run-0000", "step": 3},
    },
    "step_started": {},
    "model_request": {
        "model": "gpt-4o-mini",
        "messages_added": [{"role": "user", "content": "hi"}],
        "message_count": 3,
        "prompt_hash": H,
        "attempt": 2,
    },
    "model_response": {
        "model": "gpt-4o-mini",
        "tool_calls": [{"id": "call_1", "name": "fs.read", "arguments": '{"path": "a"}'}],
        "finish_reason": "tool_calls",
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        "cost_usd": 0.0001,
        "duration_ms": 321.5,
    },
    "tool_call_proposed": {
        "call_id": "call_1",
        "tool": "fs.read",
        "arguments": {"path": "a"},
        "call_hash": H,
    },
    "reply_refused": {
        "kind": "text_tool_call",
        "reason": "Your reply wrote a tool call as text (read_file); it was not run.",
        "finish_reason": "stop",
        "in_a_row": 1,
        "limit": 3,
        "detected": {"format": "json", "calls": [{"name": "read_file", "arguments": "{}"}]},
        "failure_class": "model_error",
    },
    "text_tool_calls": {
        "format": "hermes",
        "calls": [{"id": "text_1_0", "name": "read_file", "arguments": '{"path":"a.md"}'}],
    },
    "tool_call": {
        "call_id": "call_1",
        "tool": "shell.run",
        "arguments": {"command": "curl -s example.com"},
        "canonical": {"argv": ["curl", "-s", "example.com"], "paths": []},
        "call_hash": H,
        "decision": {
            "effect": "deny",
            "rule": "no-network",
            "reason": "no network",
            "risk": "high",
            "failure_class": "policy_denied",
        },
    },
    "policy_decision": {
        "call_id": "call_1",
        "tool": "shell.run",
        "effect": "deny",
        "rule": "no-network",
        "reason": "no network",
        "risk": "high",
        "failure_class": "policy_denied",
    },
    "approval_requested": {
        "call_id": "call_1",
        "tool": "fs.write",
        "call_hash": H,
        "risk": "medium",
        "rule": "ask-writes",
        "timeout_s": 30.0,
    },
    "approval_decided": {
        "call_id": "call_1",
        "tool": "fs.write",
        "call_hash": H,
        "decision": "approve",
        "approver": "alice",
        "via": "prompt",
        "decided_at": "2026-09-21T14:13:21.000000Z",
        "key_fingerprint": "SHA256:abc",
        "signature": "c2ln",
    },
    "tool_started": {
        "call_id": "call_1",
        "tool": "fs.write",
        "arguments": {"path": "a", "content": "x"},
        "call_hash": H,
    },
    "tool_finished": {
        "call_id": "call_1",
        "tool": "fs.write",
        "ok": False,
        "output": "permission denied",
        "error": "EACCES",
        "failure_class": "tool_error",
        "evidence": {"path": "a", "sha256": H},
    },
    "verification": {
        "call_id": "call_1",
        "check": "file_exists",
        "check_id": "summary-written",
        "passed": False,
        "evidence": {"path": "a"},
        "failure_class": "missing_evidence",
    },
    "interrupt": {
        "kind": "budget",
        "rule": "max_steps",
        "action": "stop",
        "failure_class": "budget_exceeded",
        "detail": {"limit": 20, "observed": 21},
    },
    "route": {"model": "big", "previous": "small", "reason": "rule: hard-steps"},
    "compaction": {
        "strategy": "summarize",
        "tokens_before": 9000,
        "tokens_after": 1200,
        "messages_removed": 14,
        "summary": "Earlier: read .env.",
    },
    "rollback": {"call_id": "call_1", "target": "notes/a.md", "ok": True},
    "approval_note": {
        "call_id": "call_1",
        "kind": "refused",
        "detail": "a decision from elsewhere was not applied: its signature does not verify",
        "by": "mallory",
    },
    "mcp_server": {
        "server": "time",
        "transport": "stdio",
        "tools": [
            {
                "name": "now",
                "tool": "get_current_time",
                "sha256": "ab" * 32,
                "definition": {"name": "get_current_time", "inputSchema": {"type": "object"}},
            }
        ],
        "offered": {"get_current_time": "ab" * 32},
        "lock": "unpinned",
    },
    "step_finished": {"outcome": "continue", "tokens": 15, "cost_usd": 0.0001},
    "run_finished": {
        "status": "failed",
        "failure_class": "budget_exceeded",
        "reason": "max_steps reached",
        "steps": 20,
        "event_count": 8,
        "head": "cd" * 32,
        "totals": {"model_calls": 20, "tool_calls": 19},
    },
}


def _line(type_: str) -> dict[str, Any]:
    """A sample line; the types only schema 1 wrote are marked as schema 1's."""
    v = 1 if type_ in SCHEMA_1_TYPES else 2
    return {**ENVELOPE, "v": v, "type": type_, **PAYLOADS[type_]}


def test_every_event_type_has_a_sample() -> None:
    assert set(PAYLOADS) == set(EVENT_TYPES)
    assert len(EVENT_TYPES) == 22  # schema 2's 19 and the 3 only schema-1 traces hold


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_round_trip_through_json_and_the_union(type_: str) -> None:
    cls = EVENT_TYPES[type_]
    event = cls(**{k: v for k, v in _line(type_).items() if k != "type"})
    assert event.type == type_

    raw = orjson.dumps(event.model_dump(mode="json"))
    again = parse_event(orjson.loads(raw))
    assert type(again) is cls
    assert again == event
    assert EVENT_ADAPTER.validate_json(raw) == event
    # Every payload field given in the sample survives with its value.
    dumped = again.model_dump(mode="json")
    assert {k: dumped[k] for k in _line(type_)} == _line(type_)


@pytest.mark.parametrize("type_", ["", "tool_exploded", "Run_Started"])
def test_unknown_type_tag_is_rejected(type_: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_event({**_line("step_started"), "type": type_})
    assert info.value.errors()[0]["type"] == "union_tag_invalid"


def test_missing_type_tag_is_rejected() -> None:
    data = _line("step_started")
    del data["type"]
    with pytest.raises(ValidationError):
        parse_event(data)


@pytest.mark.parametrize(
    ("type_", "field"),
    [("tool_finished", "ok"), ("run_finished", "head"), ("model_request", "prompt_hash")],
)
def test_missing_required_field_is_rejected(type_: str, field: str) -> None:
    data = _line(type_)
    del data[field]
    with pytest.raises(ValidationError) as info:
        parse_event(data)
    assert info.value.errors()[0]["loc"][-1] == field


def test_invalid_literal_is_rejected() -> None:
    with pytest.raises(ValidationError):
        parse_event({**_line("policy_decision"), "effect": "maybe"})
    with pytest.raises(ValidationError):
        parse_event({**_line("tool_finished"), "failure_class": "gremlins"})


def test_unknown_fields_are_ignored() -> None:
    """A newer minor version may add fields; this reader drops them."""
    data = {**_line("tool_finished"), "sandbox": {"id": 3}, "cpu_ms": 12.5}
    event = parse_event(data)
    assert isinstance(event, ToolFinished)
    assert "sandbox" not in event.model_dump()
    assert not hasattr(event, "cpu_ms")


def test_events_are_frozen() -> None:
    event = parse_event(_line("step_finished"))
    with pytest.raises(ValidationError):
        event.step = 3  # type: ignore[misc]


def test_envelope_defaults_are_what_the_writer_fills_in() -> None:
    event = EVENT_TYPES["step_started"](step=1)
    assert (event.v, event.seq, event.run_id, event.prev, event.hash) == (
        SCHEMA_MAJOR,
        -1,
        "",
        "",
        "",
    )
    assert isinstance(event, Event)
    assert "trace_error" in FAILURE_CLASSES


def test_json_schema_validates_real_event_lines(tmp_path: Path) -> None:
    schema = events_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for schema, decided in ((2, "tool_call"), (1, "policy_decision")):
        path = tmp_path / f"run-{schema}.jsonl"
        write_run(path, steps=4, schema=schema)
        lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
        assert {d["type"] for d in lines} >= {"run_started", decided, "run_finished"}
        for data in lines:
            validator.validate(data)
    for type_ in EVENT_TYPES:
        validator.validate(_line(type_))
    # each major holds its own types: a schema-2 step_started or a schema-1 tool_call is not
    assert not validator.is_valid({**_line("step_started"), "v": 2})
    assert not validator.is_valid({**_line("tool_call"), "v": 1})
    assert not validator.is_valid({**_line("reply_refused"), "v": 1})
    assert not validator.is_valid({**_line("text_tool_calls"), "v": 1})


def test_json_schema_rejects_bad_lines() -> None:
    validator = jsonschema.Draft202012Validator(events_json_schema())
    assert not validator.is_valid({**_line("step_started"), "type": "nope"})
    bad = _line("tool_finished")
    del bad["ok"]
    assert not validator.is_valid(bad)
    assert not validator.is_valid({**_line("policy_decision"), "effect": "maybe"})


def test_json_schema_validates_resolved_blob_events(tmp_path: Path) -> None:
    """Lines with sidecar references validate once the reader has resolved them."""
    validator = jsonschema.Draft202012Validator(events_json_schema())
    path = tmp_path / "run.jsonl"
    write_run(path, big_output_at=3)
    for event in TraceReader(path):
        validator.validate(event.model_dump(mode="json"))
