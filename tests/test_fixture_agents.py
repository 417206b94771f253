"""The example agents in fixtures/agents run as documented: the offline quickstart, the
OpenAI-compatible example against a real HTTP server on 127.0.0.1 through the openai client,
and the realistic agent offline, with its scripted model."""

from __future__ import annotations

from pathlib import Path

import yaml

from govrun.runtime.manifest.schema import load_manifest
from govrun.runtime.run import run_agent
from govrun.runtime.trace import events as ev
from govrun.runtime.trace.reader import read_trace
from govrun.runtime.trace.verify import verify_trace
from tests.support.cli import govrun
from tests.support.fake_openai import FakeOpenAI

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TEMPLATE = FIXTURES / "agents" / "quickstart-workspace"
"""Both agents' `workspace:` template: each run works on a copy next to its trace, so the
fixtures run where they are."""


def _types(events: list[ev.Event], step: int) -> list[str]:
    return [e.type for e in events if e.step == step]


def test_quickstart_shows_allow_deny_verification_and_budgets(tmp_path: Path) -> None:
    manifest = load_manifest(FIXTURES / "agents" / "quickstart.yaml")
    result = run_agent(manifest, trace_path=tmp_path / "q.jsonl")
    assert (result.status, result.failure_class) == ("completed", None)
    assert verify_trace(tmp_path / "q.jsonl").ok
    events, _ = read_trace(tmp_path / "q.jsonl")
    decided = [e for e in events if isinstance(e, ev.ToolCall)]
    assert [(c.tool, c.decision.effect, c.decision.rule) for c in decided] == [
        ("list_files", "allow", "reads"),
        ("read_file", "allow", "reads"),
        ("read_file", "deny", "no-dotenv"),
        ("write_file", "deny", "scope"),
        ("write_file", "allow", "markdown-writes"),
        ("count_lines", "allow", "reads"),
    ]
    assert not (tmp_path / "escaped.md").exists() and not (tmp_path.parent / "escaped.md").exists()
    checks = [(v.check, v.check_id, v.passed) for v in events if isinstance(v, ev.Verification)]
    assert ("file_sha256", "default", True) in checks  # fs.write's default evidence
    assert ("file_contains", "has-title", True) in checks
    assert ("file_exists", None, True) in checks and ("final_answer_matches", None, True) in checks
    assert result.workspace == str(tmp_path / "q.jsonl.workspace")
    report = tmp_path / "q.jsonl.workspace" / "quickstart-workspace" / "report.md"
    assert report.read_text().startswith("# Report")
    assert not (TEMPLATE / "report.md").exists()
    assert result.counters.steps <= manifest.budgets.max_steps


def test_local_openai_example_runs_against_an_openai_compatible_server(tmp_path: Path) -> None:
    with FakeOpenAI(models=("qwen2.5:7b",)) as server:
        server.reply(tool_calls=[{"name": "read_file", "arguments": {"path": "notes.md"}}])
        server.reply(
            tool_calls=[
                {
                    "name": "write_file",
                    "arguments": {
                        "path": "report.md",
                        "content": "# Report\n\n- Ship the verifier on Friday.\n",
                    },
                }
            ]
        )
        server.reply(content="The report is in report.md.")
        manifest = load_manifest(
            FIXTURES / "agents" / "local-openai.yaml", env={"OPENAI_BASE_URL": server.base_url}
        )
        result = run_agent(
            manifest, trace_path=tmp_path / "o.jsonl", env={"OPENAI_BASE_URL": server.base_url}
        )
        sent = server.requests
    assert (result.status, result.failure_class) == ("completed", None), result.reason
    assert verify_trace(tmp_path / "o.jsonl").ok
    assert [r.json["model"] for r in sent] == ["qwen2.5:7b"] * 3
    assert sent[0].json["temperature"] == 0
    assert [t["function"]["name"] for t in sent[0].json["tools"]] == [
        "list_files",
        "read_file",
        "write_file",
    ]
    events, _ = read_trace(tmp_path / "o.jsonl")
    assert _types(events, 1) == [
        "model_request",
        "model_response",
        "tool_call",
        "tool_started",
        "tool_finished",
        "step_finished",
    ]
    assert events[-1].type == "run_finished"
    assert (tmp_path / "o.jsonl.workspace" / "quickstart-workspace" / "report.md").is_file()
    assert not (TEMPLATE / "report.md").exists()


