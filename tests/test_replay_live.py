"""Fork and resume: replay a recorded part, then continue for real.

A real crash (the process dies inside a tool call), real subprocesses, the real openai
client against a local OpenAI-compatible server: the replayed part never reaches the model
or the tools, the live part does, and the new trace names its parent and verifies.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from govrun.runtime.models import build_model
from govrun.runtime.replayer.session import LivePorts, recorded_manifest, replay
from govrun.runtime.trace.reader import read_stored
from govrun.runtime.trace.record import Record
from govrun.runtime.trace.verify import verify_trace
from tests.support.agents import OPENAI_ENV, answer, call, calls, openai_manifest, run_in
from tests.support.cli import govrun
from tests.support.fake_openai import FakeOpenAI, fake_openai_fixture  # noqa: F401

REPO = Path(__file__).resolve().parent.parent


def stored(path: str | Path) -> list[dict[str, Any]]:
    return read_stored(path)[0]


def of(events: list[dict[str, Any]], kind: str, **where: Any) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind and all(e.get(k) == v for k, v in where.items())]


# --- fork ----------------------------------------------------------------------------------


def test_fork_replays_before_the_step_and_asks_the_live_model_after(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply(tool_calls=[{"id": "c1", "name": "fs_write", "arguments": w("a.txt")}])
    fake_openai.reply(tool_calls=[{"id": "c2", "name": "fs_write", "arguments": w("b.txt")}])
    fake_openai.reply("done")
    result, _ = run_in(tmp_path, openai_manifest(fake_openai.base_url), env=OPENAI_ENV)
    assert len(fake_openai.requests) == 3
    (tmp_path / "ws" / "b.txt").unlink()

    # The fork: step 1 from the record, then the live model proposes something else.
    fake_openai.reply(tool_calls=[{"id": "k2", "name": "fs_write", "arguments": w("c.txt")}])
    fake_openai.reply("forked and done")
    record = Record.load(result.trace_path)
    m = recorded_manifest(record)
    fork = tmp_path / "fork.jsonl"
    outcome = replay(
        record,
        fork,
        live_from=2,
        live=LivePorts(model=lambda: build_model(m.model, base_dir=m.base_dir, env=OPENAI_ENV)),
    )

    assert outcome.result.status == "completed"
    assert outcome.result.final_answer == "forked and done"
    assert len(fake_openai.requests) == 5  # two live calls, none for the replayed step
    assert outcome.session.went_live is not None and outcome.session.went_live[1] == 2
    assert (tmp_path / "ws" / "c.txt").exists()  # the live tool ran
    assert not (tmp_path / "ws" / "b.txt").exists()  # the recorded step 2 did not
    events = stored(fork)
    parent = events[0]["parent"]
    assert parent["kind"] == "fork"
    assert parent["run_id"] == record.run_id
    assert parent["step"] == 1
    assert parent["trace"] == str(record.path)
    # The live model saw the replayed history: the prompt holds step 1's call and result.
    live_prompt = fake_openai.requests[3].json["messages"]
    assert any(m.get("tool_call_id") == "c1" for m in live_prompt)
    assert verify_trace(fork).ok


def test_fork_through_the_cli(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    fake_openai.reply(tool_calls=[{"id": "c1", "name": "fs_write", "arguments": w("a.txt")}])
    fake_openai.reply("done")
    result, _ = run_in(tmp_path, openai_manifest(fake_openai.base_url), env=OPENAI_ENV)
    fake_openai.reply("a different ending")

    fork = tmp_path / "fork.jsonl"
    ran = govrun("replay", result.trace_path, "--live-from", 2, "-o", fork, env=OPENAI_ENV)

    assert ran.code == 0, ran.flat
    assert "forked" in ran.flat and "live from step 2" in ran.flat
    assert of(stored(fork), "run_finished")[0]["final_answer"] == "a different ending"
    assert len(fake_openai.requests) == 3


def test_fork_past_the_end_is_refused(tmp_path: Path) -> None:
    result, _ = run_in(
        tmp_path,
        {"name": "t", "model": {"provider": "scripted", "script": "script.yaml"}},
        script=[answer()],
    )
    ran = govrun("replay", result.trace_path, "--live-from", 5, "-o", tmp_path / "f.jsonl")
    assert ran.code == 2
    assert "past the recorded run, which has 1 steps" in ran.flat


# --- resume after a real crash ---------------------------------------------------------------

CRASHY = {
    "name": "crashy",
    "input": "Greet ada, then write the file.",
    "model": {"provider": "scripted", "script": "script.yaml"},
    "tools": [
        {"name": "greet", "python": "tests.support.pytools:greet"},
        {"name": "write_or_crash", "python": "tests.support.pytools:write_or_crash"},
    ],
    "policy": {"default": "allow"},
}


def crashed_run(folder: Path) -> tuple[Path, Path]:
    """Run an agent in a subprocess that dies inside its step-2 tool call; return the trace
    and the file that call writes."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "out.txt"
    script = [
        calls(call("greet", {"name": "ada"})),
        calls(call("write_or_crash", {"path": str(target), "text": "hello"})),
        answer("all written"),
    ]
    (folder / "script.yaml").write_text(yaml.safe_dump(script), encoding="utf-8")
    manifest = folder / "agent.yaml"
    manifest.write_text(yaml.safe_dump(CRASHY), encoding="utf-8")
    trace = folder / "crashed.jsonl"
    entry = "from govrun.cli.main import main; main()"
    process = subprocess.run(
        [sys.executable, "-c", entry, "run", str(manifest), "-o", str(trace)],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    assert process.returncode == 137, process.stderr
    return trace, target


def test_a_crash_leaves_an_in_flight_call(tmp_path: Path) -> None:
    trace, target = crashed_run(tmp_path)
    events = stored(trace)
    assert events[-1]["type"] == "tool_started"
    assert events[-2]["type"] == "tool_call" and events[-2]["tool"] == "write_or_crash"
    assert not target.exists()
    assert [e["tool"] for e in Record.load(trace).in_flight()] == ["write_or_crash"]


def test_resume_reruns_the_in_flight_call_when_told(tmp_path: Path) -> None:
    trace, target = crashed_run(tmp_path)
    resumed = tmp_path / "resumed.jsonl"

    ran = govrun("resume", trace, "-o", resumed, "--in-flight", "rerun")

    assert ran.code == 0, ran.flat
    assert target.read_text() == "hello"
    events = stored(resumed)
    assert events[0]["parent"]["kind"] == "resume"
    (decision,) = of(events, "interrupt", rule="in_flight_call")
    assert decision["detail"]["choice"] == "rerun"
    assert "--in-flight rerun" in decision["by"]
    (finished,) = of(events, "tool_finished", tool="write_or_crash")
    assert finished["ok"] is True
    # greet (step 1) came from the record, not from running it again
    assert of(events, "tool_finished", tool="greet")[0]["output"] == "hello ada"
    assert events[-1]["status"] == "completed"
    assert events[-1]["final_answer"] == "all written"
    assert verify_trace(resumed).ok
    assert "resumed" in ran.flat


def test_resume_skips_the_in_flight_call_when_told(tmp_path: Path) -> None:
    trace, target = crashed_run(tmp_path)
    resumed = tmp_path / "resumed.jsonl"

    ran = govrun("resume", trace, "-o", resumed, "--in-flight", "skip")

    assert ran.code == 0, ran.flat
    assert not target.exists()
    events = stored(resumed)
    (decision,) = of(events, "interrupt", rule="in_flight_call")
    assert decision["detail"]["choice"] == "skip"
    (finished,) = of(events, "tool_finished", tool="write_or_crash")
    assert (finished["ok"], finished["failure_class"]) == (False, "tool_error")
    assert "in flight" in finished["error"]
    assert verify_trace(resumed).ok


def test_without_a_terminal_the_manifests_on_in_flight_decides(tmp_path: Path) -> None:
    trace, target = crashed_run(tmp_path)
    ran = govrun("resume", trace, "-o", tmp_path / "refused.jsonl")
    assert ran.code == 2 and "set `on_in_flight:` in the manifest" in ran.flat
    manifest = tmp_path / "agent.yaml"
    manifest.write_text(yaml.safe_dump({**CRASHY, "on_in_flight": "rerun"}), encoding="utf-8")
    resumed = tmp_path / "resumed.jsonl"

    ran = govrun("resume", trace, "-o", resumed, "--manifest", manifest)

    assert ran.code == 0, ran.flat
    assert target.read_text() == "hello"
    (decision,) = of(stored(resumed), "interrupt", rule="in_flight_call")
    assert decision["detail"]["choice"] == "rerun"


def test_on_a_terminal_ctrl_c_at_the_in_flight_question_stops_and_tells(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Asked whether to re-run the call that was in flight, the person presses Ctrl-C: the
    resumed run stops at once, never arming a pause the question would then sit over, and
    its summary names the new trace and its head."""
    from tests.support.pty import Screen

    trace, target = crashed_run(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    argv = [sys.executable, "-c", "from govrun.cli.main import main; main()"]
    term = Screen(
        [*argv, "resume", str(trace), "-o", "resumed.jsonl"], rows=40, cols=120, cwd=tmp_path
    )
    try:
        at = term.wait_for("e-run it or s")
        term.child.send("\x03")
        term.wait_for("interrupted: the run stopped at once", after=at)
        term.wait_for("verify later with:", after=at)
        while not term.eof:
            term._read(0.2)
        term.child.close()
        assert term.child.exitstatus == 130
        shown = " ".join(term.screen[at:].split())
        assert "Ctrl-C: pausing" not in shown and "STOPPED operator_stop" in shown
    finally:
        if term.child.isalive():
            term.child.close(force=True)
    resumed = tmp_path / "resumed.jsonl"
    assert not target.exists()
    events = stored(resumed)
    assert (events[-1]["status"], events[-1]["failure_class"]) == ("stopped", "operator_stop")
    assert f"head {events[-1]['hash']}" in shown
    assert verify_trace(resumed, head=events[-1]["hash"]).ok


def test_resume_without_a_terminal_needs_a_decision(tmp_path: Path) -> None:
    trace, _ = crashed_run(tmp_path)
    resumed = tmp_path / "resumed.jsonl"

    ran = govrun("resume", trace, "-o", resumed)

    assert ran.code == 2
    assert "write_or_crash (step 2) was in flight" in ran.flat
    assert "--in-flight rerun or --in-flight skip" in ran.flat
    assert not resumed.exists()


def test_resume_a_completed_run_is_refused(tmp_path: Path) -> None:
    result, _ = run_in(
        tmp_path,
        {"name": "t", "model": {"provider": "scripted", "script": "script.yaml"}},
        script=[answer()],
    )
    ran = govrun("resume", result.trace_path, "-o", tmp_path / "r.jsonl")
    assert ran.code == 2
    assert "the run completed; there is nothing to resume" in ran.flat


def test_resume_a_budget_stop_under_a_raised_budget(tmp_path: Path) -> None:
    manifest = {
        "name": "t",
        "model": {"provider": "scripted", "script": "script.yaml"},
        "tools": [{"name": "greet", "python": "tests.support.pytools:greet"}],
        "policy": {"default": "allow"},
        "budgets": {"max_steps": 2},
    }
    script = [calls(call("greet", {"name": str(n)})) for n in range(3)] + [answer("ok")]
    result, _ = run_in(tmp_path, manifest, script=script)
    assert result.failure_class == "budget_exceeded"

    again = tmp_path / "again.jsonl"
    ran = govrun("resume", result.trace_path, "-o", again)
    assert ran.code == 1
    assert "pass --manifest with a higher budget" in ran.flat
    assert of(stored(again), "run_finished")[0]["failure_class"] == "budget_exceeded"

    raised = tmp_path / "raised.yaml"
    raised.write_text(yaml.safe_dump({**manifest, "budgets": {"max_steps": 10}}), encoding="utf-8")
    resumed = tmp_path / "resumed.jsonl"
    ran = govrun("resume", result.trace_path, "-o", resumed, "--manifest", raised)
    assert ran.code == 0, ran.flat
    events = stored(resumed)
    assert events[-1]["status"] == "completed"
    assert events[-1]["final_answer"] == "ok"
    # steps 1-2 replayed, 3-4 live: the script continued where the record left off
    assert [e["output"] for e in of(events, "tool_finished")] == ["hello 0", "hello 1", "hello 2"]


def w(name: str) -> dict[str, str]:
    return {"path": name, "content": f"# {name}\n"}
