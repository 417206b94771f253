"""OpenTelemetry export through the real SDK pipeline: span tree, names and attributes of a
governed run, deterministic ids, schema-1 and -2 traces, crashed traces, forks, content."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from govrun.runtime.manifest.telemetry import Otlp, Telemetry
from govrun.runtime.ports import FixedClock
from govrun.runtime.replayer.session import replay
from govrun.runtime.run import run_agent
from govrun.runtime.trace.record import Record
from govrun.runtime.views.telemetry.export import export_traces, trace_spans
from govrun.runtime.views.telemetry.ids import span_id, trace_id
from govrun.runtime.views.telemetry.live import LiveExport
from tests.support.agents import TASK, prepare
from tests.support.governed import (
    FILES,
    SCRIPT,
    SECRET_ENV,
    WritesYesDeletesNo,
    governed_manifest,
    run_governed,
)

REPO = Path(__file__).resolve().parent.parent
COMPAT = REPO / "fixtures" / "traces" / "compat"


def exported(*paths: Path, content: bool = False) -> list[ReadableSpan]:
    """The spans the real SDK exporter interface receives for ``paths``."""
    memory = InMemorySpanExporter()
    said: list[str] = []
    results = export_traces(
        list(paths), memory, where="memory", say=said.append, content=content, env=os.environ
    )
    assert said == [] and all(r.lost == 0 and r.sent == r.spans for r in results)
    return list(memory.get_finished_spans())


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_governed(tmp_path_factory.mktemp("governed"))


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def test_a_governed_run_is_one_trace_of_genai_spans(governed: Path) -> None:
    spans = exported(governed)
    root = one(by_name(spans, "invoke_agent governed"))
    run_id = Record.load(governed).run_id
    assert root.parent is None and root.context is not None
    assert (root.context.trace_id, root.context.span_id) == (trace_id(run_id), span_id(run_id, 0))
    assert {s.context.trace_id for s in spans if s.context} == {trace_id(run_id)}
    assert all(
        s.parent is not None and s.parent.span_id == root.context.span_id
        for s in spans
        if s is not root
    )
    names = sorted(s.name for s in spans)
    assert names == sorted(
        ["invoke_agent governed"]
        + ["chat scripted"] * 4
        + ["execute_tool fs_read"] * 3
        + ["execute_tool fs_write", "execute_tool fs_delete"]
    )
    assert root.kind is SpanKind.INTERNAL
    attrs = dict(root.attributes or {})
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs["gen_ai.agent.name"] == "governed"
    assert attrs["gen_ai.provider.name"] == "govrun.scripted"
    assert attrs["govrun.run.status"] == "stopped"
    assert attrs["govrun.failure_class"] == "budget_exceeded"
    assert attrs["govrun.trace.path"] == str(governed)
    last = orjson.loads(governed.read_bytes().splitlines()[-1])
    assert attrs["govrun.trace.head"] == last["hash"]  # what `verify --head` takes
    assert attrs["govrun.trace.event_count"] == last["event_count"]
    assert attrs["gen_ai.usage.input_tokens"] == last["totals"]["prompt_tokens"]
    assert root.status.status_code is StatusCode.ERROR
    assert root.status.description is not None
    assert root.status.description.startswith("budget_exceeded")
    assert attrs["error.type"] == "budget_exceeded"
    (interrupt,) = [e for e in root.events if e.name == "govrun.interrupt"]
    assert dict(interrupt.attributes or {}) == {
        "govrun.interrupt.kind": "budget",
        "govrun.interrupt.rule": "max_steps",
        "govrun.interrupt.action": "stop",
        "govrun.interrupt.reason": dict(interrupt.attributes or {})["govrun.interrupt.reason"],
        "govrun.failure_class": "budget_exceeded",
        "govrun.step": 4,
    }


def test_allowed_and_denied_calls(governed: Path) -> None:
    reads = by_name(exported(governed), "execute_tool fs_read")
    allowed, denied, secret = sorted(reads, key=lambda s: s.start_time or 0)
    a = dict(allowed.attributes or {})
    assert a["gen_ai.operation.name"] == "execute_tool"
    assert a["gen_ai.tool.name"] == "fs_read"
    assert a["gen_ai.tool.call.id"] == "call_0_0"
    assert a["govrun.policy.effect"] == "allow"
    assert a["govrun.policy.rule"] == "reads"
    assert a["govrun.tool.executed"] is True and a["govrun.tool.ok"] is True
    assert len(str(a["govrun.evidence.sha256"])) == 64  # the proof of what was read
    assert allowed.status.status_code is StatusCode.UNSET
    assert "gen_ai.tool.call.arguments" not in a  # no content without asking
    d = dict(denied.attributes or {})
    assert (d["govrun.policy.effect"], d["govrun.policy.rule"]) == ("deny", "no-dotenv")
    assert d["govrun.tool.executed"] is False
    assert d["error.type"] == "policy_denied"
    assert denied.status.status_code is StatusCode.ERROR
    assert denied.status.description == "denied by rule no-dotenv: .env files hold secrets"
    assert denied.start_time == denied.end_time  # ends at its decision
    assert secret.status.status_code is StatusCode.UNSET


def test_approved_call_with_a_failed_check_and_rejected_call(governed: Path) -> None:
    spans = exported(governed)
    write = one(by_name(spans, "execute_tool fs_write"))
    w = dict(write.attributes or {})
    assert w["govrun.policy.effect"] == "ask" and w["govrun.policy.rule"] == "writes-ask"
    assert w["govrun.approval.decision"] == "approve"
    assert (w["govrun.approval.via"], w["govrun.approval.approver"]) == ("prompt", "alice")
    assert w["govrun.approval.signed"] is True
    assert str(w["govrun.approval.key_fingerprint"]).startswith("sha256:")
    assert w["govrun.tool.executed"] is True
    events = [e.name for e in write.events]
    assert events == [
        "govrun.approval.requested",
        "govrun.approval.decided",
        "govrun.tool.started",
        "govrun.verification",
        "govrun.verification",
    ]
    failed = dict(write.events[-1].attributes or {})
    assert failed["govrun.check.id"] == "has-title" and failed["govrun.check.passed"] is False
    assert failed["govrun.failure_class"] == "verification_failed"
    assert len(str(failed["govrun.check.evidence.sha256"])) == 64
    assert write.status.status_code is StatusCode.ERROR
    assert w["error.type"] == "verification_failed"
    assert w["govrun.verification.failed"] == 1
    delete = one(by_name(spans, "execute_tool fs_delete"))
    r = dict(delete.attributes or {})
    assert (r["govrun.approval.decision"], r["govrun.approval.reason"]) == (
        "reject",
        "keep the notes",
    )
    assert r["govrun.tool.executed"] is False and r["error.type"] == "approval_rejected"
    assert delete.status.status_code is StatusCode.ERROR
    assert delete.status.description == "reject by alice: keep the notes"


def test_a_retried_model_call_is_one_chat_span(governed: Path) -> None:
    chats = sorted(by_name(exported(governed), "chat scripted"), key=lambda s: s.start_time or 0)
    retried = chats[1]
    attrs = dict(retried.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == "scripted"
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert attrs["govrun.attempts"] == 2 and attrs["govrun.step"] == 2
    assert isinstance(attrs["gen_ai.usage.input_tokens"], int)
    assert isinstance(attrs["gen_ai.usage.output_tokens"], int)
    assert "govrun.cost_usd" in attrs
    (attempt,) = retried.events
    assert attempt.name == "govrun.model.attempt_failed"
    assert dict(attempt.attributes or {})["govrun.error"] == "rate limited"
    assert dict(attempt.attributes or {})["govrun.retryable"] is True
    assert retried.status.status_code is StatusCode.UNSET  # the retry answered
    assert all(dict(c.attributes or {})["govrun.attempts"] == 1 for c in chats if c is not retried)


def test_exporting_twice_gives_the_same_spans(governed: Path) -> None:
    first, second = exported(governed), exported(governed)
    assert [s.to_json() for s in first] == [s.to_json() for s in second]
    assert len({s.context.span_id for s in first if s.context}) == len(first)


def test_live_export_gives_the_spans_an_export_of_its_trace_gives(tmp_path: Path) -> None:
    """The observer and `govrun export otel` share one mapping: live spans are the spans of
    the finished trace, ids and times included."""
    m = prepare(tmp_path, governed_manifest(), script=SCRIPT, files=FILES, env=SECRET_ENV)
    memory = InMemorySpanExporter()
    trace = tmp_path / "live.jsonl"
    live = LiveExport(
        Telemetry(otlp=Otlp(endpoint="http://127.0.0.1:9")),
        trace_path=trace,
        env={},
        exporter=memory,
    )
    run_agent(
        m,
        task=TASK,
        trace_path=trace,
        approver=WritesYesDeletesNo(),
        clock=FixedClock(),
        env=SECRET_ENV,
        observers=[live],
    )
    live.close()
    after = {s.name + str(s.start_time): s.to_json() for s in exported(trace)}
    during = {s.name + str(s.start_time): s.to_json() for s in memory.get_finished_spans()}
    assert during == after and len(during) == 10


@pytest.mark.parametrize("twin", ["quickstart", "gated-approvals", "canonical-python-rollback"])
def test_schema_1_and_2_traces_of_one_run_give_the_same_spans(twin: str) -> None:
    def shape(path: Path) -> list[tuple[Any, ...]]:
        skip = {
            "govrun.run_id",
            "gen_ai.conversation.id",
            "govrun.trace.path",
            "govrun.trace.head",
            "govrun.trace.event_count",
            "govrun.trace.schema",
            "govrun.seal.key_fingerprint",
            "govrun.approval.key_fingerprint",
            "govrun.approval.decided_at",
            "govrun.version",
            "govrun.tool.duration_ms",
            "govrun.host",
            "govrun.user",
            "govrun.manifest_path",
        }
        return sorted(
            (
                s.name,
                s.status.status_code.name,
                tuple(
                    sorted((k, str(v)) for k, v in (s.attributes or {}).items() if k not in skip)
                ),
                tuple(e.name for e in s.events),
            )
            for s in exported(path)
        )

    old = COMPAT / f"v1.2-{twin}.jsonl"
    assert Record.load(old).major == 1
    assert shape(old) == shape(COMPAT / f"v2-{twin}.jsonl")


def test_every_compat_trace_exports() -> None:
    for path in sorted(COMPAT.glob("*.jsonl")):
        spans = exported(path)
        roots = [s for s in spans if s.parent is None]
        assert len(roots) == 1 and roots[0].name.startswith("invoke_agent "), path
    gated = exported(COMPAT / "v1-gated-approvals.jsonl")  # 0.1.0, schema 1.1
    rejected = one(by_name(gated, "execute_tool delete_file"))
    assert dict(rejected.attributes or {})["govrun.approval.via"] == "rule"
    assert rejected.status.status_code is StatusCode.ERROR


def test_a_schema_1_trace_keeps_its_own_seqs_in_span_ids() -> None:
    path = COMPAT / "v1.2-quickstart.jsonl"
    record = Record.load(path)
    proposals = [
        orjson.loads(line)
        for line in path.read_bytes().splitlines()
        if b'"tool_call_proposed"' in line
    ]
    ids = {s.span_id for s in trace_spans(path)}
    assert all(span_id(record.run_id, p["seq"]) in ids for p in proposals)


def test_a_crashed_trace_ends_its_open_spans() -> None:
    spans = exported(REPO / "fixtures" / "traces" / "unfinished.jsonl")
    root = one([s for s in spans if s.parent is None])
    assert dict(root.attributes or {})["govrun.run.status"] == "unfinished"
    assert root.status.status_code is StatusCode.ERROR
    in_flight = [s for s in spans if "running" in (s.status.description or "")]
    assert len(in_flight) == 1
    assert dict(in_flight[0].attributes or {})["govrun.tool.executed"] is True


def test_a_fork_links_to_its_parent_run(governed: Path, tmp_path: Path) -> None:
    parent = Record.load(governed)
    outcome = replay(parent, tmp_path / "replayed.jsonl")
    assert outcome.identical
    spans = exported(tmp_path / "replayed.jsonl")
    root = one([s for s in spans if s.parent is None])
    (link,) = root.links
    assert (link.context.trace_id, link.context.span_id) == (
        trace_id(parent.run_id),
        span_id(parent.run_id, 0),
    )
    attrs = dict(link.attributes or {})
    assert attrs["govrun.parent.run_id"] == parent.run_id
    assert attrs["govrun.parent.kind"] == "replay-strict"
    assert dict(root.attributes or {})["govrun.parent.trace"] == str(governed)


def test_content_only_when_asked_and_redacted_as_the_trace_is(governed: Path) -> None:
    plain = orjson.dumps([s.to_json() for s in exported(governed)])
    for key in (b"input.messages", b"output.messages", b"call.arguments", b"call.result"):
        assert key not in plain
    spans = exported(governed, content=True)
    text = orjson.dumps([s.to_json() for s in spans])
    assert SECRET_ENV["NOTES_TOKEN"].encode() not in text and b"[redacted]" in text
    write = one(by_name(spans, "execute_tool fs_write"))
    arguments = orjson.loads(str(dict(write.attributes or {})["gen_ai.tool.call.arguments"]))
    assert arguments == {"content": "no title here\n", "path": "report.md"}
    chat = sorted(by_name(spans, "chat scripted"), key=lambda s: s.start_time or 0)[0]
    messages = orjson.loads(str(dict(chat.attributes or {})["gen_ai.input.messages"]))
    assert messages[0]["role"] == "system"
    output = orjson.loads(str(dict(chat.attributes or {})["gen_ai.output.messages"]))
    assert [p["type"] for p in output[0]["parts"]] == ["tool_call", "tool_call"]


def one(items: list[ReadableSpan]) -> ReadableSpan:
    assert len(items) == 1, [s.name for s in items]
    return items[0]


def test_the_telemetry_section_is_checked_and_never_recorded(tmp_path: Path) -> None:
    from govrun.runtime.errors import ManifestError
    from govrun.runtime.manifest.schema import manifest_json_schema

    watched = {"otlp": {"endpoint": "http://127.0.0.1:4318", "headers": {"k": "${KEY}"}}}
    plain = prepare(tmp_path / "a", governed_manifest(), script=SCRIPT)
    m = prepare(
        tmp_path / "b", governed_manifest(telemetry=watched), script=SCRIPT, env={"KEY": "v"}
    )
    assert m.telemetry is not None and m.telemetry.otlp.headers == {"k": "v"}
    assert m.telemetry.otlp.timeout_s == 10 and m.telemetry.capture_content is False
    assert "telemetry" not in m.canonical_dict()
    assert m.canonical_dict() == plain.canonical_dict()  # the same manifest hash
    assert "telemetry" in manifest_json_schema()["properties"]
    for bad, says in (
        ({"otlp": {"endpont": "http://x"}}, "telemetry.otlp.endpont: unknown key"),
        (
            {"otlp": {"endpoint": "localhost:4318"}},
            "telemetry.otlp.endpoint: expected an http(s) URL",
        ),
        ({"otlp": {"protocol": "http/json"}}, "telemetry.otlp.protocol"),
        ({"otlp": {"timeout_s": 0}}, "telemetry.otlp.timeout_s"),
        ({}, "telemetry.otlp"),
    ):
        with pytest.raises(ManifestError) as caught:
            prepare(tmp_path / "c", governed_manifest(telemetry=bad), script=SCRIPT)
        assert any(says in p for p in caught.value.problems), caught.value.problems
