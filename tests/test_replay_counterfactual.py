"""Counterfactual replay: which recorded decisions a new manifest would change.

A corpus of real runs — reads, writes inside and outside the workspace and a scratch
folder, ``.env`` reads, shell commands allowed and denied, approvals decided by an
automatic approver, standing rules, a person or nobody, budget and anomaly stops, failed
checks, several calls in one step, plain answers — is recorded under one manifest, then
replayed under a new one that denies writes outside ``tmp/`` (and no longer denies writes
into it), asks before ``ls`` and halves the tool call budget. Every trace must report
exactly the changes written next to its scenario, and nothing else.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from govrun.runtime.govern.approval_rules import RulesApprover, parse_approval_rules
from govrun.runtime.govern.approvers import AutoApprover, DenyApprover
from govrun.runtime.manifest.schema import Manifest, load_manifest
from govrun.runtime.ports import ApprovalDecision, ApprovalRequest, Approver
from govrun.runtime.replayer.session import ReplayOutcome, replay
from govrun.runtime.trace.canonical import blob_dir
from govrun.runtime.trace.reader import read_stored
from govrun.runtime.trace.record import Record
from tests.support.agents import (
    MANIFEST,
    SCRIPT,
    WORKSPACE,
    answer,
    call,
    calls,
    fs_tools,
    prepare,
    run_in,
    scripted_manifest,
    shell_tool,
)
from tests.support.cli import Ran, invoke

# --- the manifests -----------------------------------------------------------------------------

RULES: dict[str, dict[str, Any]] = {
    "env-secrets": {
        "id": "env-secrets",
        "tools": ["fs_read"],
        "when": {"path": {"regex": r"(^|/)\.env$"}},
        "effect": "deny",
    },
    "reads": {"id": "reads", "tools": ["fs_list", "fs_read"], "effect": "allow"},
    "ask-config": {
        "id": "ask-config",
        "tools": ["fs_write"],
        "when": {"path": {"glob": "config/*"}},
        "effect": "ask",
    },
    "no-tmp": {
        "id": "no-tmp",
        "tools": ["fs_write"],
        "when": {"path": {"glob": "tmp/*"}},
        "effect": "deny",
    },
    "writes": {"id": "writes", "tools": ["fs_write"], "effect": "allow"},
    "shell": {"id": "shell", "tools": ["sh", "say"], "effect": "allow"},
    # only in the new manifest
    "no-writes-outside-tmp": {
        "id": "no-writes-outside-tmp",
        "tools": ["fs_write"],
        "when": {"path": {"not_inside": [f"{WORKSPACE}/tmp"]}},
        "effect": "deny",
    },
    "ask-ls": {
        "id": "ask-ls",
        "tools": ["sh"],
        "when": {"command": {"glob": "ls*"}},
        "effect": "ask",
    },
}
RECORDED = scripted_manifest(
    tools=[
        *fs_tools("list", "read", "write"),
        shell_tool({"echo": {}, "ls": {}}),
        shell_tool(
            {"echo": {}},
            name="say",
            verify=[{"id": "says-ok", "check": "output_matches", "pattern": "^ok"}],
        ),
    ],
    policy={
        "default": "deny",
        "rules": [
            RULES[r] for r in ("env-secrets", "reads", "ask-config", "no-tmp", "writes", "shell")
        ],
    },
    budgets={"max_steps": 8, "max_tool_calls": 8},
    interrupts={"repeat_call": {"max_repeats": 3}},
)
"""The manifest every scenario ran under."""

NEW = copy.deepcopy(RECORDED)
NEW["policy"]["rules"] = [
    RULES[r]
    for r in (
        "env-secrets",
        "reads",
        "ask-config",
        "no-writes-outside-tmp",
        "writes",
        "ask-ls",
        "shell",
    )
]
NEW["budgets"]["max_tool_calls"] = 4
"""The change under review: writes only into tmp/ (no longer denied there), ask before
`ls`, half the tool calls."""

FILES = {
    "notes.md": "# notes\n",
    ".env": "TOKEN=abc\n",
    "config/app.toml": "debug = false\n",
    "a.md": "a\n",
    "b.md": "b\n",
}
STANDING = """\
rules:
  - {id: config-ok, tools: [fs_write], when: {path: {glob: "config/*"}}, decision: approve}