REALISTIC = FIXTURES / "agents" / "realistic.yaml"
OFFLINE = FIXTURES / "agents" / "realistic-offline.yaml"
TRIAGE_RULES = FIXTURES / "approvals" / "triage.yaml"


def test_realistic_offline_is_the_realistic_agent_with_a_scripted_model() -> None:
    """One agent, two models: every section but `model:` is the same in both files."""
    reference, offline = (yaml.safe_load(p.read_text()) for p in (REALISTIC, OFFLINE))
    assert reference.pop("model")["provider"] == "openai"
    assert offline.pop("model")["provider"] == "scripted"
    assert offline == reference


def test_realistic_offline_runs_offline_and_calls_every_tool(tmp_path: Path) -> None:
    before = {p: p.read_bytes() for p in (FIXTURES / "agents" / "triage").rglob("*") if p.is_file()}
    trace = tmp_path / "triage.jsonl"
    ran = govrun("run", OFFLINE, "-o", trace, "--approvals", TRIAGE_RULES)
    assert ran.code == 0, ran.flat
    assert verify_trace(trace).ok
    events, _ = read_trace(trace)
    m = load_manifest(OFFLINE)
    calls = [e for e in events if isinstance(e, ev.ToolCall)]
    assert {c.tool for c in calls} == {tool.name for tool in m.tools}
    decided = {(c.tool, c.decision.effect, c.decision.rule) for c in calls}
    assert {
        ("read_file", "deny", "no-secrets"),
        ("http_get", "deny", None),  # by default: the network is never reached
        ("git", "deny", "scope"),
        ("delete_file", "ask", "ask-before-high-risk"),
        ("write_file", "ask", "tool-approval"),  # allowed, then approval: always
    } <= decided
    approvals = {(a.tool, a.decision) for a in events if isinstance(a, ev.ApprovalDecided)}
    assert approvals == {("delete_file", "reject"), ("git", "approve"), ("write_file", "approve")}
    started = {e.call_id for e in events if isinstance(e, ev.ToolStarted)}
    assert not any(c.tool == "http_get" and c.call_id in started for c in calls)
    copy = tmp_path / "triage.jsonl.workspace" / "triage"
    assert (copy / "workspace" / "report.md").read_text().startswith("# Triage")
    assert (copy / "workspace" / "old-report.md").is_file()  # the delete was rejected
    after = {p: p.read_bytes() for p in (FIXTURES / "agents" / "triage").rglob("*") if p.is_file()}
    assert after == before


def test_mcp_time_example_runs_a_pinned_pypi_server_offline(tmp_path: Path) -> None:
    """fixtures/agents/mcp-time.yaml as the README runs it: mcp-server-time (the dev extra)
    found on PATH, its tools as pinned in mcp-time.mcp.lock, the conversion approved by
    fixtures/approvals/mcp-time.yaml."""
    trace = tmp_path / "mcp.jsonl"
    ran = govrun(
        "run",
        FIXTURES / "agents" / "mcp-time.yaml",
        "-o",
        trace,
        "--approvals",
        FIXTURES / "approvals" / "mcp-time.yaml",
    )
    assert ran.code == 0, ran.flat
    assert "not pinned" not in ran.flat
    events, _ = read_trace(trace)
    (server,) = [e for e in events if isinstance(e, ev.McpServer)]
    assert (server.lock, server.lock_file) == ("pinned", "mcp-time.mcp.lock")
    decided = [
        (c.tool, c.decision.effect, c.decision.rule) for c in events if isinstance(c, ev.ToolCall)
    ]
    assert decided == [
        ("now", "allow", "known-zones"),
        ("now", "deny", None),
        ("convert", "ask", "tool-approval"),
    ]
    outputs = [e.output for e in events if isinstance(e, ev.ToolFinished)]
    assert '"timezone": "Asia/Tokyo"' in outputs[0] and '"Europe/Paris"' in outputs[1]
    assert verify_trace(trace).ok
    assert govrun("replay", trace, "-o", tmp_path / "replayed.jsonl").code == 0
