"""Standing approval rules (``govrun run --approvals FILE``), per-tool ``approval: always``
and the manifest's ``approvals:`` section.

Real files in tmp folders, real runs with the scripted model through ``run_agent``, no mocks:
the fallback approvers are real implementations of the port.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from govrun.runtime.errors import ManifestError
from govrun.runtime.govern.approval_rules import (
    RulesApprover,
    load_approval_rules,
    parse_approval_rules,
)
from govrun.runtime.govern.approvers import DenyApprover
from govrun.runtime.govern.decide import TOOL_APPROVAL_RULE, decide_call
from govrun.runtime.govern.policy import PolicyEngine
from govrun.runtime.govern.toolbox import Toolbox
from govrun.runtime.manifest.schema import Manifest, load_manifest, parse_manifest
from govrun.runtime.ports import ApprovalDecision, ApprovalRequest, FixedClock, ToolCallRequest
from govrun.runtime.run import run_agent
from govrun.runtime.trace import events as ev
from tests.support.agents import (
    TASK,
    answer,
    call,
    calls,
    checked_events,
    executed,
    fs_tools,
    new_trace_path,
    of_type,
    prepare,
    scripted_manifest,
    told,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CI_RULES = FIXTURES / "approvals" / "ci.yaml"
GATED = FIXTURES / "agents" / "gated.yaml"

MODEL = {"provider": "openai", "name": "gpt-4o-mini"}
TOOLS: list[dict[str, Any]] = [
    {"name": "write_file", "uses": "fs.write", "scope": {"roots": ["ws"]}},
    {"name": "delete_file", "uses": "fs.delete", "scope": {"roots": ["ws"]}},
    {"name": "fetch", "uses": "http.get", "scope": {"hosts": ["api.github.com", "example.org"]}},
    {"name": "add", "python": "tests.support.pytools:add"},
]


@pytest.fixture
def agent(tmp_path: Path) -> Manifest:
    """A manifest in tmp_path with fs, http and Python tools; ws/docs and outside/ exist."""
    (tmp_path / "ws" / "docs").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({"name": "rules-test", "model": MODEL, "tools": TOOLS}))
    return load_manifest(path, env={})


def problems(text: str, manifest: Manifest | None = None) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_approval_rules(text, source="rules.yaml", tools=manifest.tools if manifest else None)
    return caught.value.problems


def request(tool: str = "write_file", risk: str = "medium", **arguments: Any) -> ApprovalRequest:
    return ApprovalRequest(
        run_id="r",
        step=1,
        call_id="c1",
        tool=tool,
        arguments=arguments,
        call_hash="0" * 64,
        risk=risk,
        rule="ask-all",
        reason="approval required",
    )


def rules_approver(agent: Manifest, rules: list[dict[str, Any]]) -> RulesApprover:
    text = yaml.safe_dump({"rules": rules}, sort_keys=False)
    parsed = parse_approval_rules(text, source="rules.yaml", tools=agent.tools)
    return RulesApprover(parsed, manifest=agent, fallback=DenyApprover("fallback"))


def rule(decision: str = "approve", **fields: Any) -> dict[str, Any]:
    return {"id": "r", **fields, "decision": decision}


class Recording:
    """A real approver that approves and remembers the requests it was given."""

    def __init__(self) -> None:
        self.requests: list[ApprovalRequest] = []

    def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        self.requests.append(request)
        return ApprovalDecision(decision="approve", approver="recorder", via="auto")


# --- loading -----------------------------------------------------------------------------------


def test_the_ci_fixture_loads_against_the_gated_agent() -> None:
    rules = load_approval_rules(CI_RULES, manifest=load_manifest(GATED, env={}))
    assert [(r.id, r.decision) for r in rules.rules] == [
        ("reports-ok", "approve"),
        ("no-deletes", "reject"),
        ("low-risk-ok", "approve"),
    ]
    assert rules.source == str(CI_RULES)
    assert all(r.reason for r in rules.rules)


RULE = "rules:\n  - id: docs-ok\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"{RULE}    decison: approve\n",
            "rules.yaml:3:5 rules[0].decison: unknown key 'decison'; did you mean 'decision'?",
        ),
        (
            f"{RULE}    tools: [write_file]\n",
            "rules.yaml:2:5 rules[0].decision: required key 'decision' is missing",
        ),
        (
            f"{RULE}    decision: deny\n",
            "rules.yaml:3:5 rules[0].decision: expected one of approve, reject; got 'deny' — did "
            "you mean 'reject'?",
        ),
        (
            f"{RULE}    decision: approve\n    risk: [hgih]\n",
            "rules.yaml:4:12 rules[0].risk[0]: expected one of low, medium, high; got 'hgih' — "
            "did you mean 'high'?",
        ),
        (
            f"{RULE}    decision: approve\n    when: {{path: {{glob: '*.md', insde: [ws]}}}}\n",
            "rules.yaml:4:33 rules[0].when.path.insde: unknown key 'insde'; did you mean 'inside'?",
        ),
        (
            f"{RULE}    decision: approve\n    when: {{path: {{regex: '('}}}}\n",
            "rules.yaml:4:19 rules[0].when.path.regex: expected a valid regular expression; "
            "got '('",
        ),
        (
            f"{RULE}    decision: approve\n    when: {{path: {{}}}}\n",
            "rules.yaml:4:12 rules[0].when.path: expected at least one of glob, regex",
        ),
        (
            f"{RULE}    decision: approve\n  - {{id: docs-ok, decision: reject}}\n",
            "rules.yaml:4:6 rules[1].id: expected a unique id; got 'docs-ok' again (first at "
            "rules[0])",
        ),
        (
            f"{RULE}    decision: approve\n    decision: reject\n",
            "rules.yaml:4:5 rules[0].decision: duplicate key 'decision' (first at line 3:5)",
        ),
        ("rules: []\n", "rules.yaml:1:1 rules: expected at least 1 entry; got 0 entries"),
        (
            "rule:\n  - {id: a, decision: approve}\n",
            "rules.yaml:1:1 rule: unknown key 'rule'; did you mean 'rules'?",
        ),
        ("version: 2\nrules: [{id: a, decision: approve}]\n", "rules.yaml:1:1 version: expected"),
        ("rules:\n  - {id: a, decision: approve\n", "rules.yaml:3:1: YAML syntax error"),
        (
            "- {id: a, decision: approve}\n",
            "rules.yaml:1:1 (top level): expected a mapping of approval rules keys (version, "
            "rules); got a list",
        ),
        ("", "rules.yaml:1:1 (top level): expected a mapping with at least `rules`"),
    ],
)
def test_each_mistake_is_reported_at_its_line_and_column(text: str, expected: str) -> None:
    found = problems(text)
    assert any(p.startswith(expected) for p in found), found


def test_tools_must_name_a_declared_tool_with_a_suggestion(agent: Manifest) -> None:
    text = f"{RULE}    tools: [write_fiel, 'fs.*', nothing*]\n    decision: approve\n"
    assert problems(text, agent) == [
        "rules.yaml:3:13 rules[0].tools[0]: expected a declared tool name or a glob matching "
        "one (write_file, delete_file, fetch, add); got 'write_fiel' — did you mean "
        "'write_file'?",
        "rules.yaml:3:33 rules[0].tools[2]: expected a declared tool name or a glob matching "
        "one (write_file, delete_file, fetch, add); got 'nothing*'",
    ]
    assert parse_approval_rules(text.replace("write_fiel, ", "").replace(", nothing*", ""))


def test_every_problem_is_reported_at_once_with_a_headline_and_hint() -> None:
    text = "rules:\n  - {id: a, decision: deny}\n  - {id: 'bad id', decision: approve}\n"
    with pytest.raises(ManifestError) as caught:
        parse_approval_rules(text, source="ci.yaml")
    error = caught.value
    assert error.message == "ci.yaml is not a valid approval rules file (2 problems)"
    assert [p.split(" ", 1)[0] for p in error.problems] == ["ci.yaml:2:13", "ci.yaml:3:6"]
    assert error.hint and "decision: approve|reject" in error.hint


def test_loading_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"nope\.yaml: no such approval rules file"):
        load_approval_rules(tmp_path / "nope.yaml")
    path = tmp_path / "rules.yaml"
    path.write_text("rules: [{id: a, decision: maybe}]\n")
    with pytest.raises(ManifestError) as caught:
        load_approval_rules(path)
    assert caught.value.problems[0].startswith(f"{path}:1:17 rules[0].decision: expected one of")


# --- matching ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "when", "arguments", "matches"),
    [
        ("write_file", {"path": {"glob": "docs/*.md"}}, {"path": "docs/a.md"}, True),
        ("write_file", {"path": {"glob": "docs/*.md"}}, {"path": "src/a.py"}, False),
        ("write_file", {"path": {"regex": r"^docs/[a-z]+\.md$"}}, {"path": "docs/a.md"}, True),
        ("write_file", {"path": {"regex": r"^docs/[a-z]+\.md$"}}, {"path": "docs/A.md"}, False),
        # folders are manifest-relative; relative paths resolve in the tool's root (ws)
        ("write_file", {"path": {"inside": ["ws/docs"]}}, {"path": "docs/a.md"}, True),
        ("write_file", {"path": {"inside": ["ws/docs"]}}, {"path": "a.md"}, False),
        ("write_file", {"path": {"inside": ["ws/docs"]}}, {"path": "docs/../../outside/a"}, False),
        ("write_file", {"path": {"not_inside": ["ws/docs"]}}, {"path": "a.md"}, True),
        ("write_file", {"path": {"not_inside": ["ws/docs"]}}, {"path": "docs/a.md"}, False),
        ("fetch", {"url": {"host_in": ["api.github.com"]}}, {"url": "https://api.github.com/x"}, 1),
        ("fetch", {"url": {"host_in": ["api.github.com"]}}, {"url": "https://example.org/"}, 0),
        ("add", {"a": {"min": 0, "max": 10}}, {"a": 10}, True),
        ("add", {"a": {"min": 0, "max": 10}}, {"a": 11}, False),
        ("add", {"mode": {"equals": "fast"}}, {"mode": "fast"}, True),
        ("add", {"mode": {"equals": 1}}, {"mode": True}, False),  # JSON equality: true is not 1
        ("add", {"mode": {"one_of": ["fast", "slow"]}}, {"mode": "slow"}, True),
        ("add", {"mode": {"one_of": ["fast", "slow"]}}, {"mode": "other"}, False),
        ("write_file", {"content": {"max_bytes": 10}}, {"content": "short"}, True),
        ("write_file", {"content": {"max_bytes": 10}}, {"content": "x" * 20}, False),
        ("write_file", {"path": {"glob": "*"}}, {"content": "no path argument"}, False),
    ],
)
def test_each_predicate_kind_decides_like_policy(
    agent: Manifest, tool: str, when: dict[str, Any], arguments: dict[str, Any], matches: bool
) -> None:
    risk = "low" if tool == "add" else "medium"
    for decision in ("approve", "reject"):
        approver = rules_approver(agent, [rule(decision, tools=[tool], when=when, reason="why")])
        d = approver.decide(request(tool, risk, **arguments))
        if matches:
            assert (d.decision, d.via, d.approver, d.reason) == (
                decision,
                "rule",
                "rules:rules.yaml#r",
                "why",
            )
        else:
            assert (d.decision, d.via, d.approver) == ("reject", "deny", "fallback")
    # the same predicate in a policy rule gives the same answer: one evaluator for both
    doc = {
        "name": "same",
        "model": MODEL,
        "tools": TOOLS,
        "policy": {"rules": [{"id": "p", "tools": [tool], "effect": "ask", "when": when}]},
    }
    path = agent.base_dir / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert (PolicyEngine(load_manifest(path, env={})).decide(tool, arguments).rule == "p") == bool(
        matches
    )


UNDECIDABLE = [
    ({"path": {"glob": "*.md"}}, {"path": 5}),  # not a string
    ({"path": {"inside": ["ws"]}}, {"path": "a\x00.md"}),  # control character
    ({"path": {"not_inside": ["outside"]}}, {"path": "ｄocs/a.md"}),  # look-alike characters
    ({"url": {"host_in": ["api.github.com"]}}, {"url": "https://api.github.com@evil.com/"}),
    ({"a": {"min": 0}}, {"a": "5"}),  # a number as text
    ({"a": {"max_bytes": 100}}, {"a": 2**70}),  # beyond what JSON encoding takes
]


@pytest.mark.parametrize(("when", "arguments"), UNDECIDABLE)
def test_a_condition_that_cannot_be_evaluated_never_approves(
    agent: Manifest, when: dict[str, Any], arguments: dict[str, Any]
) -> None:
    approve = rules_approver(agent, [rule("approve", when=when, reason="fine")])
    assert approve.decide(request(**arguments)).approver == "fallback"
    reject = rules_approver(agent, [rule("reject", when=when, reason="no")])
    d = reject.decide(request(**arguments))
    assert (d.decision, d.approver) == ("reject", "rules:rules.yaml#r")
    assert d.reason.startswith("no (fail closed: a `when` condition could not be evaluated)")


def test_a_tool_the_manifest_does_not_declare_is_never_approved(agent: Manifest) -> None:
    approve_all = rules_approver(agent, [rule("approve")])
    assert approve_all.decide(request("ghost")).approver == "fallback"
    assert approve_all.decide(request("write_file")).approver == "rules:rules.yaml#r"
    d = rules_approver(agent, [rule("reject", tools=["*"])]).decide(request("ghost"))
    assert (d.decision, d.approver) == ("reject", "rules:rules.yaml#r")


def test_first_matching_rule_decides_by_name_builtin_and_risk(agent: Manifest) -> None:
    approver = rules_approver(
        agent,
        [
            {"id": "high-no", "risk": ["high"], "decision": "reject", "reason": "too risky"},
            {"id": "fs-ok", "tools": ["fs.*"], "decision": "approve"},
            {"id": "never", "tools": ["write_file"], "decision": "reject"},
        ],
    )
    assert approver.decide(request("write_file", "medium")).approver == "rules:rules.yaml#fs-ok"
    d = approver.decide(request("delete_file", "high"))
    assert (d.decision, d.approver, d.reason) == ("reject", "rules:rules.yaml#high-no", "too risky")
    d = approver.decide(request("delete_file", "medium"))
    assert (d.decision, d.reason) == ("approve", "approved by standing rule fs-ok")
    assert approver.decide(request("fetch", "medium")).approver == "fallback"


def test_a_call_no_rule_matches_goes_to_the_fallback_unchanged(agent: Manifest) -> None:
    parsed = parse_approval_rules(
        "rules: [{id: md, when: {path: {glob: '*.md'}}, decision: reject}]"
    )
    fallback = Recording()
    approver = RulesApprover(parsed, manifest=agent, fallback=fallback)
    asked = request(path="a.txt")
    assert approver.decide(asked).approver == "recorder"
    assert fallback.requests == [asked]
    assert approver.decide(request(path="a.md")).decision == "reject"
    assert len(fallback.requests) == 1


# --- in a real run -----------------------------------------------------------------------------

ASK_WRITES = {
    "default": "deny",
    "rules": [{"id": "ask-writes", "tools": ["fs_write"], "effect": "ask"}],
}


def test_rule_decisions_are_recorded_in_a_real_run(tmp_path: Path) -> None:
    m = prepare(
        tmp_path,
        scripted_manifest(tools=fs_tools("write"), policy=ASK_WRITES),
        script=[
            calls(
                call("fs_write", {"path": "docs/a.md", "content": "# A\n"}, id="md"),
                call("fs_write", {"path": "notes.txt", "content": "x"}, id="txt"),
            ),
            answer(),
        ],
    )
    (tmp_path / "rules.yaml").write_text(
        "rules:\n"
        "  - {id: docs-ok, tools: [fs_write], when: {path: {glob: 'docs/*.md'}},"
        " decision: approve, reason: docs changes are pre-approved}\n"
        "  - {id: other-writes, tools: ['fs.*'], decision: reject, reason: a person decides}\n"
    )
    rules = load_approval_rules(tmp_path / "rules.yaml", manifest=m)
    trace = new_trace_path(tmp_path)
    result = run_agent(
        m,
        task=TASK,
        trace_path=trace,
        approver=RulesApprover(rules, manifest=m, fallback=DenyApprover()),
        clock=FixedClock(),
    )
    assert (result.status, result.failure_class) == ("completed", None), result.reason
    events = checked_events(trace)
    source = str(tmp_path / "rules.yaml")
    assert [
        (d.call_id, d.decision, d.via, d.approver, d.reason)
        for d in of_type(events, ev.ApprovalDecided)
    ] == [
        ("md", "approve", "rule", f"rules:{source}#docs-ok", "docs changes are pre-approved"),
        ("txt", "reject", "rule", f"rules:{source}#other-writes", "a person decides"),
    ]
    assert executed(events) == ["md"]
    assert (tmp_path / "ws" / "docs" / "a.md").read_text() == "# A\n"
    assert not (tmp_path / "ws" / "notes.txt").exists()
    assert told(events, "txt") == (
        f"[approval_rejected] rules:{source}#other-writes rejected this call: a person decides"
    )


def test_the_gated_agent_runs_in_ci_under_the_ci_rules(tmp_path: Path) -> None:
    m = load_manifest(GATED, env={})  # it works on a copy of its workspace, next to the trace
    rules = load_approval_rules(CI_RULES, manifest=m)
    trace = tmp_path / "t.jsonl"
    approver = RulesApprover(rules, manifest=m, fallback=DenyApprover())
    result = run_agent(m, trace_path=trace, approver=approver, clock=FixedClock())
    assert (result.status, result.failure_class) == ("completed", None), result.reason
    events = checked_events(trace)
    asked = {e.tool: e.rule for e in of_type(events, ev.ApprovalRequested)}
    assert asked == {"write_file": TOOL_APPROVAL_RULE, "delete_file": "deletes-ask"}
    decided = [(d.tool, d.decision, d.approver) for d in of_type(events, ev.ApprovalDecided)]
    assert decided == [
        ("write_file", "approve", f"rules:{CI_RULES}#reports-ok"),
        ("delete_file", "reject", f"rules:{CI_RULES}#no-deletes"),
    ]
    report = tmp_path / "t.jsonl.workspace" / "quickstart-workspace" / "report.md"
    assert report.read_text().startswith("# Report")


# --- approval: always ----------------------------------------------------------------------------


def gate_manifest(
    tmp_path: Path, *, approval: str = "always", script: list[dict[str, Any]] | None = None
) -> Manifest:
    tools = [{**spec, "approval": approval} for spec in fs_tools("write", "delete")]
    policy = {
        "default": "deny",
        "rules": [
            {
                "id": "no-env",
                "tools": ["fs_write"],
                "when": {"path": {"glob": "*.env"}},
                "effect": "deny",
            },
            {"id": "writes", "tools": ["fs_write"], "effect": "allow"},
            {"id": "deletes", "tools": ["fs_delete"], "effect": "ask", "reason": "careful"},
        ],
    }
    return prepare(
        tmp_path, scripted_manifest(tools=tools, policy=policy), script=script or [answer()]
    )


def verdict(m: Manifest, tool: str, arguments: dict[str, Any]) -> tuple[str, str | None, str]:
    request = ToolCallRequest(id="c", name=tool, arguments=json.dumps(arguments))
    v = decide_call(Toolbox(m), PolicyEngine(m), 1, request)
    return v.effect, v.rule, v.reason


def test_approval_always_sends_allowed_calls_to_the_gate(tmp_path: Path) -> None:
    m = gate_manifest(tmp_path)
    assert verdict(m, "fs_write", {"path": "a.md", "content": "x"}) == (
        "ask",
        TOOL_APPROVAL_RULE,
        "tool fs_write requires approval (approval: always)",
    )
    # an ask stays the policy's ask, with its own rule and reason
    assert verdict(m, "fs_delete", {"path": "a.md"})[:2] == ("ask", "deletes")
    # without approval: always the policy alone decides
    assert verdict(
        gate_manifest(tmp_path / "p", approval="policy"),
        "fs_write",
        {"path": "a.md", "content": "x"},
    )[:2] == ("allow", "writes")


def test_approval_always_never_turns_a_denial_into_a_question(tmp_path: Path) -> None:
    m = gate_manifest(tmp_path)
    assert verdict(m, "fs_write", {"path": "x.env", "content": "x"})[:2] == ("deny", "no-env")
    assert verdict(m, "fs_write", {"path": "../out.md", "content": "x"})[:2] == ("deny", "scope")
    assert verdict(m, "fs_write", {"path": 3})[0] == "deny"  # invalid arguments


def test_approval_always_in_a_real_run(tmp_path: Path) -> None:
    script = [
        calls(
            call("fs_write", {"path": "a.md", "content": "x"}, id="ok"),
            call("fs_write", {"path": "b.env", "content": "x"}, id="env"),
        ),
        answer(),
    ]
    m = gate_manifest(tmp_path, script=script)
    approver = Recording()
    trace = new_trace_path(tmp_path)
    run_agent(m, task=TASK, trace_path=trace, approver=approver, clock=FixedClock())
    events = checked_events(trace)
    assert [(r.call_id, r.rule) for r in approver.requests] == [("ok", TOOL_APPROVAL_RULE)]
    decisions = {
        c.call_id: (c.decision.effect, c.decision.rule) for c in of_type(events, ev.ToolCall)
    }
    assert decisions == {"ok": ("ask", TOOL_APPROVAL_RULE), "env": ("deny", "no-env")}
    assert [e.call_id for e in of_type(events, ev.ApprovalRequested)] == ["ok"]
    assert executed(events) == ["ok"]


# --- the manifest's approvals: section -----------------------------------------------------------

BASE = "name: x\nmodel: {provider: openai, name: m}\n"


def manifest_problems(text: str) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(BASE + text, source="agent.yaml", env={})
    return caught.value.problems


def test_approvals_section_loads_with_defaults_and_shorthand() -> None:
    m = parse_manifest(BASE, env={})
    assert (m.approvals.identity, m.approvals.timeout_s) == (None, None)
    assert m.approvals.on_timeout.model_dump() == dict.fromkeys(("low", "medium", "high"), "reject")
    text = "approvals:\n  identity: alice\n  timeout_s: 120\n  on_timeout: approve\n"
    m = parse_manifest(BASE + text, env={})
    assert (m.approvals.identity, m.approvals.timeout_s) == ("alice", 120)
    assert m.approvals.on_timeout.model_dump() == dict.fromkeys(
        ("low", "medium", "high"), "approve"
    )
    realistic = load_manifest(FIXTURES / "agents" / "realistic.yaml", env={})
    assert realistic.approvals.on_timeout.model_dump() == {
        "low": "approve",
        "medium": "reject",
        "high": "reject",
    }
    assert "approvals" in realistic.canonical_dict()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "approvals:\n  timeout_s: 60\n  on_timeout: {low: allow}\n",
            "agent.yaml:5:16 approvals.on_timeout.low: expected one of approve, reject; got "
            "'allow' — did you mean 'approve'?",
        ),
        (
            "approvals:\n  timeout_s: 60\n  on_timeout: {low: approve, hihg: reject}\n",
            "agent.yaml:5:30 approvals.on_timeout.hihg: unknown key 'hihg'; did you mean 'high'?",
        ),
        (
            "approvals:\n  timeout_s: 60\n  on_timeout: deny\n",
            "agent.yaml:5:3 approvals.on_timeout: expected one of approve, reject; got 'deny' — "
            "did you mean 'reject'?",
        ),
        (
            "approvals:\n  timeout_s: 60\n  on_timeout: later\n",
            "agent.yaml:5:3 approvals.on_timeout: expected one of approve, reject; got 'later' "
            "(or a mapping of risk level -> approve/reject)",
        ),
        (
            "approvals:\n  on_timeout: {high: reject}\n",
            "agent.yaml:4:3 approvals.on_timeout: expected `timeout_s` with `on_timeout`",
        ),
        (
            "approvals:\n  timeout_s: 0\n",
            "agent.yaml:4:3 approvals.timeout_s: expected a number greater than 0; got 0",
        ),
        (
            "approvals:\n  identiy: alice\n",
            "agent.yaml:4:3 approvals.identiy: unknown key 'identiy'; did you mean 'identity'?",
        ),
        (
            "approvals:\n  identity: ''\n",
            "agent.yaml:4:3 approvals.identity: expected at least 1 character; got ''",
        ),
        (
            "tools:\n  - {name: w, uses: fs.write, scope: {roots: [ws]}, approval: ask}\n",
            "agent.yaml:4:53 tools[0].approval: expected one of policy, always; got 'ask'",
        ),
    ],
)
def test_approvals_section_mistakes(text: str, expected: str) -> None:
    found = manifest_problems(text)
    assert any(p.startswith(expected) for p in found), found