"""

# --- scenarios ---------------------------------------------------------------------------------


def read(path: str, **kw: Any) -> dict[str, Any]:
    """One fs_read call for a script (so are write, sh and ls)."""
    return call("fs_read", {"path": path}, **kw)


def write(path: str, content: str = "x", **kw: Any) -> dict[str, Any]:
    return call("fs_write", {"path": path, "content": content}, **kw)


def sh(command: str, *, tool: str = "sh", **kw: Any) -> dict[str, Any]:
    return call(tool, {"command": command}, **kw)


def ls(path: str = ".", **kw: Any) -> dict[str, Any]:
    return call("fs_list", {"path": path}, **kw)


CONFIG = [calls(write("config/app.toml", "debug = true\n", id="c1")), answer()]
WRITE_DENIED = "allowed by rule writes → denied by rule no-writes-outside-tmp"


class Person:
    """A person at the approval prompt who approves after looking."""

    def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        return ApprovalDecision(
            decision="approve", approver="alice", via="prompt", reason="checked the diff"
        )


def _standing_rules(folder: Path) -> Approver:
    """Approves config writes by a standing rule; anything else would be rejected."""
    m = prepare(folder, RECORDED, script=CONFIG, files=FILES)
    rules = parse_approval_rules(STANDING, source="ci-rules.yaml", tools=m.tools)
    return RulesApprover(rules, manifest=m, fallback=DenyApprover("deny (ci)"))


@dataclass(frozen=True)
class Scenario:
    """A scripted run, who approves in it, and the changes the new manifest must report."""

    script: list[dict[str, Any]]
    changes: list[str] = field(default_factory=list)
    approver: Callable[[Path], Approver] | None = None
    status: str = "completed"
    """How the recorded run ended."""


SCENARIOS: dict[str, Scenario] = {
    "answer-only": Scenario([answer("nothing to do")]),
    "read-notes": Scenario([calls(read("notes.md", id="c1")), answer()]),
    "list-then-read": Scenario([calls(ls(id="c1")), calls(read("notes.md", id="c2")), answer()]),
    "read-missing": Scenario([calls(read("missing.md", id="c1")), answer()]),
    "read-env": Scenario([calls(read(".env", id="c1")), answer()]),
    "write-report": Scenario(
        [calls(write("report.md", "# report", id="c1")), answer()],
        [f"step 1 fs_write: {WRITE_DENIED}"],
    ),
    "read-then-write": Scenario(
        [calls(read("notes.md", id="c1")), calls(write("summary.md", id="c2")), answer()],
        [f"step 2 fs_write: {WRITE_DENIED}"],
    ),
    "write-tmp": Scenario(
        [calls(write("tmp/scratch.md", "draft", id="c1")), answer()],
        [
            "step 1 fs_write: denied by rule no-tmp → allowed by rule writes, not run",
            "run: completed after 2 steps → failed after 1 step (divergence)",
        ],
    ),
    "write-outside-root": Scenario([calls(write("../escape.txt", id="c1")), answer()]),
    "echo": Scenario([calls(sh("echo hello", id="c1")), answer()]),
    "ls": Scenario(
        [calls(sh("ls", id="c1")), answer()],
        [
            "step 1 sh: allowed by rule shell → asked by rule ask-ls, rejected by replay "
            "(no recorded decision)"
        ],
    ),
    "rm-denied": Scenario([calls(sh("rm -rf notes.md", id="c1")), answer()]),
    "check-passes": Scenario([calls(sh("echo ok", tool="say", id="c1")), answer()]),
    "check-fails": Scenario([calls(sh("echo nope", tool="say", id="c1")), answer()]),
    "config-auto": Scenario(CONFIG, approver=lambda _: AutoApprover("auto (ci)")),
    "config-rules": Scenario(CONFIG, approver=_standing_rules),
    "config-person": Scenario(CONFIG, approver=lambda _: Person()),
    "config-rejected": Scenario(CONFIG, approver=lambda _: DenyApprover("deny (ci)")),
    "multi-call": Scenario(
        [
            calls(read("notes.md", id="c1"), write("out.md", "o", id="c2"), sh("echo hi", id="c3")),
            answer(),
        ],
        [f"step 1 fs_write: {WRITE_DENIED}"],
    ),
    "busy": Scenario(
        [
            calls(ls(".", id="c1")),
            calls(read("notes.md", id="c2")),
            calls(ls("config", id="c3")),
            calls(read("config/app.toml", id="c4")),
            calls(read("a.md", id="c5")),
            calls(read("b.md", id="c6")),
            answer(),
        ],
        [
            "step 5 fs_read: allowed by rule reads → allowed by rule reads, not run",
            "step 5 interrupt: budget max_tool_calls → stop → fires",
            "step 6 fs_read: allowed by rule reads → not reached",
            "run: completed after 7 steps → stopped after 5 steps (budget_exceeded)",
        ],
    ),
    "step-budget": Scenario(
        [calls(read(f"d{i}/.env", id=f"c{i}")) for i in range(1, 11)], status="stopped"
    ),
    "repeat": Scenario(
        [calls(read("notes.md", id=f"c{i}")) for i in range(1, 4)], status="stopped"
    ),
    "invalid-arguments": Scenario([calls(call("fs_write", {"path": "a.md"}, id="c1")), answer()]),
    "unknown-tool": Scenario([calls(call("rm_rf", {"path": "."}, id="c1")), answer()]),
}


# --- the corpus --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """Recorded traces by scenario (all in one folder), and the new manifest."""

    traces: dict[str, Path]
    new: Path
    recorded: Path
    """A copy of the manifest the runs recorded, outside any run folder."""

    @property
    def folder(self) -> Path:
        return next(iter(self.traces.values())).parent


def write_manifest(folder: Path, data: dict[str, Any]) -> Path:
    """``data`` as ``folder/agent.yaml``, with an (unused) script and an empty workspace."""
    (folder / WORKSPACE).mkdir(parents=True, exist_ok=True)
    (folder / SCRIPT).write_text("[]\n", encoding="utf-8")
    path = folder / MANIFEST
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    root = tmp_path_factory.mktemp("corpus")
    traces = root / "traces"
    traces.mkdir()
    found: dict[str, Path] = {}
    with pytest.MonkeyPatch.context() as mp:  # never sign with the developer's real key
        mp.setenv("GOVRUN_HOME", str(tmp_path_factory.mktemp("home")))
        for name, s in SCENARIOS.items():
            folder = root / "runs" / name
            approver = s.approver(folder) if s.approver else None
            result, _ = run_in(folder, RECORDED, script=s.script, files=FILES, approver=approver)
            assert result.status == s.status, (name, result.reason)
            # the record is the trace and its sidecar (rollback pre-images are verified too)
            assert b'"$blob"' not in Path(result.trace_path).read_bytes()
            found[name] = traces / f"{name}.jsonl"
            shutil.copyfile(result.trace_path, found[name])
            if blob_dir(result.trace_path).is_dir():
                shutil.copytree(blob_dir(result.trace_path), blob_dir(found[name]))
    yield Corpus(
        found,
        new=write_manifest(root / "new", NEW),
        recorded=write_manifest(root / "same", RECORDED),
    )


def counterfactual(trace: Path, out: Path, manifest: Path | Manifest, **kw: Any) -> ReplayOutcome:
    """Replay ``trace`` under ``manifest`` (a path or loaded), decisions re-evaluated."""
    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    return replay(Record.load(trace), out, manifest=m, **kw)


def replayed(outcome: ReplayOutcome, kind: str) -> list[dict[str, Any]]:
    """The replay's stored events of one type."""
    return [e for e in read_stored(outcome.result.trace_path)[0] if e["type"] == kind]


