"""`govrun run` and `govrun policy explain` through the real typer app (CliRunner: no
terminal, so no live view and no prompts), with offline scripted models. Two approval tests
need what CliRunner cannot give: real pipes left open, and a pseudo-terminal. Every run
writes into tmp_path, never into the repository: the fixture agents run where they are,
each on its own copy of its `workspace:` template, next to its trace.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest

from govrun.runtime import __version__
from govrun.runtime.trace.events import parse_event
from tests.support.cli import Ran, govrun, invoke

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "fixtures" / "agents" / "quickstart.yaml"
MINIMAL = REPO / "fixtures" / "agents" / "minimal.yaml"
FIXTURES = REPO / "fixtures"

HEAD_LINE = re.compile(r"^head ([0-9a-f]{64})$", re.MULTILINE)


def events_of(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` (.pyc caches aside), each with its sha256: a
    listing that changes when a run adds, removes or edits anything."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "/"
        for p in sorted(folder.rglob("*"))
        if "__pycache__" not in p.parts
    }


def write_agent(folder: Path, manifest: str, script: str) -> Path:
    """A scripted agent: ``agent.yaml`` and ``script.yaml`` in ``folder``, workspace ``ws``."""
    (folder / "ws").mkdir(parents=True, exist_ok=True)
    (folder / "script.yaml").write_text(script)
    path = folder / "agent.yaml"
    path.write_text(manifest)
    return path


# --- a whole run ------------------------------------------------------------------------------


def test_run_quickstart(tmp_path: Path) -> None:
    before = fingerprint(FIXTURES)
    trace = tmp_path / "trace.jsonl"

    ran = govrun("run", QUICKSTART, "-o", trace)

    assert ran.code == 0, ran.flat
    assert "status COMPLETED" in ran.flat
    assert "steps 5 (5 model calls, 4 tool calls, 2 denied)" in ran.flat
    budgets = re.search(r"│ budgets +(.*?) *│", ran.out)
    assert budgets, ran.out
    assert re.fullmatch(
        r"steps 5/8, tool calls 4/10, tokens [\d,]+/20,000, cost \$[\d.]+/\$0\.0500, "
        r"write_file 1/2",
        budgets.group(1),
    ), budgets.group(1)
    assert f"trace {trace}" in ran.flat
    events = events_of(trace)
    printed = HEAD_LINE.findall(ran.out)
    assert printed == [events[-1]["hash"]]
    assert f"govrun verify {trace} --head {printed[0]}" in ran.flat
    assert events[-1]["type"] == "run_finished"
    assert events[-1]["status"] == "completed"
    # the run wrote into its copy of the workspace, next to the trace, never into fixtures/
    assert f"workspace {trace}.workspace/" in ran.flat
    report = tmp_path / "trace.jsonl.workspace" / "quickstart-workspace" / "report.md"
    assert report.read_text().startswith("# Report")
    assert fingerprint(FIXTURES) == before
    assert not (tmp_path / "escaped.md").exists()  # the out-of-scope write was denied
    # without a terminal the progress is plain lines on stderr; the summary on stdout
    assert "agent quickstart" in ran.err
    assert "read_file → deny (no-dotenv" in ran.err
    assert "status" not in ran.err

    verify = govrun("verify", trace, "--head", printed[0])
    assert verify.code == 0, verify.flat
    assert "matches the head given" in verify.flat


def test_a_bug_during_a_run_is_said_in_one_paragraph_with_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Something govrun did not foresee: no traceback on the terminal, the trace records it
    and verifies, the summary gives its head, and the traceback is in a crash report."""
    from govrun.runtime.loop import GovernedLoop

    def broken(self: GovernedLoop, *args: Any) -> None:
        raise ZeroDivisionError("a bug in a step")

    monkeypatch.setattr(GovernedLoop, "_govern", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where crash reports go
    monkeypatch.delenv("GOVRUN_DEBUG", raising=False)
    trace = tmp_path / "trace.jsonl"

    ran = invoke("run", QUICKSTART, "-o", trace)

    assert ran.code == 1
    assert ran.exception is None or isinstance(ran.exception, SystemExit)
    assert "Traceback" not in ran.out + ran.err
    assert "govrun failed unexpectedly: ZeroDivisionError: a bug in a step" in ran.flat
    assert "The trace records the failure (internal_error)." in ran.flat
    reports = list(tmp_path.glob("govrun-crash-*.txt"))
    assert len(reports) == 1 and f"The details are in {reports[0]}" in ran.flat
    assert "ZeroDivisionError: a bug in a step" in reports[0].read_text()
    assert "Traceback" in reports[0].read_text()
    events = events_of(trace)
    assert events[-1]["failure_class"] == "internal_error"
    assert HEAD_LINE.findall(ran.out) == [events[-1]["hash"]]
    assert govrun("verify", trace).code == 0


def test_two_quickstart_runs_in_a_row_are_the_same_run(tmp_path: Path) -> None:
    """The README's first command, twice, as a person types it (a real process, default
    trace path, no input): each run starts from its own fresh copy of the workspace, so
    `govrun diff` calls the two runs the same, and fixtures/ is left exactly as it was."""
    before = fingerprint(FIXTURES)
    entry = "from govrun.cli.main import main; main()"
    for _ in range(2):
        ran = subprocess.run(
            [sys.executable, "-c", entry, "run", str(QUICKSTART)],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
    first, second = sorted((tmp_path / "runs").glob("quickstart-*.jsonl"))

    diff = govrun("diff", first, second)

    assert diff.code == 0, diff.flat
    assert "✓ same: 5 steps match step for step" in diff.flat
    assert fingerprint(FIXTURES) == before
    for trace in (first, second):
        copy = trace.with_name(trace.name + ".workspace") / "quickstart-workspace"
        assert sorted(p.name for p in copy.iterdir()) == [
            ".env",
            ".gitignore",
            "notes.md",
            "report.md",
        ]


def test_run_json_streams_every_event(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    ran = govrun("run", QUICKSTART, "-o", trace, "--json")
    assert ran.code == 0, ran.flat
    lines = ran.out.splitlines()
    streamed = [parse_event(orjson.loads(line)) for line in lines]  # only JSON on stdout
    recorded = events_of(trace)
    assert len(streamed) == len(recorded)
    assert [(e.seq, e.type, e.hash) for e in streamed] == [
        (r["seq"], r["type"], r["hash"]) for r in recorded
    ]
    assert streamed[0].type == "run_started" and streamed[-1].type == "run_finished"
    # the summary goes to stderr
    assert "COMPLETED" in ran.err
    assert HEAD_LINE.findall(ran.err) == [recorded[-1]["hash"]]
    assert "COMPLETED" not in ran.out


FAILING = """\
name: failing
input: Say done.
model: {provider: scripted, script: script.yaml}
success:
  - {check: file_exists, id: wrote-it, path: ws/missing.txt}
"""


def test_run_that_fails_its_success_check(tmp_path: Path) -> None:
    manifest = write_agent(tmp_path, FAILING, "- content: done\n")
    trace = tmp_path / "trace.jsonl"
    ran = govrun("run", manifest, "-o", trace)
    assert ran.code == 1, ran.flat
    assert "status FAILED" in ran.flat
    assert "success check wrote-it failed" in ran.flat
    finished = events_of(trace)[-1]
    assert (finished["type"], finished["status"]) == ("run_finished", "failed")
    assert finished["failure_class"] in ran.flat
    assert govrun("verify", trace).code == 0  # a failed run still leaves an intact record


# --- bad input: exit 2, clear message, no trace -----------------------------------------------


def test_run_bad_manifest(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    bad = REPO / "fixtures/agents/invalid/unknown_top_level_key.yaml"
    ran = govrun("run", bad, "-o", trace)
    assert ran.code == 2, ran.flat
    assert "is not a valid govrun manifest" in ran.flat
    assert "• " in ran.err and "toolz: unknown key 'toolz'; did you mean 'tools'?" in ran.flat
    assert not trace.exists()


def test_run_missing_manifest(tmp_path: Path) -> None:
    ran = govrun("run", tmp_path / "nope.yaml", "-o", tmp_path / "trace.jsonl")
    assert ran.code == 2
    assert ": no such manifest" in ran.flat


def test_run_without_a_task(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    ran = govrun("run", MINIMAL, "-o", trace)  # minimal.yaml has no `input:`
    assert ran.code == 2, ran.flat
    assert "no task for the agent" in ran.flat
    assert "-i/--input" in ran.flat
    assert not trace.exists()


def test_run_task_from_the_command_line(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    ran = govrun("run", MINIMAL, "-i", "Say done.", "-o", trace)
    assert ran.code == 0, ran.flat
    assert events_of(trace)[0]["input"] == "Say done."


def test_run_task_from_a_file(tmp_path: Path) -> None:
    task = tmp_path / "task.md"
    task.write_text("Say done.\nThen stop.\n")
    trace = tmp_path / "trace.jsonl"
    ran = govrun("run", MINIMAL, "-i", f"@{task}", "-o", trace)
    assert ran.code == 0, ran.flat
    assert events_of(trace)[0]["input"] == "Say done.\nThen stop.\n"


def test_run_task_from_a_missing_file(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    ran = govrun("run", MINIMAL, "-i", f"@{tmp_path / 'missing.md'}", "-o", trace)
    assert ran.code == 2, ran.flat
    assert f"{tmp_path / 'missing.md'}: no such task file" in ran.flat
    assert not trace.exists()


def test_run_never_overwrites_a_trace(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text("precious\n")
    ran = govrun("run", MINIMAL, "-i", "Say done.", "-o", trace)
    assert ran.code == 2, ran.flat
    assert "already exists; govrun never overwrites a trace" in ran.flat
    assert trace.read_text() == "precious\n"


def test_an_empty_trace_left_by_a_crash_is_refused_with_what_to_do(tmp_path: Path) -> None:
    """govrun never leaves an empty trace itself, but a run killed before its first event
    (or an older govrun) can: never overwritten, and the message says it holds nothing."""
    trace = tmp_path / "trace.jsonl"
    trace.touch()
    ran = govrun("run", MINIMAL, "-i", "Say done.", "-o", trace)
    assert ran.code == 2, ran.flat
    assert f"{trace} already exists; govrun never overwrites a trace" in ran.flat
    assert "It is empty: a run that crashed before its first event left it" in ran.flat
    assert f"rm {trace}" in ran.flat
    trace.unlink()
    assert govrun("run", MINIMAL, "-i", "Say done.", "-o", trace).code == 0


def test_a_run_refused_before_its_first_step_leaves_no_trace(tmp_path: Path) -> None:
    agent = tmp_path / "agent.yaml"
    script = REPO / "fixtures" / "scripts" / "minimal.yaml"
    text = MINIMAL.read_text().replace("../scripts/minimal.yaml", str(script))
    agent.write_text(text + "budgets: {max_steps: 99999999999999999999999}\n")
    trace = tmp_path / "trace.jsonl"
    ran = govrun("run", agent, "-i", "Say done.", "-o", trace)
    assert ran.code == 2, ran.flat
    assert f"{agent}:" in ran.flat and "outside what the trace can record" in ran.flat
    assert not trace.exists()


def test_run_default_trace_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = govrun("run", QUICKSTART)
    assert first.code == 0, first.flat
    second = govrun("run", QUICKSTART)
    assert second.code == 0, second.flat

    traces = sorted((tmp_path / "runs").glob("*.jsonl"))
    assert len(traces) == 2, traces  # a second run in the same second gets its own file
    for trace in traces:
        assert re.fullmatch(r"quickstart-\d{8}-\d{6}(-\d+)?\.jsonl", trace.name), trace.name
        assert govrun("verify", trace).code == 0
        report = trace.with_name(trace.name + ".workspace") / "quickstart-workspace" / "report.md"
        assert report.is_file(), report
    printed = {m for r in (first, second) for m in re.findall(r"trace (runs/\S+\.jsonl)", r.flat)}
    assert printed == {f"runs/{t.name}" for t in traces}


# --- approvals --------------------------------------------------------------------------------

ASKING = """\
name: asker
input: Write the greeting file.
model: {provider: scripted, script: script.yaml}
tools:
  - {name: write_file, uses: fs.write, scope: {roots: [ws]}}
policy:
  default: deny
  rules:
    - {id: ask-writes, tools: [write_file], effect: ask}
"""


@pytest.mark.parametrize(
    ("options", "decision", "via", "approver"),
    [
        ((), "reject", "deny", "deny ("),
        (("--approve", "deny"), "reject", "deny", "deny ("),
        (("--approve", "auto"), "approve", "auto", "auto ("),
        (("--approve", "auto", "--approver", "ci-bot"), "approve", "auto", "ci-bot"),
    ],
)
def test_run_ask_rule(
    tmp_path: Path, options: tuple[str, ...], decision: str, via: str, approver: str
) -> None:
    script = (REPO / "fixtures/scripts/hello_file.yaml").read_text()
    manifest = write_agent(tmp_path, ASKING, script)
    trace = tmp_path / "trace.jsonl"
    ran = govrun("run", manifest, "-o", trace, *options)
    assert ran.code == 0, ran.flat
    events = events_of(trace)
    asked = [e for e in events if e["type"] == "approval_requested"]
    decided = [e for e in events if e["type"] == "approval_decided"]
    assert len(asked) == len(decided) == 1
    assert (decided[0]["decision"], decided[0]["via"]) == (decision, via)
    assert decided[0]["approver"].startswith(approver)
    assert decided[0]["call_hash"] == asked[0]["call_hash"]
    assert f"write_file {decision} by {decided[0]['approver']} ({via})" in ran.flat
    assert (tmp_path / "ws" / "hello.txt").exists() == (decision == "approve")
    assert [e["type"] for e in events].count("tool_started") == (decision == "approve")


def test_run_unknown_approve_mode(tmp_path: Path) -> None:
    ran = govrun("run", MINIMAL, "-o", tmp_path / "t.jsonl", "--approve", "maybe")
    assert ran.code == 2
    assert "maybe" in ran.flat
    assert not (tmp_path / "t.jsonl").exists()


GATED = REPO / "fixtures" / "agents" / "gated.yaml"
CI_RULES = REPO / "fixtures" / "approvals" / "ci.yaml"


def test_run_with_standing_rules_in_ci(tmp_path: Path) -> None:
    """No terminal: the rules decide what they cover, `deny` (the default) the rest."""
    trace = tmp_path / "trace.jsonl"
    ran = govrun("run", GATED, "-o", trace, "--approvals", CI_RULES)
    assert ran.code == 0, ran.flat
    decided = [e for e in events_of(trace) if e["type"] == "approval_decided"]
    assert [(e["tool"], e["decision"], e["via"], e["approver"]) for e in decided] == [
        ("write_file", "approve", "rule", f"rules:{CI_RULES}#reports-ok"),
        ("delete_file", "reject", "rule", f"rules:{CI_RULES}#no-deletes"),
    ]
    assert decided[1]["reason"] == "deleting needs a person; run it on a terminal"
    assert f"write_file approve by rules:{CI_RULES}#reports-ok (rule)" in ran.flat
    assert (tmp_path / "trace.jsonl.workspace" / "quickstart-workspace" / "report.md").exists()


def test_run_standing_rules_fall_back_to_the_approver(tmp_path: Path) -> None:
    script = (REPO / "fixtures/scripts/hello_file.yaml").read_text()
    manifest = write_agent(tmp_path, ASKING, script)
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - {id: md-ok, tools: [write_file], when: {path: {glob: '*.md'}}, "
        "decision: approve}\n"
    )
    trace = tmp_path / "trace.jsonl"
    ran = govrun("run", manifest, "-o", trace, "--approvals", tmp_path / "rules.yaml")
    assert ran.code == 0, ran.flat
    (decided,) = [e for e in events_of(trace) if e["type"] == "approval_decided"]
    assert (decided["decision"], decided["via"]) == ("reject", "deny")  # hello.txt: no rule


def test_run_bad_rules_file(tmp_path: Path) -> None:
    script = (REPO / "fixtures/scripts/hello_file.yaml").read_text()
    manifest = write_agent(tmp_path, ASKING, script)
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {id: w, tools: [write_fil], decision: allow}\n")
    ran = govrun("run", manifest, "-o", tmp_path / "t.jsonl", "--approvals", rules)
    assert ran.code == 2
    assert f"{rules} is not a valid approval rules file (2 problems)" in ran.flat
    assert f"{rules}:2:21 rules[0].tools[0]: " in ran.flat
    assert "did you mean 'write_file'?" in ran.flat
    assert f"{rules}:2:33 rules[0].decision: " in ran.flat
    assert "did you mean 'approve'?" in ran.flat
    assert not (tmp_path / "t.jsonl").exists()
    ran = govrun("run", manifest, "-o", tmp_path / "t.jsonl", "--approvals", tmp_path / "no.yaml")
    assert ran.code == 2
    assert ": no such approval rules file" in ran.flat


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            (),
            "--approve prompt needs a terminal to ask on, but neither standard input nor "
            "output is a terminal",
        ),
        (("--json",), "--approve prompt cannot be used with --json"),
    ],
)
def test_run_prompt_without_a_terminal_is_refused(
    tmp_path: Path, options: tuple[str, ...], message: str
) -> None:
    trace = tmp_path / "t.jsonl"
    ran = govrun("run", MINIMAL, "-o", trace, "--approve", "prompt", *options)
    assert ran.code == 2
    assert f"error: {message}" in ran.flat
    assert "--approvals RULES.yaml" in ran.flat
    assert not trace.exists()


def test_run_without_a_terminal_never_waits_for_input(tmp_path: Path) -> None:
    """Real pipes, stdin left open: an `ask` call is rejected at once (deny), not prompted."""
    script = (REPO / "fixtures/scripts/hello_file.yaml").read_text()
    manifest = write_agent(tmp_path, ASKING, script)
    trace = tmp_path / "trace.jsonl"
    entry = "from govrun.cli.main import main; main()"
    with (tmp_path / "out.txt").open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", entry, "run", str(manifest), "-o", str(trace)],
            stdin=subprocess.PIPE,  # open and silent: a prompt would wait forever
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        try:
            code = process.wait(timeout=60)
        finally:
            process.kill()
            process.stdin.close()
    shown = (tmp_path / "out.txt").read_text()
    assert code == 0, shown
    (decided,) = [e for e in events_of(trace) if e["type"] == "approval_decided"]
    assert (decided["decision"], decided["via"]) == ("reject", "deny")


def test_run_prompts_on_a_terminal_with_the_manifest_timeout(tmp_path: Path) -> None:
    """On a real pseudo-terminal `prompt` is the default; nobody answers, so after the
    manifest's `approvals.timeout_s` its `on_timeout` for the call's risk decides."""
    pexpect = pytest.importorskip("pexpect")

    script = (REPO / "fixtures/scripts/hello_file.yaml").read_text()
    approvals = "approvals: {identity: alice, timeout_s: 1, on_timeout: {medium: approve}}\n"
    manifest = write_agent(tmp_path, ASKING + approvals, script)
    trace = tmp_path / "trace.jsonl"
    child = pexpect.spawn(
        sys.executable,
        ["-c", "from govrun.cli.main import main; main()", "run", str(manifest), "-o", str(trace)],
        cwd=str(tmp_path),
        dimensions=(40, 120),
        timeout=30,
        encoding="utf-8",
    )
    child.expect("Approval needed")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    (decided,) = [e for e in events_of(trace) if e["type"] == "approval_decided"]
    assert (decided["decision"], decided["via"]) == ("approve", "timeout")
    assert "alice" in decided["approver"]
    assert "no answer within 1s" in decided["reason"]
    assert (tmp_path / "ws" / "hello.txt").exists()


def test_run_approver_identity(tmp_path: Path) -> None:
    script = (REPO / "fixtures/scripts/hello_file.yaml").read_text()
    manifest = write_agent(tmp_path, ASKING + "approvals: {identity: alice}\n", script)
    approvers = []
    for options in ((), ("--approver", "bob")):
        trace = tmp_path / f"t{len(approvers)}.jsonl"
        assert govrun("run", manifest, "-o", trace, "--approve", "auto", *options).code == 0
        (decided,) = [e for e in events_of(trace) if e["type"] == "approval_decided"]
        approvers.append(decided["approver"])
    assert approvers == ["alice", "bob"]


def test_run_signs_approvals_with_the_given_key(tmp_path: Path) -> None:
    from govrun.runtime.trace.signing import init_key

    signer = init_key(tmp_path / "keys" / "me.pem")
    script = (REPO / "fixtures/scripts/hello_file.yaml").read_text()
    manifest = write_agent(tmp_path, ASKING, script)
    trace = tmp_path / "t.jsonl"
    ran = govrun("run", manifest, "-o", trace, "--approve", "auto", "--key", signer.source[5:])
    assert ran.code == 0, ran.flat
    (decided,) = [e for e in events_of(trace) if e["type"] == "approval_decided"]
    assert decided["key_fingerprint"] == signer.fingerprint
    ran = govrun("run", manifest, "-o", tmp_path / "u.jsonl", "--key", tmp_path / "nokey.pem")
    assert ran.code == 2
    assert "nokey.pem: no such signing key" in ran.flat
    assert not (tmp_path / "u.jsonl").exists()


# --- policy explain ---------------------------------------------------------------------------


def explain(tool: str, arguments: str | None = None) -> Ran:
    return govrun("policy", "explain", QUICKSTART, tool, *([arguments] if arguments else []))


def test_explain_allowed() -> None:
    ran = explain("read_file", '{"path": "notes.md"}')
    assert ran.code == 0, ran.flat
    assert ran.flat.startswith("ALLOW read_file (fs.read), risk low")
    assert "allowed by rule reads" in ran.flat
    assert re.search(r"│ 3 │ reads ← +│ allow +│ +✓ +│", ran.out), ran.out
    assert re.search(r"│ 1 │ no-dotenv +│ deny +│ +✗ +│", ran.out), ran.out
    assert "policy sha256" in ran.flat


def test_explain_denied_by_rule() -> None:
    ran = explain("read_file", '{"path": ".env"}')
    assert ran.code == 0, ran.flat
    assert ran.flat.startswith("DENY read_file (fs.read), risk low")
    assert "denied by rule no-dotenv: .env files hold secrets" in ran.flat
    assert re.search(r"│ 1 │ no-dotenv ← +│ deny +│ +✓ +│", ran.out), ran.out
    assert "denied before the rules" not in ran.flat


def test_explain_denied_by_scope() -> None:
    ran = explain("write_file", '{"path": "../../escaped.md", "content": "# Report"}')
    assert ran.code == 0, ran.flat
    assert ran.flat.startswith("DENY write_file (fs.write), risk medium")
    assert "denied before the rules (outside the tool's scope)" in ran.flat
    assert "outside root" in ran.flat
    assert "The rules below are not consulted" in ran.flat


def test_explain_invalid_arguments() -> None:
    ran = explain("write_file", '{"pth": "x.md"}')
    assert ran.code == 0, ran.flat
    assert ran.flat.startswith("DENY write_file")
    assert "denied before the rules (invalid arguments)" in ran.flat
    assert "pth" in ran.flat


def test_explain_no_rule_matches() -> None:
    ran = explain("write_file", '{"path": "notes.txt", "content": "x"}')
    assert ran.code == 0, ran.flat
    assert ran.flat.startswith("DENY write_file")
    assert "no rule matched; default is deny" in ran.flat


def test_explain_without_arguments_uses_an_empty_object() -> None:
    ran = explain("list_files")
    assert ran.code == 0, ran.flat
    assert ran.flat.startswith(("ALLOW list_files", "DENY list_files"))


def test_explain_unknown_tool() -> None:
    ran = explain("reed_file", '{"path": "notes.md"}')
    assert ran.code == 2
    assert "unknown tool 'reed_file'" in ran.flat
    assert "declared tools: list_files, read_file, write_file, count_lines" in ran.flat
    assert "Did you mean 'read_file'?" in ran.flat
    assert ran.out == ""


@pytest.mark.parametrize(
    ("arguments", "says"),
    [("{bad", "arguments must be a JSON object"), ("[1, 2]", "got an array")],
)
def test_explain_arguments_not_an_object(arguments: str, says: str) -> None:
    ran = explain("read_file", arguments)
    assert ran.code == 2
    assert says in ran.flat


def test_explain_bad_manifest() -> None:
    bad = REPO / "fixtures/agents/invalid/unknown_top_level_key.yaml"
    ran = govrun("policy", "explain", bad, "read_file", "{}")
    assert ran.code == 2
    assert "toolz" in ran.flat


# --- the app itself ---------------------------------------------------------------------------


def test_version() -> None:
    ran = govrun("--version")
    assert ran.code == 0
    assert ran.out.strip() == f"govrun {__version__}"


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help(flag: str) -> None:
    ran = govrun(flag)
    assert ran.code == 0
    assert "Usage: govrun" in ran.flat
    for command in ("run", "validate", "schema", "verify", "show", "policy"):
        assert re.search(rf"│ {command} ", ran.out), command


def test_run_help() -> None:
    ran = govrun("run", "-h")
    assert ran.code == 0
    for option in ("--input", "--output", "--approve", "--approver", "--durability", "--json"):
        assert option in ran.flat, option


def test_unknown_command() -> None:
    ran = govrun("frobnicate")
    assert ran.code == 2
    assert "No such command" in ran.flat