def test_the_corpus_is_varied(corpus: Corpus) -> None:
    assert len(corpus.traces) >= 20
    events = [e for t in corpus.traces.values() for e in read_stored(t)[0]]
    ends = {(e["status"], e["failure_class"]) for e in events if e["type"] == "run_finished"}
    assert ends == {("completed", None), ("stopped", "budget_exceeded"), ("stopped", "anomaly")}
    decided = {(e["decision"], e["via"]) for e in events if e["type"] == "approval_decided"}
    assert decided == {
        ("approve", "auto"),
        ("approve", "rule"),
        ("approve", "prompt"),
        ("reject", "deny"),
    }
    denied = {
        e["decision"].get("rule") or e["decision"]["failure_class"]
        for e in events
        if e["type"] == "tool_call" and e["decision"]["effect"] == "deny"
    }
    assert denied == {"env-secrets", "no-tmp", "scope", "invalid_arguments", "unknown_tool"}
    failed_checks = {
        e["check_id"] for e in events if e["type"] == "verification" and not e["passed"]
    }
    assert failed_checks == {"says-ok"}
    assert any(len(e["tool_calls"] or []) == 3 for e in events if e["type"] == "model_response")
    failed_tools = {e["tool"] for e in events if e["type"] == "tool_finished" and not e["ok"]}
    assert failed_tools == {"fs_read"}  # missing.md


@pytest.mark.parametrize("name", SCENARIOS)
def test_each_trace_reports_exactly_the_changes_of_the_new_manifest(
    corpus: Corpus, tmp_path: Path, name: str
) -> None:
    outcome = counterfactual(corpus.traces[name], tmp_path / "r.jsonl", corpus.new)

    assert outcome.mode == "counterfactual" and outcome.divergence is None
    assert [c.describe() for c in outcome.changes()] == SCENARIOS[name].changes
    if not SCENARIOS[name].changes:
        assert outcome.session.ended_for is None
        assert outcome.result.status == SCENARIOS[name].status


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_recorded_manifest_changes_nothing(corpus: Corpus, tmp_path: Path, name: str) -> None:
    outcome = counterfactual(corpus.traces[name], tmp_path / "r.jsonl", corpus.recorded)

    assert outcome.changes() == [] and outcome.session.ended_for is None
    assert outcome.result.steps == Record.load(corpus.traces[name]).steps()


# --- each kind of change -----------------------------------------------------------------------


def test_allow_to_deny_names_the_new_rule_and_runs_nothing(corpus: Corpus, tmp_path: Path) -> None:
    outcome = counterfactual(corpus.traces["multi-call"], tmp_path / "r.jsonl", corpus.new)

    [change] = outcome.changes()
    assert (change.step, change.what, change.call_id) == (1, "fs_write", "c2")
    assert change.after == "denied by rule no-writes-outside-tmp"
    decisions = {
        e["call_id"]: (e["decision"]["effect"], e["decision"]["rule"])
        for e in replayed(outcome, "tool_call")
    }
    assert decisions == {
        "c1": ("allow", "reads"),
        "c2": ("deny", "no-writes-outside-tmp"),
        "c3": ("allow", "shell"),
    }
    assert [e["call_id"] for e in replayed(outcome, "tool_started")] == ["c1", "c3"]
    assert outcome.result.status == "completed"


def test_deny_to_allow_of_a_call_never_run_stops_the_replay(corpus: Corpus, tmp_path: Path) -> None:
    outcome = counterfactual(corpus.traces["write-tmp"], tmp_path / "r.jsonl", corpus.new)

    assert outcome.session.ended_for == (
        "step 1 fs_write would run now, but the recorded run denied it (no-tmp), so the record "
        "has no outcome for it (run it for real with --live-tools)"
    )
    assert outcome.session.live_calls == []
    assert (outcome.result.status, outcome.result.failure_class) == ("failed", "divergence")
    assert replayed(outcome, "tool_finished") == []
    assert replayed(outcome, "tool_started") == []  # no side effect is claimed to begin
    assert not (corpus.new.parent / WORKSPACE / "tmp").exists()


def test_deny_to_allow_with_live_tools_runs_the_call_for_real(
    corpus: Corpus, tmp_path: Path
) -> None:
    """The new manifest next to a copy of the trace: the write lands in its workspace, and
    the write's own check looks at the file it made."""
    trace = tmp_path / "write-tmp.jsonl"
    shutil.copyfile(corpus.traces["write-tmp"], trace)
    if blob_dir(corpus.traces["write-tmp"]).is_dir():
        shutil.copytree(blob_dir(corpus.traces["write-tmp"]), blob_dir(trace))
    manifest = write_manifest(tmp_path, NEW)

    outcome = counterfactual(trace, tmp_path / "r.jsonl", manifest, live_tools=True)

    assert (tmp_path / WORKSPACE / "tmp" / "scratch.md").read_text() == "draft"
    assert outcome.session.live_calls == ["step 1 fs_write"]
    assert outcome.session.ended_for is None
    assert [c.describe() for c in outcome.changes()] == [
        "step 1 fs_write: denied by rule no-tmp → allowed by rule writes"
    ]
    [finished] = replayed(outcome, "tool_finished")
    assert finished["ok"] is True
    [check] = replayed(outcome, "verification")
    assert (check["check_id"], check["passed"], check["evidence"]["path"]) == (
        "default",
        True,
        "tmp/scratch.md",
    )
    assert outcome.result.status == "completed"


def test_allow_to_ask_with_no_recorded_decision_is_rejected(corpus: Corpus, tmp_path: Path) -> None:
    outcome = counterfactual(corpus.traces["ls"], tmp_path / "r.jsonl", corpus.new)

    [decided] = replayed(outcome, "approval_decided")
    assert (decided["decision"], decided["approver"], decided["via"]) == (
        "reject",
        "replay (no recorded decision)",
        "replay",
    )
    assert "nobody decided this call in the recorded run" in decided["reason"]
    assert replayed(outcome, "tool_started") == []
    [request] = replayed(outcome, "model_request")[1:]
    [told] = [m for m in request["messages_added"] if m["role"] == "tool"]
    assert told["content"].startswith("[approval_rejected] replay (no recorded decision)")


def test_allow_to_ask_decided_by_standing_rules(corpus: Corpus, tmp_path: Path) -> None:
    """With approval rules the replay decides the new question itself; the call then runs
    with its recorded outcome."""
    m = load_manifest(corpus.new)
    text = 'rules: [{id: ls-ok, tools: [sh], when: {command: {glob: "ls*"}}, decision: approve}]'
    rules = parse_approval_rules(text, source="ls-rules.yaml", tools=m.tools)

    outcome = counterfactual(corpus.traces["ls"], tmp_path / "r.jsonl", m, rules=rules)

    assert [c.describe() for c in outcome.changes()] == [
        "step 1 sh: allowed by rule shell → asked by rule ask-ls, approved by "
        "rules:ls-rules.yaml#ls-ok"
    ]
    [finished] = replayed(outcome, "tool_finished")
    recorded = [e for e in read_stored(corpus.traces["ls"])[0] if e["type"] == "tool_finished"]
    assert finished["output"] == recorded[0]["output"]


def test_a_lower_budget_trips_earlier(corpus: Corpus, tmp_path: Path) -> None:
    outcome = counterfactual(corpus.traces["busy"], tmp_path / "r.jsonl", corpus.new)

    whats = [(c.step, c.what) for c in outcome.changes()]
    assert (5, "interrupt") in whats and (0, "run") in whats
    [interrupt] = replayed(outcome, "interrupt")
    assert (interrupt["step"], interrupt["rule"], interrupt["detail"]) == (
        5,
        "max_tool_calls",
        {"limit": 4, "used": 4},
    )
    assert (outcome.result.status, outcome.result.failure_class) == ("stopped", "budget_exceeded")
    assert len(replayed(outcome, "tool_finished")) == 4


def test_a_recorded_person_s_approval_is_reused_for_the_same_call(
    corpus: Corpus, tmp_path: Path
) -> None:
    outcome = counterfactual(corpus.traces["config-person"], tmp_path / "r.jsonl", corpus.new)

    assert outcome.changes() == []
    [decided] = replayed(outcome, "approval_decided")
    assert (decided["decision"], decided["approver"], decided["via"], decided["reason"]) == (
        "approve",
        "alice",
        "replay",
        "checked the diff",
    )
    [proposed] = replayed(outcome, "tool_call")
    assert decided["call_hash"] == proposed["call_hash"]
    [finished] = replayed(outcome, "tool_finished")
    assert finished["ok"] is True


# --- the CLI over the folder --------------------------------------------------------------------


def replay_folder(folder: Path, *args: object) -> Ran:
    ran = invoke("replay", *sorted(folder.glob("*.jsonl")), *args)
    ran.assert_clean()
    return ran


def table_rows(ran: Ran) -> dict[str, list[str]]:
    """Summary table rows by trace file name: the cells after the name."""
    rows: dict[str, list[str]] = {}
    for line in ran.out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 6 and cells[0].endswith(".jsonl"):
            rows[cells[0]] = cells[1:]
    return rows


def test_cli_over_the_folder_tables_every_trace(corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "out"

    ran = replay_folder(corpus.folder, "--manifest", corpus.new, "-o", out)

    assert ran.code == 1
    rows = table_rows(ran)
    assert set(rows) == {f"{name}.jsonl" for name in SCENARIOS}
    for name, s in SCENARIOS.items():
        verdict, first = rows[f"{name}.jsonl"][3:]
        assert verdict == ("changed" if s.changes else "same"), name
        assert first == (s.changes[0] if s.changes else ""), name
    changed = sum(bool(s.changes) for s in SCENARIOS.values())
    summary = f"{len(SCENARIOS)} traces: {len(SCENARIOS) - changed} unchanged, {changed} changed"
    assert ran.out.rstrip().endswith(summary)
    for s in SCENARIOS.values():
        for text in s.changes:
            assert text in ran.flat
    assert len(list(out.glob("*.jsonl"))) == len(SCENARIOS)


def test_cli_json_lists_the_changes_of_every_trace(corpus: Corpus, tmp_path: Path) -> None:
    ran = replay_folder(corpus.folder, "--manifest", corpus.new, "-o", tmp_path, "--json")

    assert ran.code == 1
    doc = orjson.loads(ran.out)
    by_name = {Path(d["trace"]).stem: d for d in doc}
    assert set(by_name) == set(SCENARIOS)
    for name, s in SCENARIOS.items():
        d = by_name[name]
        assert d["mode"] == "counterfactual"
        assert [c["text"] for c in d["changes"]] == s.changes, name
    assert "--live-tools" in by_name["write-tmp"]["ended_for"]
    assert by_name["ls"]["changes"][0]["call_id"] == "c1"


def test_cli_with_an_unchanged_manifest_exits_0(corpus: Corpus, tmp_path: Path) -> None:
    ran = replay_folder(corpus.folder, "--manifest", corpus.recorded, "-o", tmp_path)

    assert ran.code == 0, ran.out
    assert set(v[3] for v in table_rows(ran).values()) == {"same"}
    assert f"{len(SCENARIOS)} traces: {len(SCENARIOS)} unchanged, 0 changed" in ran.out


def test_cli_reports_a_file_that_is_not_a_trace_as_unreadable(
    corpus: Corpus, tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    shutil.copytree(corpus.folder, folder)
    junk = folder / "notes.jsonl"
    junk.write_text("these are my notes, not a trace\n", encoding="utf-8")

    ran = replay_folder(folder, "--manifest", corpus.new, "-o", tmp_path / "out")

    assert ran.code == 2
    assert "│ unreadable │" in ran.out
    assert len(table_rows(ran)) == len(SCENARIOS)  # every real trace still has its row
    changed = sum(bool(s.changes) for s in SCENARIOS.values())
    assert ran.out.rstrip().endswith(
        f"{len(SCENARIOS) + 1} traces: {len(SCENARIOS) - changed} unchanged, {changed} changed, "
        "1 unreadable"
    )
    ran = replay_folder(folder, "--manifest", corpus.new, "-o", tmp_path / "json", "--json")
    assert ran.code == 2
    [error] = [d["error"] for d in orjson.loads(ran.out) if "error" in d]
    assert error.startswith(f"{junk} is not a govrun trace: it begins with")
    assert error.count(str(junk)) == 1
